"""The face-honesty sets: frames with no person in them, hard faces, and real faces placed as a video frame.

Used by `benchmarks/face_honesty.py`. Nothing here is needed by the product at run time.

No-face material, all public and pinned (version and sha256; fetched once into `.bench/face-honesty/` by
`fetch()`, only here, never by the product):
- Debian `ukui-wallpapers` and `lomiri-wallpapers`: illustrations and renders (a goldfish, a mouse's
  head, a lion mask, a flower, abstract shapes and text), no person;
- the PyPI wheel of scipy 1.9.3: `scipy/misc/face.dat`, a photo of a raccoon's face (an animal face,
  the hardest kind of no-face);
- already installed by the project's lock: scikit-learn's `china.jpg` (a temple) and `flower.jpg`,
  matplotlib's `logo2.png` and `Minduka_Present_Blue_Pack.png` (an object), a screenshot of MLflow's
  UI (text);
- drawn here: colour wheels, printed text, textures (noise, checkerboards, stripes, bricks, wood grain);
- every other frame of the project's own title sequence with no person (`data/external/real_faces/no_face.mp4`).
Each image is used whole (placed in a 640x360 frame as a photo is) and as crops at a few scales.
Not scikit-image's sample images: an independent check uses those.

Hard faces: the labelled dev photos (JAFFE, CK+), placed as the hidden check places photos (see
`place_photo`), then made hard in memory (never written): small, dark, blurred, turned (yaw by a
perspective warp, roll), partly hidden (a bar over the mouth, a hand-sized patch over one eye), noisy.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench" / "face-honesty"
FRAME_W, FRAME_H = 640, 360

# (kind, name, version, sha256 of the package file, members wanted)
PINS = (
    ("deb", "ukui-wallpapers", "20.04.3-1.1", "6d49be70152e6d603163458e177e501deb0be8f2916389ccbfcf59b0d7fc0262",
     "usr/share/backgrounds/"),
    ("deb", "lomiri-wallpapers", "20.04.0-2", "6b75961132a2035f9c4db79f725a7290092619c5c8f672071c84cb5b10898e07",
     "usr/share/backgrounds/"),
    ("wheel", "scipy", "1.9.3", "abaf921531b5aeaafced90157db505e10345e45038c39e5d9b6c7922d68085cb",
     "scipy/misc/face.dat"),
)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _download(kind: str, name: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "deb":
        subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=dest, check=True, capture_output=True)
        return next(dest.glob(f"{name}_*.deb"))
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.11", "--platform", "manylinux2014_x86_64", f"{name}=={version}", "-d", str(dest)],
                   check=True, capture_output=True)
    return next(dest.glob(f"{name}-{version}-*.whl"))


def _deb_members(deb: Path, prefix: str) -> dict[str, bytes]:
    """Files under `prefix` in a .deb (an ar archive holding data.tar.*), read with dpkg-deb."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        return {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp, prefix).rglob("*")) if p.is_file()}


def fetch(cache: Path = CACHE) -> dict[str, bytes]:
    """The pinned packages' image files by name, downloaded once into `cache` and checked by sha256."""
    out: dict[str, bytes] = {}
    for kind, name, version, sha, member in PINS:
        folder = cache / f"{name}-{version}"
        pkg = next(iter(sorted(folder.glob("*.deb" if kind == "deb" else "*.whl"))), None) if folder.is_dir() else None
        if pkg is None:
            pkg = _download(kind, name, version, folder)
        if _sha256(pkg) != sha:
            raise RuntimeError(f"{pkg.name}: sha256 {_sha256(pkg)} is not the pinned {sha}")
        if kind == "deb":
            out.update({f"{name}:{Path(k).name}": v for k, v in _deb_members(pkg, member).items()})
        else:
            with zipfile.ZipFile(pkg) as zf:
                out[f"{name}:{Path(member).name}"] = zf.read(member)
    return out


def _decode(name: str, data: bytes) -> np.ndarray | None:
    if name.endswith("face.dat"):  # scipy.misc.face(): a bz2-compressed raw 768x1024 RGB array
        raw = bz2.decompress(data)
        return cv2.cvtColor(np.frombuffer(raw, np.uint8).reshape(768, 1024, 3), cv2.COLOR_RGB2BGR)
    if not name.lower().endswith((".png", ".jpg", ".jpeg")):
        return None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img


def installed_images() -> dict[str, np.ndarray]:
    """No-person images shipped in packages the project's lock already installs."""
    import matplotlib
    import sklearn

    paths = {"sklearn:china.jpg": Path(sklearn.__file__).parent / "datasets/images/china.jpg",
             "sklearn:flower.jpg": Path(sklearn.__file__).parent / "datasets/images/flower.jpg",
             "matplotlib:logo2.png": Path(matplotlib.get_data_path()) / "sample_data/logo2.png",
             "matplotlib:Minduka_Present_Blue_Pack.png":
                 Path(matplotlib.get_data_path()) / "sample_data/Minduka_Present_Blue_Pack.png"}
    try:
        import mlflow

        media = Path(mlflow.__file__).parent / "server/js/build/static/media"
        shots = sorted(media.glob("demo-tracing-screenshot*.png"))
        paths.update({f"mlflow:{p.name.split('.')[0]}.png": p for p in shots})
    except ImportError:
        pass
    out = {}
    for name, p in paths.items():
        img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p.is_file() else None
        if img is not None:
            out[name] = img
    return out


