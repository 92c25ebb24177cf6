"""Faces: detection, cropping and per-clip face sequences: the ONLY face preprocessing.

Training (preprocess stage), evaluation and serving (analyze) all crop faces with these functions,
so a model always sees faces prepared exactly the way it was trained on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from video_emotion.config import PreprocessConfig
from video_emotion.features.video import (
    VideoError,
    VideoInfo,
    iter_frames,
    probe,
    uniform_indices,
)

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


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
        close to it: a few pyramid levels on a small crop instead of the whole frame, which is what
        lets serving track a face at every sampled frame cheaply. Nothing found there -> [].
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
        boxes = self.frontal.detectMultiScale(small, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo), maxSize=(hi, hi))
        out = [(int(round(bx / scale)) + x0, int(round(by / scale)) + y0, int(round(bw / scale)), int(round(bh / scale)))
               for bx, by, bw, bh in boxes]
        return sorted(out, key=lambda b: b[2] * b[3], reverse=True)


def crop_face(gray: np.ndarray, box: Box, cfg: PreprocessConfig) -> np.ndarray:
    """Square crop around `box` with a margin, resized to `image_size`, as uint8.

    Normalisation to the CNN's input range happens inside the Keras model, so the crop stays uint8.
    """
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * cfg.face_margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    H, W = gray.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    crop = gray[y0:y0 + side, x0:x0 + side]
    crop = cv2.resize(crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA)
    if cfg.equalize:
        crop = cv2.equalizeHist(crop)
    if cfg.denoise:
        crop = cv2.fastNlMeansDenoising(crop, None, h=7)
    return crop


def center_box(width: int, height: int) -> Box:
    """The fallback region when no face was ever found: the central square of the frame."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


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


def faces_from_frames(frames: Iterable[tuple[int, np.ndarray]], cfg: PreprocessConfig,
                      detector: FaceDetector, max_gap: int = 8) -> FaceFrames:
    """Detect (every `cfg.detect_every` frames) and crop the largest face of each frame.

    Frames between detections reuse the nearest detected box within `max_gap` sampled frames
    (before or after), which bridges blinks, motion blur and the detector's misses without
    inventing a face where there was none for long.
    """
    idxs, greys, boxes, detected = [], [], [], []
    last_box: Box | None = None
    for k, (idx, frame) in enumerate(frames):
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        box = None
        if k % max(1, cfg.detect_every) == 0 or last_box is None:
            found = detector.detect(gray)
            box = found[0] if found else None
        idxs.append(idx)
        greys.append(gray)
        boxes.append(box)
        detected.append(box is not None)
        if box is not None:
            last_box = box
    n = len(idxs)
    det = np.array(detected, dtype=bool)
    filled: list[Box | None] = list(boxes)
    det_pos = np.flatnonzero(det)
    for i in range(n):
        if filled[i] is None and det_pos.size:
            j = det_pos[np.argmin(np.abs(det_pos - i))]
            if abs(j - i) <= max_gap:
                filled[i] = boxes[j]
    face = np.array([b is not None for b in filled], dtype=bool)
    crops = np.zeros((n, cfg.image_size, cfg.image_size), np.uint8)
    box_arr = np.zeros((n, 4), np.int32)
    for i, gray in enumerate(greys):
        b = filled[i] if filled[i] is not None else center_box(gray.shape[1], gray.shape[0])
        crops[i] = crop_face(gray, b, cfg)
        box_arr[i] = b
    return FaceFrames(np.array(idxs, dtype=np.int64), crops, face, det, box_arr)


def clip_faces(path: str | Path, cfg: PreprocessConfig, detector: FaceDetector,
               n_frames: int | None = None) -> tuple[FaceFrames, VideoInfo]:
    """Sample `cfg.n_frames` frames uniformly from a clip and return their face crops."""
    info = probe(path)
    indices = uniform_indices(info.n_frames, n_frames or cfg.n_frames)
    ff = faces_from_frames(iter_frames(path, indices), cfg, detector)
    if len(ff.indices) == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    return ff, info
