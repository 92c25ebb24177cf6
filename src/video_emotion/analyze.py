"""Video -> emotion timeline + video-level summary. Used by the CLI, the service and evaluation.

The model bundle carries its own labels and preprocessing settings; nothing about the model is
hardcoded here. The video is streamed window by window (memory bounded by one window, whatever the
video's length), faces are found and cropped by the same `video` functions as in training, and the
windows run through the CNN+LSTM in batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import PreprocessConfig, section_from_dict
from video_emotion.labels import arousal_of, polarity, translate, valence_of
from video_emotion.video import FaceDetector, VideoError, VideoInfo, iter_frames, probe, uniform_indices

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
                   info={**settings.get("model_info", {}), **(info or {})},
                   modalities=list(settings.get("model", {}).get("modalities", ["video"])))

    modalities: list[str] = field(default_factory=lambda: ["video"])

    @property
    def n_frames(self) -> int:
        return self.preprocess.n_frames

    _compiled: Any = None

    def _fn(self):
        """The model as one traced graph with a fixed signature (any batch size): traced once, then
        several times faster than eager calls, which pay Python overhead on every LSTM step."""
        if self._compiled is None:
            import tensorflow as tf

            spec = {name: tf.TensorSpec([None, *self.input_shapes[name]], tf.float32) for name in self.input_shapes}
            self._compiled = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        return self._compiled

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        inputs = self.model.input if isinstance(self.model.input, dict) else {}
        return {name: tuple(int(d) for d in t.shape[1:]) for name, t in inputs.items()}

    @property
    def n_audio_frames(self) -> int:
        return self.input_shapes.get("audio", (64, 200))[1]

    def warm_up(self) -> None:
        """Trace the graph now (a service does this at start-up, not on its first request)."""
        self.predict_inputs({name: np.zeros((1, *shape), np.float32) for name, shape in self.input_shapes.items()})

    def predict_inputs(self, inputs: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Named model inputs (see model.model_inputs) -> (N, n_labels) probabilities."""
        fn = self._fn()
        n = len(next(iter(inputs.values()))) if inputs else 0
        out = []
        for i in range(0, n, batch_size):
            out.append(np.asarray(fn({k: v[i:i + batch_size].astype("float32") for k, v in inputs.items()})))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, frames: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, T, S, S) uint8 crops and (N, T) masks -> (N, n_labels) probabilities (video models)."""
        return self.predict_inputs({"frames": frames, "mask": mask}, batch_size)


@dataclass
class Window:
    start_s: float
    end_s: float
    crops: np.ndarray   # (T, S, S)
    face: np.ndarray    # (T,)
    new_frames: int = 0  # sampled frames first read for this window (sums to the frames analysed)
    span_s: tuple[float, float] | None = None  # time covered by the window's frames (audio is cut to it)
    tracks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per face: (crops, face)


DETECT_INTERVAL_S = 0.125  # serving looks for the face at most 8 times a second (mostly near the last box)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


class _Tracker:
    """Streaming face tracks. Every `every`-th frame each live track is looked for near its last box
    (cheap); a whole-frame search runs every `full_every` frames, when nothing is tracked, and (every
    few frames) when the largest face is lost: it starts tracks for new faces, matched by overlap.
    A track's box is carried for `max_gap` frames without a detection, then the track ends.
    The largest live face is the primary one: it drives the main timeline."""

    def __init__(self, detector: FaceDetector, cfg: PreprocessConfig, every: int, max_gap: int,
                 track: bool = True) -> None:
        self.detector, self.cfg, self.every, self.max_gap, self.track = detector, cfg, every, max_gap, track
        self.k = 0
        self.tracks: dict[int, dict] = {}  # id -> {"box": Box, "age": int}
        self.ended: dict[int, dict] = {}   # tracks lost recently, for re-identification
        self.next_id = 0
        self.full_every = every * 16  # a whole-frame search at least every 16 detections

    def _whole_frame(self, gray: np.ndarray) -> None:
        found = self.detector.detect(gray)
        free = set(self.tracks)
        for box in found:  # largest first
            best = max(free, key=lambda t: _iou(self.tracks[t]["box"], box), default=None)
            if best is not None and _iou(self.tracks[best]["box"], box) >= 0.3:
                self.tracks[best].update(box=box, age=0)
                free.discard(best)
            else:
                back = max(self.ended, key=lambda t: _iou(self.ended[t]["box"], box), default=None)
                if back is not None and _iou(self.ended[back]["box"], box) >= 0.3:
                    self.tracks[back] = {"box": box, "age": 0}
                    del self.ended[back]
                else:
                    self.tracks[self.next_id] = {"box": box, "age": 0}
                    self.next_id += 1

    def _primary(self) -> int | None:
        live = [t for t, v in self.tracks.items() if v["age"] <= self.max_gap]
        return max(live, key=lambda t: self.tracks[t]["box"][2] * self.tracks[t]["box"][3], default=None)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, bool, dict[int, np.ndarray]]:
        """(primary crop, primary face flag, {track id: crop} of every live track) for one frame."""
        import cv2

        from video_emotion.video import center_box, crop_face

        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        primary = self._primary()
        if self.k % self.every == 0 or primary is None:
            if self.track and primary is not None and self.k % self.full_every:
                for v in self.tracks.values():
                    if v["age"] <= self.max_gap:
                        near = self.detector.detect(gray, near=v["box"])
                        if near:
                            v.update(box=near[0], age=0)
                lost = any(v["age"] > 0 for v in self.tracks.values() if v["age"] <= self.max_gap)
                if lost and self.k % (4 * self.every) == 0:
                    self._whole_frame(gray)  # a face is lost near its box: look everywhere
            else:
                self._whole_frame(gray)
        self.k += 1
        for t in [t for t, v in self.tracks.items() if v["age"] > self.max_gap]:
            self.ended[t] = self.tracks.pop(t)  # kept a while: the same face found again keeps its id
        for t in [t for t, v in self.ended.items() if v["age"] > 8 * self.max_gap]:
            del self.ended[t]
        crops = {t: crop_face(gray, v["box"], self.cfg) for t, v in self.tracks.items()}
        for v in (*self.tracks.values(), *self.ended.values()):
            v["age"] += 1
        primary = self._primary()
        if primary is None:
            return crop_face(gray, center_box(gray.shape[1], gray.shape[0]), self.cfg), False, {}
        return crops[primary], True, crops


def iter_windows(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None,
                 detector: FaceDetector | None = None,
                 detect_interval_s: float = DETECT_INTERVAL_S, fast: bool = True,
                 info: VideoInfo | None = None) -> Iterator[Window]:
    """Windows of `bundle.window_s` seconds, each holding the model's T frames at the model's rate.

    At the model's own rate (T / window_s, the default) windows follow each other. A higher
    `sample_fps` adds interleaved, overlapping windows (k = sample_fps / model rate of them per
    window length), so that every sampled frame goes through the CNN and the timeline gets k times
    finer; a lower one spreads T frames over fewer distinct frames. Only sampled frames are
    converted; memory holds about one window of crops whatever the video's length. The face
    detector runs every `detect_interval_s` seconds and frames in between reuse its box (faces move
    little in a quarter second); `detect_interval_s=0` detects on every sampled frame.
    """
    info = info or probe(path)
    cfg = bundle.preprocess
    detector = detector or FaceDetector(cfg.min_face_frac)
    T = bundle.n_frames
    model_rate = T / bundle.window_s
    rate = sample_fps or model_rate
    if rate <= model_rate * 1.001:  # consecutive windows, T frames picked from each
        k, grid_rate = 1, min(rate, info.fps)
    else:
        k = max(1, int(round(rate / model_rate)))
        grid_rate = min(model_rate * k, info.fps)
        k = max(1, int(round(grid_rate / model_rate)))
    every = 1 if detect_interval_s <= 0 or not fast else max(cfg.detect_every, int(round(grid_rate * detect_interval_s)))
    track = _Tracker(detector, cfg, every, max_gap=max(8, 2 * every), track=fast)
    n_grid = max(1, int(np.floor(info.duration_s * grid_rate + 1e-6)))
    grid_frames = np.minimum(np.floor((np.arange(n_grid) + 0.5) * info.fps / grid_rate), info.n_frames - 1).astype(np.int64)
    crops: dict[int, np.ndarray] = {}
    faces: dict[int, bool] = {}
    per_track: dict[int, dict[int, np.ndarray]] = {}  # grid index -> {track id: crop}
    pos = {int(f): [] for f in grid_frames}
    for g, f in enumerate(grid_frames):
        pos[int(f)].append(g)

    if k == 1:
        per_window = max(1, int(round(bundle.window_s * grid_rate)))
        spans = [(s, min(n_grid, s + per_window)) for s in range(0, n_grid, per_window)]
        picks = [s + uniform_indices(e - s, T) for s, e in spans]
        times = [(s / grid_rate, e / grid_rate) for s, e in spans]
        covered = times
    else:
        # Window j starts at grid frame j*hop and takes every k-th frame for T frames. With
        # gcd(hop, k) == 1 consecutive windows use different residues mod k, so each sampled frame
        # goes through the CNN about once while windows start k times more often than at the model rate.
        import math as _math

        hop = T
        while hop > 1 and _math.gcd(hop, k) != 1:
            hop -= 1
        starts = list(range(0, max(1, n_grid - (T - 1) * k), hop)) or [0]
        picks = [np.minimum(s + np.arange(T) * k, n_grid - 1) for s in starts]
        half = hop / grid_rate / 2
        covered = [(s / grid_rate, (s + (T - 1) * k + 1) / grid_rate) for s in starts]
        times = []
        for j, s in enumerate(starts):
            centre = (s + (T - 1) * k / 2) / grid_rate
            lo = 0.0 if j == 0 else centre - half
            hi = info.duration_s if j == len(starts) - 1 else centre + half
            times.append((lo, hi))
    next_window = 0
    fresh = 0
    for idx, frame in iter_frames(path, np.unique(grid_frames)):
        crop, face, others = track(frame)
        fresh += len(pos[int(idx)])
        for g in pos[int(idx)]:
            crops[g], faces[g], per_track[g] = crop, face, others
        last = pos[int(idx)][-1]
        while next_window < len(picks) and int(picks[next_window].max()) <= last:
            p = picks[next_window]
            yield Window(start_s=times[next_window][0], end_s=times[next_window][1],
                         crops=np.stack([crops[int(g)] for g in p]), face=np.array([faces[int(g)] for g in p]),
                         new_frames=fresh, span_s=covered[next_window], tracks=_track_windows(p, per_track))
            fresh = 0
            next_window += 1
            if next_window < len(picks):  # drop crops no later window needs
                low = int(picks[next_window].min())
                for g in [g for g in crops if g < low]:
                    del crops[g], faces[g], per_track[g]
    # A file that ends before its header says: close the windows that have frames.
    while next_window < len(picks):
        p = [int(g) for g in picks[next_window] if int(g) in crops]
        if not p:
            break
        p = [p[i] for i in uniform_indices(len(p), T)]
        yield Window(start_s=times[next_window][0], end_s=min(times[next_window][1], info.duration_s),
                     crops=np.stack([crops[g] for g in p]), face=np.array([faces[g] for g in p]),
                     span_s=covered[next_window])
        next_window += 1


def _track_windows(picks, per_track: dict[int, dict[int, np.ndarray]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each face track's crops at a window's frames (zeros and face=False where the track is absent)."""
    ids = sorted({t for g in picks for t in per_track.get(int(g), {})})
    out = {}
    for t in ids:
        face = np.array([t in per_track[int(g)] for g in picks])
        some = next(per_track[int(g)][t] for g in picks if t in per_track[int(g)])
        out[t] = (np.stack([per_track[int(g)].get(t, np.zeros_like(some)) for g in picks]), face)
    return out


