"""Face crops the way the per-frame network reads faces: eyes level, tight square, grey uint8.

One function, `face_crop`, makes every crop: training (preprocess), evaluation and serving call it
with the same `CropSpec`, so a model always sees faces prepared the way it was trained on. The
mirror-image average (`flip_average`) works on those crops and needs nothing else: the mirror of a
crop is the crop of the mirrored frame.

Geometry: the crop is a square centred on the detector's box, side = box size x (1 + 2 x margin),
moved down by `offset` x side along the face's vertical axis, and, with `align`, turned about its
centre so that the eyes are level (angle from the right eye to the left eye, BlazeFace keypoints 0
and 1). The defaults (112 px, margin 0.05, offset 0 on a BlazeFace short-range box) are the framing
the face-api.js expression network reads best: its own pipeline crops its detector's box with no
margin, and on the real-face dev set (benchmarks/realfaces_dev.py) margins 0 to 0.10 around the
BlazeFace box read well on both datasets while -0.05 and 0.20 lose 15 points; 0.05 is the middle of
that plateau. (For the FER-2013 mini-Xception, 64 px, margin 0.10 / offset -0.10 reproduce the
framing of FER-style crops, measured without labels.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from video_emotion.features.blazeface import Box, Detection


@dataclass(frozen=True)
class CropSpec:
    size: int = 112         # output side (the per-frame network's input)
    margin: float = 0.05    # added on each side, as a fraction of the detector box side
    offset: float = 0.0     # centre moved down by this fraction of the crop side (negative: up)
    align: bool = True      # rotate so that the eyes are level (needs keypoints)
    max_angle: float = 45.0  # larger eye angles are not trusted (a keypoint slip), left unrotated


DEFAULT_CROP = CropSpec()


def _sampled(frame: np.ndarray, inverse: np.ndarray, native: int) -> tuple[np.ndarray, np.ndarray]:
    """The grey part of `frame` that a warp reads (the box of the square's corners in the frame, 2 px wider,
    inside the frame), and the warp's inverse map moved onto it: a colour frame is converted there only, not
    whole (a 1080p frame is 40x the pixels of a face's box). The warp reads the same pixels at the same
    positions: the map moves by whole pixels, and every pixel it samples (the frame's edge, where it
    replicates the border) lies in the part."""
    if frame.ndim == 2:
        return frame, inverse
    H, W = frame.shape[:2]
    ends = inverse @ np.array([[0, native - 1, 0, native - 1], [0, 0, native - 1, native - 1], [1, 1, 1, 1]], float)
    x0, y0 = (int(np.clip(np.floor(ends[i].min()) - 2, 0, n - 1)) for i, n in ((0, W), (1, H)))
    x1, y1 = (int(np.clip(np.ceil(ends[i].max()) + 3, lo + 1, n)) for i, n, lo in ((0, W, x0), (1, H, y0)))
    inverse = inverse.copy()
    inverse[:, 2] -= (x0, y0)  # exact: x0, y0 are whole numbers between 0 and the map's own offsets
    return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), inverse


def crop_square(gray: np.ndarray, center: tuple[float, float], side: float, angle_deg: float = 0.0,
                size: int = 64) -> np.ndarray:
    """A square of `side` frame pixels centred on `center` (x, y), turned by `angle_deg`, as size x size uint8.

    `angle_deg` is the face's roll (the eye line's angle in the image, y down); the crop is turned
    by it, so a face with that roll comes out level. Parts outside the frame replicate its border
    (as the Haar crop does). The square is sampled at its own resolution and then shrunk with
    INTER_AREA, so a large face is averaged, not aliased.
    """
    side = max(float(side), 2.0)
    native = int(max(size, min(round(side), 8 * size)))
    s = native / side
    cx, cy = center
    M = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle_deg), s)
    M[:, 2] += ((native - 1) / 2.0 - cx, (native - 1) / 2.0 - cy)
    source, inverse = _sampled(gray, cv2.invertAffineTransform(M), native)
    patch = cv2.warpAffine(source, inverse, (native, native), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    if native != size:
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return patch


def crop_geometry(det: Detection | Box, spec: CropSpec = DEFAULT_CROP) -> tuple[tuple[float, float], float, float]:
    """(centre (x, y), side, angle in degrees) of the crop for a detection or a plain box."""
    if isinstance(det, Detection):
        x, y, w, h = det.box
        angle = det.eye_angle_deg if spec.align else 0.0
        if abs(angle) > spec.max_angle:
            angle = 0.0
    else:
        x, y, w, h = (float(v) for v in det)
        angle = 0.0
    side = max(w, h) * (1.0 + 2.0 * spec.margin)
    cx, cy = x + w / 2.0 - 0.5, y + h / 2.0 - 0.5  # pixel centres are at integer coordinates
    a = np.radians(angle)
    cx, cy = cx - np.sin(a) * spec.offset * side, cy + np.cos(a) * spec.offset * side  # "down" in the face
    return (float(cx), float(cy)), float(side), float(angle)


def face_crop(frame: np.ndarray, det: Detection | Box, spec: CropSpec = DEFAULT_CROP) -> np.ndarray:
    """The face as the network reads it: (size, size) uint8 grey, eyes level when `spec.align`.

    `frame`: grey or BGR uint8; `det`: a BlazeFace `Detection` (box and keypoints, frame pixels) or a
    plain (x, y, w, h) box (no keypoints: never rotated).
    """
    center, side, angle = crop_geometry(det, spec)
    return crop_square(frame, center, side, angle, spec.size)


def mirrored(crops: np.ndarray, width_axis: int = -1) -> np.ndarray:
    """The crops flipped left-right (width axis -1 for (..., H, W), -2 for (..., H, W, C))."""
    return np.flip(crops, axis=width_axis)


def flip_average(predict: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, width_axis: int = -1) -> np.ndarray:
    """Test-time mirror averaging: mean of `predict` on the crops and on their mirror images.

    `predict` maps a batch (first axis) to per-class probabilities; it is called once, on the crops
    and their mirrors stacked, so a Keras model runs one batch. Expressions are left-right symmetric
    as labels (a mirrored smile is a smile), so no class is remapped.
    """
    crops = np.asarray(crops)
    n = crops.shape[0]
    probs = np.asarray(predict(np.concatenate([crops, mirrored(crops, width_axis)], axis=0)))
    return (probs[:n] + probs[n:]) / 2.0