# -- drawn material --------------------------------------------------------------------------------------
def colour_wheel(size: int = 360, rings: bool = False, background: int = 255) -> np.ndarray:
    """A hue wheel: hue by angle, saturation by radius (optionally banded), on a plain background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    r, ang = np.hypot(xx, yy) / (size / 2), (np.degrees(np.arctan2(yy, xx)) + 360) % 360
    sat = np.clip(r, 0, 1) if not rings else np.floor(np.clip(r, 0, 1) * 5) / 5 + 0.2
    hsv = np.stack([ang / 2, np.clip(sat, 0, 1) * 255, np.full_like(r, 255)], -1).astype(np.uint8)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    img[r > 1] = background
    return img


def text_image(seed: int, width: int = 640, height: int = 360) -> np.ndarray:
    """Lines of printed text in OpenCV's fonts, dark on light or light on dark."""
    rng = np.random.default_rng(seed)
    dark = bool(seed % 2)
    img = np.full((height, width, 3), 30 if dark else 235, np.uint8)
    words = "the quick brown fox jumps over a lazy dog 0123456789 video emotion OO oo @ & % QUARTERLY REPORT".split()
    y = 30
    while y < height - 10:
        scale = float(rng.uniform(0.5, 1.6))
        line = " ".join(rng.choice(words, 6))
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX,
                               cv2.FONT_HERSHEY_SCRIPT_COMPLEX]))
        ink = (235,) * 3 if dark else (20,) * 3
        cv2.putText(img, line, (10, y), font, scale, ink, max(1, int(scale * 2)), cv2.LINE_AA)
        y += int(40 * scale) + 8
    return img


