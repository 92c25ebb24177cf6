"""Video -> emotion timeline + video-level summary. Used by the CLI, the service and evaluation.

The model bundle carries its own labels and preprocessing settings; nothing about the model is
hardcoded here. The video is streamed window by window (memory bounded by one window, whatever the
video's length), faces are found and cropped by the same `video` functions as in training, and the
windows run through the CNN+LSTM in batches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import PreprocessConfig, section_from_dict
from video_emotion.labels import AROUSAL, VALENCE, polarity, translate
from video_emotion.video import FaceDetector, VideoError, faces_from_frames, iter_frames, probe, uniform_indices

BUNDLE_MODEL = "model.keras"
BUNDLE_SETTINGS = "preprocessing.json"
TAG_MIN_SHARE = 0.15  # an emotion becomes a tag when it leads at least this share of the analysed time


@dataclass
class ModelBundle:
    """A trained model with the settings it was trained with (labels, frames, crop, window)."""

    model: Any
    labels: list[str]
    preprocess: PreprocessConfig
    window_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path, info: dict[str, Any] | None = None) -> "ModelBundle":
        import keras

        import video_emotion.model  # noqa: F401  (registers the custom layers)

        folder = Path(folder)
        settings_path = folder / BUNDLE_SETTINGS
        if not (folder / BUNDLE_MODEL).is_file() or not settings_path.is_file():
            raise FileNotFoundError(f"{folder}: not a model bundle ({BUNDLE_MODEL} + {BUNDLE_SETTINGS} expected)")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        model = keras.models.load_model(folder / BUNDLE_MODEL, compile=False)
        return cls(model=model, labels=list(settings["labels"]),
                   preprocess=section_from_dict(PreprocessConfig, settings),
                   window_s=float(settings.get("window_s", 2.0)),
                   info={**settings.get("model_info", {}), **(info or {})})

    @property
    def n_frames(self) -> int:
        return self.preprocess.n_frames

    def predict(self, frames: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, T, S, S) uint8 crops and (N, T) masks -> (N, n_labels) probabilities."""
        out = []
        for i in range(0, len(frames), batch_size):
            out.append(np.asarray(self.model({"frames": frames[i:i + batch_size].astype("float32"),
                                              "mask": mask[i:i + batch_size].astype("float32")},
                                             training=False)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)


@dataclass
class Window:
    start_s: float
    end_s: float
    crops: np.ndarray   # (T, S, S)
    face: np.ndarray    # (T,)


def iter_windows(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None,
                 detector: FaceDetector | None = None) -> Iterator[Window]:
    """Consecutive windows of `bundle.window_s` seconds, each resampled to the model's T frames.

    Frames are sampled at `sample_fps` (default: the model's own rate, T / window_s); only sampled
    frames are decoded, and only one window's frames are held at a time.
    """
    info = probe(path)
    cfg = bundle.preprocess
    detector = detector or FaceDetector(cfg.min_face_frac)
    T = bundle.n_frames
    rate = sample_fps or T / bundle.window_s
    step = max(1.0, info.fps / rate)
    frames_per_window = max(1, int(round(bundle.window_s * info.fps)))
    n_windows = max(1, math.ceil(info.n_frames / frames_per_window))
    all_idx = np.unique(np.floor(np.arange(0, info.n_frames, step)).astype(np.int64))
    stream = iter_frames(path, all_idx)
    pending: tuple[int, np.ndarray] | None = None
    for w in range(n_windows):
        lo, hi = w * frames_per_window, min(info.n_frames, (w + 1) * frames_per_window)
        batch: list[tuple[int, np.ndarray]] = []
        if pending is not None:
            if pending[0] < hi:
                batch.append(pending)
                pending = None
        if pending is None:
            for idx, frame in stream:
                if idx >= hi:
                    pending = (idx, frame)
                    break
                batch.append((idx, frame))
        if not batch:
            if pending is None:
                break  # the file ended before its header said it would
            continue
        ff = faces_from_frames(batch, cfg, detector)
        pick = uniform_indices(len(batch), T)
        yield Window(start_s=lo / info.fps, end_s=hi / info.fps, crops=ff.crops[pick], face=ff.face[pick])


def analyze_video(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None, lang: str = "en",
                  batch_windows: int = 16, progress: bool = False, transcript: str | None = None,
                  transcript_lang: str | None = None, min_frames: int = 1) -> dict[str, Any]:
    """The analysis-result contract (see the design notes) for one video.

    `transcript` (plain text, SRT or VTT content) adds text sentiment, aligned to the timeline where
    it is timed; `lang` (en|zh) adds translated label names beside the canonical English keys.
    """
    from video_emotion.labels import TRANSLATIONS

    if lang not in TRANSLATIONS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(TRANSLATIONS)}")
    text = None
    if transcript is not None:
        from video_emotion.text_sentiment import analyze_transcript

        text = analyze_transcript(transcript, transcript_lang)  # parse before the (slow) video work
    path = Path(path)
    info = probe(path)
    if info.n_frames < min_frames:
        raise VideoError(f"{path.name}: {info.n_frames} frame(s); at least {min_frames} are needed to read "
                         "an expression over time")
    if sample_fps is not None and not (0 < sample_fps <= 120):
        raise ValueError(f"sample_fps must be in (0, 120], got {sample_fps}")
    windows: list[Window] = []
    timeline: list[dict[str, Any]] = []
    gaps: list[dict[str, float]] = []
    frames_analysed = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(info.duration_s, 1), unit="s", desc=path.name, disable=None)

    def flush() -> None:
        nonlocal windows
        with_face = [w for w in windows if w.face.any()]
        for w in windows:
            if not w.face.any():
                gaps.append({"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3)})
        if with_face:
            probs = bundle.predict(np.stack([w.crops for w in with_face]), np.stack([w.face for w in with_face]),
                                   batch_size=batch_windows)
            for w, p in zip(with_face, probs):
                timeline.append(_segment(w, p, bundle.labels, lang))
        windows = []

    for w in iter_windows(path, bundle, sample_fps):
        windows.append(w)
        frames_analysed += len(w.face)
        if bar is not None:
            bar.update(round(w.end_s - w.start_s, 1))
        if len(windows) >= batch_windows:
            flush()
    flush()
    if bar is not None:
        bar.close()
    timeline.sort(key=lambda s: s["start_s"])
    result = {
        "video": path.name, "duration_s": round(info.duration_s, 3), "fps": round(info.fps, 3),
        "frames_analysed": frames_analysed,
        "model": {"name": bundle.info.get("name", "video-emotion"), "version": str(bundle.info.get("version", "local")),
                  "labels": list(bundle.labels)},
        "faces_detected": bool(timeline),
        "timeline": timeline,
        "summary": summarize(timeline, bundle.labels, lang),
        "no_face_segments": gaps,
        "lang": lang,
        "label_names": {lab: translate(lab, lang) for lab in bundle.labels},
    }
    from video_emotion.text_sentiment import align, fuse

    if text is not None:
        align(timeline, text)
        result["transcript"] = text
    face_score = result["summary"]["sentiment_score"]
    combined, how = fuse(face_score, text["score"] if text else None)
    result["summary"]["combined_sentiment_score"] = combined
    result["summary"]["combined_sentiment"] = polarity(combined) if combined is not None else None
    result["summary"]["sentiment_sources"] = how
    return result


def _segment(w: Window, p: np.ndarray, labels: list[str], lang: str) -> dict[str, Any]:
    probs = {lab: round(float(v), 4) for lab, v in zip(labels, p)}
    top = labels[int(np.argmax(p))]
    val = sum(probs[k] * VALENCE.get(k, 0.0) for k in labels)
    aro = sum(probs[k] * AROUSAL.get(k, 0.0) for k in labels)
    seg = {"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3), "emotion": top,
           "confidence": round(float(np.max(p)), 4), "probabilities": probs, "valence": round(val, 4),
           "arousal": round(aro, 4), "sentiment": polarity(val), "face_coverage": round(float(w.face.mean()), 3)}
    if lang != "en":
        seg["emotion_label"] = translate(top, lang)
        seg["sentiment_label"] = translate(seg["sentiment"], lang)
    return seg


def summarize(timeline: list[dict[str, Any]], labels: list[str], lang: str = "en") -> dict[str, Any]:
    """Video-level reading: time-weighted distribution, dominant emotion, sentiment and tags."""
    if not timeline:
        return {"dominant_emotion": None, "distribution": {lab: 0.0 for lab in labels}, "sentiment": None,
                "sentiment_score": None, "tags": [], "note": "no face was found in the video"}
    dur = np.array([max(1e-6, s["end_s"] - s["start_s"]) for s in timeline])
    weights = dur / dur.sum()
    P = np.array([[s["probabilities"][lab] for lab in labels] for s in timeline])
    dist = (weights[:, None] * P).sum(0)
    score = float(np.clip(sum(w * s["valence"] for w, s in zip(weights, timeline)), -1, 1))
    lead: dict[str, float] = {}
    for w, s in zip(weights, timeline):
        lead[s["emotion"]] = lead.get(s["emotion"], 0.0) + float(w)
    tags = [k for k, v in sorted(lead.items(), key=lambda kv: -kv[1]) if v >= TAG_MIN_SHARE]
    dominant = labels[int(np.argmax(dist))]
    out = {"dominant_emotion": dominant, "distribution": {lab: round(float(v), 4) for lab, v in zip(labels, dist)},
           "sentiment": polarity(score), "sentiment_score": round(score, 4), "tags": tags,
           "time_share": {k: round(v, 4) for k, v in sorted(lead.items(), key=lambda kv: -kv[1])}}
    if lang != "en":
        out["dominant_emotion_label"] = translate(dominant, lang)
        out["tag_labels"] = [translate(t, lang) for t in tags]
        out["sentiment_label"] = translate(out["sentiment"], lang)
    return out


__all__ = ["ModelBundle", "VideoError", "analyze_video", "iter_windows", "summarize"]
