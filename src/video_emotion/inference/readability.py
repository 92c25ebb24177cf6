"""The quality gate of a window: are its faces good enough to read an expression from?

Each frame's face carries a `FaceQuality` (features.quality: detector score, size, sharpness, head turn).
A window with faces is `unreadable` when fewer than `READABLE_SHARE` of its face frames are readable: it
is marked so in the timeline and left out of the summary instead of voting with a guess. In a readable
window only the readable frames are read (the others are masked like frames without a face).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from video_emotion.inference.windows import Window

READABLE_SHARE = 0.5


def readable_mask(w: Window) -> np.ndarray:
    """(T,) bool: frames whose face can be read (a face without a quality record counts as readable)."""
    quality = w.quality or [None] * len(w.face)
    return np.array([bool(f) and (q is None or q.readable) for f, q in zip(w.face, quality, strict=False)])


def is_unreadable(w: Window) -> bool:
    """A window with faces, too few of them readable."""
    n_face = int(np.count_nonzero(w.face))
    return n_face > 0 and np.count_nonzero(readable_mask(w)) < READABLE_SHARE * n_face


def window_quality(w: Window) -> dict[str, Any]:
    """The window's face quality: frames with a face and readable, median score, size, sharpness and
    head turn of its faces, and why frames were unreadable (most common first)."""
    qs = [q for f, q in zip(w.face, w.quality or [], strict=False) if f and q is not None]
    out: dict[str, Any] = {"face_frames": int(np.count_nonzero(w.face)),
                           "readable_frames": int(np.count_nonzero(readable_mask(w)))}
    if qs:
        med = lambda vals: round(float(np.median(vals)), 3)  # noqa: E731
        out.update(score=med([q.score for q in qs]), size_px=int(np.median([q.size_px for q in qs])),
                   sharpness=med([q.sharpness for q in qs]), yaw_deg=med([q.yaw_deg for q in qs]),
                   roll_deg=med([q.roll_deg for q in qs]))
        reasons = Counter(r for q in qs if not q.readable for r in q.reason.split(", ") if r)
        if reasons:
            out["unreadable_because"] = [r for r, _ in reasons.most_common()]
    return out


def unreadable_segment(w: Window) -> dict[str, Any]:
    """A timeline entry for a window whose faces were found but could not be read: no emotion, no guess."""
    return {"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3), "unreadable": True, "emotion": None,
            "confidence": None, "probabilities": None, "valence": None, "arousal": None, "sentiment": None,
            "face_coverage": round(float(w.face.mean()), 3), "quality": window_quality(w)}