def analyze_video(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None, lang: str = "en",
                  batch_windows: int = 16, progress: bool = False, transcript: str | None = None,
                  transcript_lang: str | None = None, min_frames: int = 1,
                  detect_interval_s: float = DETECT_INTERVAL_S, fast: bool = True) -> dict[str, Any]:
    """The analysis-result contract (see the design notes) for one video.

    `transcript` (plain text, SRT or VTT content) adds text sentiment, aligned to the timeline where
    it is timed; `lang` (en|zh) adds translated label names beside the canonical English keys.
    `fast=False` runs the whole-frame face detector on every sampled frame (the reference path that
    the benchmark compares the default tracking path with).
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
    face_tracks: dict[int, list[dict[str, Any]]] = {}
    gaps: list[dict[str, float]] = []
    frames_analysed = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(info.duration_s, 1), unit="s", desc=path.name, disable=None)

    uses_video, uses_audio = "video" in bundle.modalities, "audio" in bundle.modalities
    samples = None
    if uses_audio:
        from video_emotion.audio import SAMPLE_RATE, load_audio, log_mel

        try:
            samples = load_audio(path)
        except ValueError:
            samples = None  # no audio track: audio windows are flagged, never invented

    def audio_of(w: Window) -> tuple[np.ndarray, float]:
        lo, hi = w.span_s or (w.start_s, w.end_s)
        seg = samples[int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)] if samples is not None else np.zeros(0, np.float32)
        has = float(seg.size > 0 and np.abs(seg).max() > 1e-4)
        feats = log_mel(seg, bundle.n_audio_frames) if has else np.zeros((64, bundle.n_audio_frames), np.float32)
        return feats, has

    def flush() -> None:
        nonlocal windows
        audio = [audio_of(w) for w in windows] if uses_audio else []
        ok = [bool(w.face.any()) if uses_video else bool(audio[i][1]) for i, w in enumerate(windows)]
        for w, good in zip(windows, ok):
            if not good:
                gaps.append({"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3)})
        idx = [i for i, good in enumerate(ok) if good]
        if idx:
            inputs: dict[str, np.ndarray] = {}
            if uses_video:
                inputs["frames"] = np.stack([windows[i].crops for i in idx])
                inputs["mask"] = np.stack([windows[i].face for i in idx])
            if uses_audio:
                inputs["audio"] = np.stack([audio[i][0] for i in idx])
                inputs["has_audio"] = np.array([[audio[i][1]] for i in idx], np.float32)
            probs = bundle.predict_inputs(inputs, batch_size=batch_windows)
            for i, p in zip(idx, probs):
                seg = _segment(windows[i], p, bundle.labels, lang)
                if uses_audio:
                    seg["audio"] = bool(audio[i][1])
                timeline.append(seg)
            if uses_video:
                _track_segments(windows, idx, probs, audio)
        windows = []

    def _track_segments(wins, idx, probs, audio) -> None:
        """Per-face timelines: a window with a single face reuses the main reading; only windows
        with several faces run the model again, once per extra face."""
        extra_inputs: dict[str, list] = {"frames": [], "mask": [], "audio": [], "has_audio": []}
        extra_keys = []
        for i, p in zip(idx, probs):
            w = wins[i]
            live = {t: v for t, v in w.tracks.items() if v[1].any()}
            if len(live) <= 1:
                for t in live:
                    face_tracks.setdefault(t, []).append(_segment(w, p, bundle.labels, lang))
                continue
            for t, (c, f) in live.items():
                extra_keys.append((w, t))
                extra_inputs["frames"].append(c)
                extra_inputs["mask"].append(f)
                if uses_audio:
                    extra_inputs["audio"].append(audio[i][0])
                    extra_inputs["has_audio"].append([audio[i][1]])
        if extra_keys:
            ins = {k: np.stack(v) for k, v in extra_inputs.items() if v}
            for (w, t), p in zip(extra_keys, bundle.predict_inputs(ins, batch_size=batch_windows)):
                face_tracks.setdefault(t, []).append(_segment(w, p, bundle.labels, lang))

    for w in iter_windows(path, bundle, sample_fps, detect_interval_s=detect_interval_s, fast=fast, info=info):
        windows.append(w)
        frames_analysed += w.new_frames
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
                  "labels": list(bundle.labels), "modalities": list(bundle.modalities)},
        "faces_detected": bool(timeline),
        "timeline": timeline,
        "summary": summarize(timeline, bundle.labels, lang),
        "no_face_segments": gaps,
        "lang": lang,
        "label_names": {lab: translate(lab, lang) for lab in bundle.labels},
        # Every face tracked, in order of appearance; the main timeline follows the largest face.
        "faces": [{"track": n, "timeline": segs, "summary": summarize(segs, bundle.labels, lang)}
                  for n, (_, segs) in enumerate(sorted(face_tracks.items()))],
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
    val, aro = valence_of(probs), arousal_of(probs)
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
