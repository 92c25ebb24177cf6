"""Faces: the ONE face path. Finding, aligning and cropping faces for training (preprocess),
evaluation (real faces) and serving (analyze, which follows faces over time with `features.tracking.FaceTracker`).

`FacePath(cfg, model_dir)` is built from the preprocessing settings a model was trained with
(`detector`, `face_margin`, `face_offset`, `align`, `image_size`, `equalize`, `denoise`), so a model
always sees faces prepared exactly the way it was trained on:
- `detector: blazeface` (the only one): MediaPipe's BlazeFace (`features.blazeface`, "auto": short range,
  full range for small faces), boxes with eye keypoints; crops are eye-levelled FER-style squares
  (`features.align.face_crop`: margin and vertical offset of the box, measured on real faces).
- `detector: haar` (OpenCV's Haar cascades) is retired: it had neither the scores nor the keypoints the new-face
  gate and the quality checks need, so it reported faces on clouds and textures and read every face it found.
  The setting, and a bundle saved before the setting existed (Haar was its face path), fail at load with a
  message that says so (`config.PreprocessConfig`).
A face not followed yet must pass the new-face gate (`new_faces`, `is_face`: features.quality), and every
face read carries a quality (`quality`: score, size, sharpness, head turn) that says whether it can be read.
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
from video_emotion.features.quality import FaceQuality, face_quality, is_face
from video_emotion.features.video import VideoError, VideoInfo, iter_frames, probe, uniform_indices

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Face = Any  # a BlazeFace `Detection` (box, score, keypoints), or a plain `Box` from a detector a test gives
BUNDLE_DIR = "face_detector"  # where processed data and model bundles keep the detector they were made with


def _finish(crop: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    if cfg.equalize:
        crop = cv2.equalizeHist(crop)
    if cfg.denoise:
        crop = cv2.fastNlMeansDenoising(crop, None, h=7)
    return crop


def crop_face(gray: np.ndarray, box: Box, cfg: PreprocessConfig) -> np.ndarray:
    """Square crop around a plain box with the margin (and the vertical offset), resized to `image_size`, uint8.

    The crop of a box without keypoints: the masked centre-crop fallback, and a detector a test gives `FacePath`.
    Normalisation to the CNN's input range happens inside the Keras model, so the crop stays uint8.
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
    a bundle carries the detector its faces were found with)."""
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
        else:
            if model_dir is None:
                raise ValueError("preprocess.detector=blazeface needs the folder of the BlazeFace models")
            self.detector = BlazeFaceDetector("auto", model_dir, min_face_frac=cfg.min_face_frac)
        # BlazeFace reads a whole frame as cheaply as a region (one small forward pass either way), so the
        # tracker searches whole frames and keeps near-box searches for faces the whole frame misses;
        # a detector given by a test is searched near the last box first (as the retired Haar path was).
        self.near_first = not isinstance(self.detector, BlazeFaceDetector)

    def detect(self, frame: np.ndarray, near: Box | None = None) -> list[Face]:
        """Faces in a grey or BGR frame, largest first (with `near`: only around that box)."""
        if isinstance(self.detector, BlazeFaceDetector):
            return self.detector.detections(frame, near)
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return self.detector.detect(gray, near) if near is not None else self.detector.detect(gray)

    def new_faces(self, frame: np.ndarray) -> list[Face]:
        """Faces of a whole-frame search that pass the new-face gate (`features.quality.is_face`: the
        detectors sure, the keypoints plausible), largest first. Nothing invented on a face-less frame."""
        return [f for f in self.detect(frame) if is_face(self.detector, frame, f)]

    def is_face(self, frame: np.ndarray, face: Face) -> bool:
        """Whether one detection of `frame` passes the new-face gate (a face not followed yet must)."""
        return is_face(self.detector, frame, face)

    def quality(self, frame: np.ndarray, face: Face, crop: np.ndarray) -> FaceQuality:
        """How well the face can be read (score, size, sharpness of `crop`, head turn): `features.quality`."""
        return face_quality(face, crop)

    def crop(self, frame: np.ndarray, face: Face | None) -> np.ndarray:
        """The face as the network reads it, (S, S) uint8; `None`: the centre-crop fallback (to be masked)."""
        if face is None:
            face = center_box(frame.shape[1], frame.shape[0])
        if isinstance(face, Detection):
            return _finish(face_crop(frame, face, self.spec), self.cfg)
        return crop_face(frame, face, self.cfg)

    def read(self, frame: np.ndarray) -> tuple[np.ndarray, Face | None]:
        """The largest face of a frame found by a whole-frame search (and passing the new-face gate), and
        its crop (the fallback if none)."""
        found = self.new_faces(frame)
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
                found = self.new_faces(frame)
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
