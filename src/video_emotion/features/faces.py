"""Faces: the ONE face path. Finding, aligning and cropping faces for training (preprocess),
evaluation (real faces) and serving (analyze, which follows faces over time with `features.tracking.FaceTracker`).

`FacePath(cfg, model_dir)` is built from the preprocessing settings a model was trained with
(`detector`, `face_margin`, `face_offset`, `align`, `image_size`, `equalize`, `denoise`), so a model
always sees faces prepared exactly the way it was trained on:
- `detector: blazeface` (default): MediaPipe's BlazeFace (`features.blazeface`, "auto": short range,
  full range for small faces), boxes with eye keypoints; crops are eye-levelled FER-style squares
  (`features.align.face_crop`: margin and vertical offset of the box, measured on real faces).
- `detector: haar`: OpenCV's Haar cascades (the fallback, and what bundles saved before this setting
  used): a square around the box with the margin (and offset), never rotated.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from video_emotion.config import PreprocessConfig
from video_emotion.features.align import CropSpec, face_crop
from video_emotion.features.blazeface import DEFAULT_MODEL_DIR, MODEL_FILES, BlazeFaceDetector, Detection
from video_emotion.features.video import VideoError, VideoInfo, iter_frames, probe, uniform_indices

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Face = Any  # a BlazeFace `Detection` (box, score, keypoints) or a Haar `Box`
BUNDLE_DIR = "face_detector"  # where processed data and model bundles keep the detector they were made with


class FaceDetector:
    """OpenCV Haar cascade face detector (frontal, with a profile fallback).

    The cascades ship inside the opencv-python-headless wheel, so nothing is downloaded.
    """

    def __init__(self, min_face_frac: float = 0.2, detect_short_side: int = 240) -> None:
        base = Path(cv2.data.haarcascades)
        self.frontal = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_default.xml"))
        self.alt = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_alt2.xml"))
        if self.frontal.empty() or self.alt.empty():
            raise RuntimeError("OpenCV Haar cascades are missing from the installed cv2 package")
        self.min_face_frac = min_face_frac
        self.detect_short_side = detect_short_side

    def detect(self, gray: np.ndarray, near: Box | None = None) -> list[Box]:
        """Faces in a grey frame, largest first.

        With `near` (the box found a moment ago) only a region around it is searched, at face sizes
        close to it: a few pyramid levels on a small crop instead of the whole frame. Nothing found -> [].
        """
        if near is not None:
            return self._detect_near(gray, near)
        side = min(gray.shape[:2])
        min_size = max(20, int(side * self.min_face_frac))
        # Detect on a frame no larger than `detect_short_side` on its short side: Haar cost grows
        # with area, and the faces whose expression can be read fill a fair part of the frame.
        scale = min(1.0, self.detect_short_side / side)
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        ms = max(20, int(min_size * scale))
        boxes = self.frontal.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(ms, ms))
        if len(boxes) == 0:
            boxes = self.alt.detectMultiScale(small, scaleFactor=1.1, minNeighbors=3, minSize=(ms, ms))
        out = [tuple(int(round(v / scale)) for v in b) for b in boxes]
        return sorted(out, key=lambda b: b[2] * b[3], reverse=True)  # type: ignore[return-value]

    def _detect_near(self, gray: np.ndarray, near: Box) -> list[Box]:
        x, y, w, h = near
        H, W = gray.shape[:2]
        x0, y0 = max(0, int(x - 0.6 * w)), max(0, int(y - 0.6 * h))
        x1, y1 = min(W, int(x + 1.6 * w)), min(H, int(y + 1.6 * h))
        roi = gray[y0:y1, x0:x1]
        if roi.size == 0:
            return []
        scale = min(1.0, 48.0 / max(1, w))  # search for a ~48 px face: twice Haar's window, cheap
        small = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else roi
        lo, hi = max(20, int(0.7 * w * scale)), max(24, int(1.45 * w * scale))
        boxes = self.frontal.detectMultiScale(small, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo),
                                              maxSize=(hi, hi))
        out = [(int(round(bx / scale)) + x0, int(round(by / scale)) + y0, int(round(bw / scale)),
                int(round(bh / scale)))
               for bx, by, bw, bh in boxes]
        return sorted(out, key=lambda b: b[2] * b[3], reverse=True)


def _finish(crop: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    if cfg.equalize:
        crop = cv2.equalizeHist(crop)
    if cfg.denoise:
        crop = cv2.fastNlMeansDenoising(crop, None, h=7)
    return crop


def crop_face(gray: np.ndarray, box: Box, cfg: PreprocessConfig) -> np.ndarray:
    """Square crop around a plain box with the margin (and the vertical offset), resized to `image_size`, uint8.

    The Haar crop, pixel for pixel what it always was (offset 0). Normalisation to the CNN's input
    range happens inside the Keras model, so the crop stays uint8.
    """
    gray = gray if gray.ndim == 2 else cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * cfg.face_margin)))
    cx, cy = x + w / 2, y + h / 2 + cfg.face_offset * side
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = gray.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    crop = gray[y0:y0 + side, x0:x0 + side]
    return _finish(cv2.resize(crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA), cfg)


def center_box(width: int, height: int) -> Box:
    """The fallback region when no face was ever found: the central square of the frame."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def box_of(face: Face, width: int | None = None, height: int | None = None) -> Box:
    """The (x, y, w, h) box of a detection or a plain box, as ints."""
    return face.int_box(width, height) if isinstance(face, Detection) else tuple(int(v) for v in face)