def textures(seed: int) -> dict[str, np.ndarray]:
    """Synthetic textures: smooth and fine noise, checkerboards, stripes, bricks, wood-like rings."""
    rng = np.random.default_rng(seed)
    H, W = FRAME_H, FRAME_W
    out = {"noise": rng.integers(0, 256, (H, W, 3), dtype=np.uint8)}
    blob = cv2.resize(rng.random((H // 24, W // 24, 3)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    out["smooth_noise"] = np.clip(blob * 255, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    cell = int(rng.integers(16, 64))
    out["checker"] = (((yy // cell + xx // cell) % 2) * 200 + 30).astype(np.uint8)
    wave = np.sin((xx * np.cos(seed) + yy * np.sin(seed)) / rng.uniform(4, 20))
    out["stripes"] = ((wave + 1) * 110 + 10).astype(np.uint8)
    bricks = np.full((H, W, 3), (40, 60, 150), np.uint8)
    bh, bw = 30, 70
    for r in range(0, H, bh):
        off = (r // bh) % 2 * bw // 2
        cv2.line(bricks, (0, r), (W, r), (200, 200, 200), 3)
        for c in range(-off, W, bw):
            cv2.line(bricks, (c, r), (c, r + bh), (200, 200, 200), 3)
    out["bricks"] = bricks
    cx, cy = rng.uniform(-200, 800), rng.uniform(-200, 500)
    rad = np.hypot(xx - cx, yy - cy) + 8 * cv2.resize(rng.random((12, 20)).astype(np.float32), (W, H))
    out["wood"] = np.stack([(np.sin(rad / 6) + 1) * 40 + 40, (np.sin(rad / 6) + 1) * 50 + 70,
                            (np.sin(rad / 6) + 1) * 60 + 110], -1).astype(np.uint8)
    return {f"{k}_{seed}": v for k, v in out.items()}


def place_photo(img: np.ndarray, width: int = FRAME_W,
                height: int = FRAME_H) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A photo as the hidden check places it: under 128 px enlarged to 192 px (bicubic), then centred in a
    larger frame padded with its median colour; a photo too large for the frame is shrunk to fit."""
    if max(img.shape[:2]) < 128:
        img = cv2.resize(img, (192, 192), interpolation=cv2.INTER_CUBIC)
    h, w = img.shape[:2]
    if h > height or w > width:
        s = min(height / h, width / w)
        img = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
    fill = np.median(img.reshape(-1, img.shape[2]) if img.ndim == 3 else img.reshape(-1, 1), axis=0).astype(np.uint8)
    frame = np.empty((height, width) + img.shape[2:], np.uint8)
    frame[...] = fill if img.ndim == 3 else int(fill[0])
    top, left = (height - h) // 2, (width - w) // 2
    frame[top:top + h, left:left + w] = img
    return frame, (left, top, w, h)


def crops(img: np.ndarray, seed: int, n: int = 4) -> list[np.ndarray]:
    """`n` random square-ish crops of an image at 25-60 % of its short side (more regions, other scales)."""
    rng = np.random.default_rng(seed)
    H, W = img.shape[:2]
    out = []
    for _ in range(n):
        side = int(min(H, W) * rng.uniform(0.25, 0.6))
        y, x = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        out.append(img[y:y + side, x:x + side])
    return out


def no_face_frames(fetched: dict[str, bytes] | None) -> Iterator[tuple[str, str, np.ndarray]]:
    """(source, name, 640x360 frame) of the no-face set; `fetched=None` leaves the pinned packages out."""
    from video_emotion.features.video import iter_frames, probe

    images: dict[str, tuple[str, np.ndarray]] = {}
    for name, data in (fetched or {}).items():
        img = _decode(name, data)
        if img is not None:
            images[name] = ("debian" if not name.startswith("scipy") else "pypi", img)
    images.update({k: ("pypi", v) for k, v in installed_images().items()})
    for i, (rings, bg) in enumerate(((False, 255), (True, 255), (False, 0), (True, 128))):
        images[f"drawn:colour_wheel_{i}"] = ("drawn", colour_wheel(300 + 20 * i, rings, bg))
    for s in range(6):
        images[f"drawn:text_{s}"] = ("drawn", text_image(s))
    for s in range(3):
        images.update({f"drawn:{k}": ("drawn", v) for k, v in textures(s).items()})
    for k, (src, img) in sorted(images.items()):
        yield src, k, place_photo(img)[0]
        for j, c in enumerate(crops(img, seed=len(k), n=3)):
            yield src, f"{k}#crop{j}", place_photo(c)[0]
    clip = ROOT / "data" / "external" / "real_faces" / "no_face.mp4"
    if clip.is_file():
        for i, frame in iter_frames(clip, range(0, probe(clip).n_frames, 2)):
            yield "footage", f"no_face.mp4#{i}", cv2.resize(frame, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)


def dev_photos(folder: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    """(database, file, image) of a labelled folder (`labels.csv`: file,label,dataset,subject)."""
    images = folder / "images" if (folder / "images").is_dir() else folder
    with open(folder / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            img = cv2.imread(str(images / row["file"]), cv2.IMREAD_ANYCOLOR)
            if img is not None:
                yield row["dataset"], row["file"], img


HARD = ("small", "dark", "blurred", "very_blurred", "yaw", "roll", "mouth_hidden", "eye_hidden", "noisy")


def make_hard(img: np.ndarray, kind: str, seed: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A dev photo made hard to read, placed in a frame; and where the photo sits (the face is inside)."""
    rng = np.random.default_rng(seed)
    if kind == "small":  # the face ~40 px across: a person far from the camera, never enlarged
        s = 40.0 / (0.55 * max(img.shape[:2])) if max(img.shape[:2]) >= 128 else 40.0 / max(img.shape[:2])
        img = cv2.resize(img, None, fx=min(1.0, s), fy=min(1.0, s), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
        frame = np.full((FRAME_H, FRAME_W) + img.shape[2:], int(np.median(img)), np.uint8)
        top, left = int(rng.integers(0, FRAME_H - h)), int(rng.integers(0, FRAME_W - w))
        frame[top:top + h, left:left + w] = img
        return frame, (left, top, w, h)
    frame, rect = place_photo(img)
    x, y, w, h = rect
    if kind == "dark":
        frame = np.clip(255 * (frame / 255.0) ** 2.2 * 0.45, 0, 255).astype(np.uint8)
    elif kind == "blurred":
        frame = cv2.GaussianBlur(frame, (0, 0), w / 60.0)
    elif kind == "very_blurred":  # out of focus: features smeared over a tenth of the face
        frame = cv2.GaussianBlur(frame, (0, 0), w / 14.0)
    elif kind == "noisy":
        frame = np.clip(frame + rng.normal(0, 25, frame.shape), 0, 255).astype(np.uint8)
    elif kind == "roll":
        m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), float(rng.choice([-35, 35])), 1.0)
        frame = cv2.warpAffine(frame, m, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REPLICATE)
    elif kind == "yaw":  # one side of the face pushed back: a head turned about 40 degrees
        side = int(rng.choice([0, 1]))
        src = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        d = 0.22 * h
        dst = src.copy()
        far = [1, 2] if side else [0, 3]
        dst[far[0], 1] += d / 2
        dst[far[1], 1] -= d / 2
        dst[far, 0] += (-1 if side else 1) * 0.35 * w
        frame = cv2.warpPerspective(frame, cv2.getPerspectiveTransform(src, dst), (FRAME_W, FRAME_H),
                                    borderMode=cv2.BORDER_REPLICATE)
    elif kind == "mouth_hidden":
        cv2.rectangle(frame, (x + w // 6, y + int(0.68 * h)), (x + 5 * w // 6, y + int(0.9 * h)), (60, 60, 60), -1)
    elif kind == "eye_hidden":
        cx = x + int(w * (0.33 if rng.random() < 0.5 else 0.67))
        cv2.circle(frame, (cx, y + int(0.42 * h)), int(0.13 * w), (200, 170, 150), -1)
    return frame, rect


__all__ = ["HARD", "PINS", "colour_wheel", "dev_photos", "fetch", "make_hard", "no_face_frames", "place_photo"]
