"""Model files taken from an exact npm package version, checked by its registry integrity hash.

Used by `make assets` only; nothing is downloaded at run time. The BlazeFace face detectors
(MediaPipe, Apache-2.0) ship as `.tflite` files inside the npm package `@mediapipe/face_detection`;
the face-expression network of face-api.js (MIT) ships inside `@vladmandic/face-api`.

    from video_emotion.data.npm_assets import fetch_face_detection_models
    fetch_face_detection_models("models/pretrained", cache_dir=".cache/npm")
    # -> {"short": models/pretrained/blazeface_short_range.tflite,
    #     "full":  models/pretrained/blazeface_full_range.tflite}

The tarball URL and its `dist.integrity` (sha512 of the tarball, as the npm registry publishes it
and `npm install` checks it) are pinned below, together with the sha256 of every extracted file. The
tarball is cached under `cache_dir`, verified before anything is read from it, and each file is
written atomically; a second call with the files in place does not touch the network or the cache.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from video_emotion.io_utils import atomic_path, file_hash, sha256_file

log = logging.getLogger("video_emotion.npm_assets")

NPM_REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class NpmFile:
    member: str      # path inside the tarball ("package/...")
    filename: str    # file name written under the destination folder
    sha256: str


@dataclass(frozen=True)
class NpmPackage:
    name: str        # "@scope/name"
    version: str     # an exact version, never a range
    integrity: str   # "sha512-<base64>", the registry's dist.integrity of that version
    license: str
    files: tuple[NpmFile, ...]

    @property
    def tarball_name(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    def tarball_url(self, registry: str = NPM_REGISTRY) -> str:
        # The registry's dist.tarball for a scoped package: <registry>/@scope/name/-/name-<version>.tgz
        return f"{registry.rstrip('/')}/{self.name}/-/{self.tarball_name}"


# MediaPipe Face Detection (BlazeFace), Apache-2.0. The package also holds a "sparse" full-range
# model; OpenCV's TFLite importer cannot read it (DENSIFY operator), so it is not extracted.
FACE_DETECTION = NpmPackage(
    name="@mediapipe/face_detection",
    version="0.4.1657300184",
    integrity="sha512-k5aYtTf7av7GwD3C9T4LJB/okHK/uJwFQSOmJ9OHZMlwg7SdYVMolRgDlA962OU7fIBKsrOA7f7BzD2gpzcAKw==",
    license="Apache-2.0",
    files=(
        NpmFile("package/face_detection_short_range.tflite", "blazeface_short_range.tflite",
                "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
        NpmFile("package/face_detection_full_range.tflite", "blazeface_full_range.tflite",
                "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
    ),
)


# face-api.js's face-expression network (MIT): 7 expressions from a 112x112 face; its weights ship in
# the npm package @vladmandic/face-api (uint8-quantised, with a TensorFlow.js weights manifest). Rebuilt
# as a Keras network by `modeling.backbones.faceapi_backbone`.
FACE_EXPRESSION = NpmPackage(
    name="@vladmandic/face-api",
    version="1.7.15",
    integrity="sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw==",
    license="MIT",
    files=(
        NpmFile("package/model/face_expression_model-weights_manifest.json",
                "face_expression_model-weights_manifest.json",
                "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8"),
        NpmFile("package/model/face_expression_model.bin", "face_expression_model.bin",
                "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"),
        NpmFile("package/LICENSE", "LICENSE", "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a"),
    ),
)


def _integrity_of(path: Path, algo: str) -> str:
    return f"{algo}-{base64.b64encode(file_hash(path, algo).digest()).decode('ascii')}"


def check_integrity(path: Path, integrity: str) -> bool:
    """True when the file matches an npm SRI string (`sha512-<base64>`; several may be space-separated)."""
    for item in integrity.split():
        algo = item.split("-", 1)[0]
        if algo in ("sha512", "sha384", "sha256") and _integrity_of(path, algo) == item:
            return True
    return False


def _write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def _download(url: str, target: Path, timeout: float = 60.0) -> None:
    """Stream the pinned URL to `target` (atomically). Called by `make assets` only, never at run time."""
    with atomic_path(target) as tmp, tmp.open("wb") as fh, \
            urllib.request.urlopen(url, timeout=timeout) as resp:  # a pinned URL
        while block := resp.read(1 << 20):
            fh.write(block)



def fetch_npm_files(pkg: NpmPackage, dest_dir: str | Path, cache_dir: str | Path,
                    registry: str = NPM_REGISTRY, url: str | None = None) -> list[Path]:
    """Make sure every file of `pkg.files` exists under `dest_dir` with its pinned sha256; return them.

    `url` overrides the tarball address (tests pass a file:// URL). A cached tarball that fails its
    integrity check is fetched again; a downloaded one that fails it is deleted and nothing is
    extracted (OSError).
    """
    dest_dir, cache_dir = Path(dest_dir), Path(cache_dir)
    targets = [dest_dir / f.filename for f in pkg.files]
    if all(t.is_file() and sha256_file(t) == f.sha256 for f, t in zip(pkg.files, targets)):
        return targets
    tgz = cache_dir / pkg.tarball_name
    if not (tgz.is_file() and check_integrity(tgz, pkg.integrity)):
        src = url or pkg.tarball_url(registry)
        log.info("downloading %s@%s from %s", pkg.name, pkg.version, src)
        _download(src, tgz)
        if not check_integrity(tgz, pkg.integrity):
            tgz.unlink(missing_ok=True)
            raise OSError(f"{pkg.name}@{pkg.version}: tarball does not match the pinned integrity {pkg.integrity}")
    with tarfile.open(tgz, mode="r:gz") as tf:
        blobs = {}
        for f in pkg.files:  # read and check everything before writing anything
            try:
                member = tf.getmember(f.member)
            except KeyError:
                raise OSError(f"{pkg.tarball_name}: no member {f.member}") from None
            fh = tf.extractfile(member) if member.isfile() else None
            if fh is None:
                raise OSError(f"{pkg.tarball_name}: {f.member} is not a regular file")
            data = fh.read()
            if hashlib.sha256(data).hexdigest() != f.sha256:
                raise OSError(f"{pkg.tarball_name}:{f.member} does not match its pinned sha256")
            blobs[f.filename] = data
    for f, t in zip(pkg.files, targets):
        _write_bytes(t, blobs[f.filename])
    log.info("extracted %d file(s) from %s@%s (%s licence)", len(targets), pkg.name, pkg.version, pkg.license)
    return targets


def fetch_face_detection_models(dest_dir: str | Path, cache_dir: str | Path,
                                registry: str = NPM_REGISTRY) -> dict[str, Path]:
    """The BlazeFace models under `dest_dir`: {"short": ..._short_range.tflite, "full": ..._full_range.tflite}."""
    paths = fetch_npm_files(FACE_DETECTION, dest_dir, cache_dir, registry=registry)
    return {"short": paths[0], "full": paths[1]}


def fetch_face_expression_model(dest_dir: str | Path, cache_dir: str | Path, registry: str = NPM_REGISTRY) -> list[Path]:
    """The face-api.js expression network under `dest_dir`: its weights manifest, weights and licence."""
    return fetch_npm_files(FACE_EXPRESSION, dest_dir, cache_dir, registry=registry)