def save_face_models(cfg: PreprocessConfig, model_dir: Path | None, dest: Path) -> list[Path]:
    """Copy the detector files `cfg` uses into `dest/face_detector` (processed data, then the model bundle:
    a bundle carries the detector its faces were found with). Haar needs none (it ships with OpenCV)."""
    if cfg.detector != "blazeface":
        return []
    (dest / BUNDLE_DIR).mkdir(parents=True, exist_ok=True)
    out = []
    for name in MODEL_FILES.values():
        src = Path(model_dir or DEFAULT_MODEL_DIR) / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: BlazeFace model missing; run `make assets`")
        out.append(Path(shutil.copy2(src, dest / BUNDLE_DIR / name)))
    return out


@dataclass
class FaceFrames:
    """Face crops of a sequence of sampled frames.

    `crops` (n, S, S) uint8; `face` (n,) bool: a face box applies to the frame (detected there, or
    carried from the nearest detection in the sequence); frames with `face == False` hold a
    centre-crop fallback and must be masked, never read as an expression.
    `detected` (n,) bool: the detector itself fired on that frame. `boxes` (n, 4) int.
    """

    indices: np.ndarray
    crops: np.ndarray
    face: np.ndarray
    detected: np.ndarray
    boxes: np.ndarray


class FacePath:
    """Detector + crop, configured by the preprocessing settings (see the module docstring).

    `model_dir` holds the BlazeFace `.tflite` files (`paths.face_models`, or a bundle's `face_detector/`);
    `detector` replaces the configured one (any object with `detect(frame) -> [Box]`: tests).
    """

    def __init__(self, cfg: PreprocessConfig, model_dir: str | Path | None = None, detector: Any = None) -> None:
        self.cfg = cfg
        self.spec = CropSpec(size=cfg.image_size, margin=cfg.face_margin, offset=cfg.face_offset, align=cfg.align)
        if detector is not None:
            self.detector = detector
        elif cfg.detector == "haar":
            self.detector = FaceDetector(cfg.min_face_frac)
        else:
            if model_dir is None:
                raise ValueError("preprocess.detector=blazeface needs the folder of the BlazeFace models")
            self.detector = BlazeFaceDetector("auto", model_dir, min_face_frac=cfg.min_face_frac)
        # BlazeFace reads a whole frame as cheaply as a region (one small forward pass either way), so the
        # tracker searches whole frames and keeps near-box searches for faces the whole frame misses;
        # Haar is costly on whole frames, so its tracker searches near the last box first (as it always did).
        self.near_first = not isinstance(self.detector, BlazeFaceDetector)

    def detect(self, frame: np.ndarray, near: Box | None = None) -> list[Face]:
        """Faces in a grey or BGR frame, largest first (with `near`: only around that box)."""
        if isinstance(self.detector, BlazeFaceDetector):
            return self.detector.detections(frame, near)
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return self.detector.detect(gray, near) if near is not None else self.detector.detect(gray)

    def crop(self, frame: np.ndarray, face: Face | None) -> np.ndarray:
        """The face as the network reads it, (S, S) uint8; `None`: the centre-crop fallback (to be masked)."""
        if face is None:
            face = center_box(frame.shape[1], frame.shape[0])
        if isinstance(face, Detection):
            return _finish(face_crop(frame, face, self.spec), self.cfg)
        return crop_face(frame, face, self.cfg)

    def read(self, frame: np.ndarray) -> tuple[np.ndarray, Face | None]:
        """The largest face of a frame found by a whole-frame search, and its crop (the fallback if none)."""
        found = self.detect(frame)
        face = found[0] if found else None
        return self.crop(frame, face), face

    def sequence(self, frames: Iterable[tuple[int, np.ndarray]], max_gap: int = 8) -> FaceFrames:
        """Detect (every `cfg.detect_every` frames) and crop the largest face of each frame.

        Frames between detections reuse the nearest detected face within `max_gap` sampled frames
        (before or after), which bridges blinks, motion blur and the detector's misses without
        inventing a face where there was none for long.
        """
        idxs, kept, faces = [], [], []
        for k, (idx, frame) in enumerate(frames):
            face = None
            if k % max(1, self.cfg.detect_every) == 0 or not any(f is not None for f in faces):
                found = self.detect(frame)
                face = found[0] if found else None
            idxs.append(idx)
            kept.append(frame)
            faces.append(face)
        n = len(idxs)
        det = np.array([f is not None for f in faces], dtype=bool)
        filled = list(faces)
        det_pos = np.flatnonzero(det)
        for i in range(n):
            if filled[i] is None and det_pos.size:
                j = det_pos[np.argmin(np.abs(det_pos - i))]
                if abs(j - i) <= max_gap:
                    filled[i] = faces[j]
        crops = np.zeros((n, self.cfg.image_size, self.cfg.image_size), np.uint8)
        box_arr = np.zeros((n, 4), np.int32)
        for i, frame in enumerate(kept):
            crops[i] = self.crop(frame, filled[i])
            H, W = frame.shape[:2]
            box_arr[i] = box_of(filled[i], W, H) if filled[i] is not None else center_box(W, H)
        return FaceFrames(np.array(idxs, dtype=np.int64), crops, np.array([f is not None for f in filled]), det,
                          box_arr)

    def clip(self, path: str | Path, n_frames: int | None = None) -> tuple[FaceFrames, VideoInfo]:
        """Sample `n_frames` (default `cfg.n_frames`) frames uniformly from a clip and return their face crops."""
        info = probe(path)
        ff = self.sequence(iter_frames(path, uniform_indices(info.n_frames, n_frames or self.cfg.n_frames)))
        if len(ff.indices) == 0:
            raise VideoError(f"{path}: no frame could be decoded")
        return ff, info


def _as_path(cfg: PreprocessConfig, detector: Any) -> FacePath:
    return detector if isinstance(detector, FacePath) else FacePath(cfg, detector=detector)


def faces_from_frames(frames: Iterable[tuple[int, np.ndarray]], cfg: PreprocessConfig, detector: Any,
                      max_gap: int = 8) -> FaceFrames:
    """`FacePath.sequence` with a given detector (or FacePath)."""
    return _as_path(cfg, detector).sequence(frames, max_gap)


def clip_faces(path: str | Path, cfg: PreprocessConfig, detector: Any,
               n_frames: int | None = None) -> tuple[FaceFrames, VideoInfo]:
    """`FacePath.clip` with a given detector (or FacePath)."""
    return _as_path(cfg, detector).clip(path, n_frames)
