"""Live reading: camera frames as they arrive -> a reading of every face, and a smoothed state.

The same face path (detector, crop, tracker) and the same model as a file's analysis: each face track
keeps the crops of its last `window_s` seconds, and every new frame is read as the model's T-frame
window ending at that frame (T time points spread over the window, each taking the track's latest crop
at or before it; points before the track began are masked, as the file path masks frames without a
face). A client sending fewer frames per second than the model's rate repeats crops, as a low
`sample_fps` does. A reading is worded by the upload's own functions (`summary.segment`, `summary.summarize`):
the probabilities shown are calibrated by the bundle's temperature, while valence, arousal and sentiment come
from the network's own reading (the temperature undone), so a face reads the same live and uploaded.
Nothing is written anywhere: the session's timeline lives in memory until it ends.

Bundles with the frame-by-frame export (`modeling.export`: `frame.tflite`, `head.tflite`) read each new
crop once through the per-frame network and keep its features: a reading then costs one frame of the
CNN and the small temporal head instead of T frames (the same numbers: the split is exact). Other
bundles run the whole window through `model.tflite` for every frame.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from video_emotion.features.quality import face_quality as quality_of
from video_emotion.features.tracking import FaceTracker
from video_emotion.inference.bundle import ModelBundle
from video_emotion.inference.summary import segment, summarize
from video_emotion.inference.windows import Window
from video_emotion.labels import TRANSLATIONS, translate
from video_emotion.modeling.calibration import apply_temperature
from video_emotion.modeling.inputs import model_inputs

SMOOTH_S = 3.0   # the smoothed state is the mean reading of the primary face over this many seconds
MAX_GAP = 8      # frames a track's box is carried over detector misses (about 1 s at a camera's 8 fps)


def face_quality(face: Any, crop: np.ndarray) -> tuple[dict[str, Any], bool]:
    """The face path's quality of one live face (`features.quality`: detector score, size, sharpness, head
    turn) as a dict, and whether it is too poor to read (then the face gets no emotion and no vote)."""
    q = quality_of(face, crop)
    return q.as_dict(), not q.readable


def unread(seg: dict[str, Any], quality: dict[str, Any]) -> dict[str, Any]:
    """A reading for a face found but too poor to read: its times, no emotion, no guess (as a file's timeline)."""
    return {"start_s": seg["start_s"], "end_s": seg["end_s"], "unreadable": True, "emotion": None,
            "confidence": None, "probabilities": None, "valence": None, "arousal": None, "sentiment": None,
            "quality": quality}


class LiveReader:
    """One camera session: frames in (BGR, with their time in seconds), readings out.

    Not thread-safe: one frame at a time (the service reads a session's frames one after another)."""

    def __init__(self, bundle: ModelBundle, lang: str = "en", smooth_s: float = SMOOTH_S) -> None:
        if "video" not in bundle.modalities:
            raise ValueError("live reading needs a model that reads faces (this one reads audio only)")
        if lang not in TRANSLATIONS:
            raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(TRANSLATIONS)}")
        self.bundle, self.lang, self.smooth_s = bundle, lang, smooth_s
        self.tracker = FaceTracker(bundle.face_path(), every=1, max_gap=MAX_GAP, track=True)
        self.T, self.window_s = bundle.n_frames, bundle.window_s
        self.size = bundle.preprocess.image_size
        self.parts = bundle.lite_parts()  # the same interpreters as the bundle's analyses
        self.history: dict[int, deque[tuple[float, np.ndarray]]] = {}
        self.recent: deque[tuple[float, dict[str, Any]]] = deque()  # (t, reading) of the primary face
        self.timeline: list[dict[str, Any]] = []
        self.face_tracks: dict[int, list[dict[str, Any]]] = {}
        self.gaps: list[dict[str, float]] = []
        self.frames = 0
        self.t0: float | None = None
        self.last_t: float | None = None

    def _window(self, track: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The track's T crops (or their features) at time points spread over the `window_s` seconds ending
        at `t`, and the mask."""
        hist = self.history[track]
        times = np.array([h[0] for h in hist])
        points = t - self.window_s * (self.T - 1 - np.arange(self.T)) / self.T
        idx = np.searchsorted(times, points + 1e-6, side="right") - 1
        out = np.zeros((self.T, *hist[0][1].shape), hist[0][1].dtype)
        mask = idx >= 0
        for k in np.flatnonzero(mask):
            out[k] = hist[idx[k]][1]
        return out, mask

    def _remember(self, crops: dict[int, np.ndarray], t: float) -> None:
        kept = list(crops.values())
        if self.parts is not None and kept:  # each crop goes through the per-frame network once
            kept = list(self.parts.features(np.stack(kept)))
        for tid, item in zip(crops, kept, strict=True):
            self.history.setdefault(tid, deque()).append((t, item))
        for tid in list(self.history):
            hist = self.history[tid]
            while hist and hist[0][0] < t - self.window_s - 1.0:
                hist.popleft()
            if not hist:
                del self.history[tid]

    def _predict(self, tracks: list[int], t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        windows = [self._window(tid, t) for tid in tracks]
        arrays = {"X": np.stack([w[0] for w in windows]), "face": np.stack([w[1] for w in windows])}
        if self.parts is not None:  # calibrated with the bundle's temperature, as predict_inputs does
            probs = apply_temperature(self.parts.head(arrays["X"], arrays["face"]), self.bundle.temperature)
            return probs.astype(np.float32), arrays["X"], arrays["face"]
        if "audio" in self.bundle.modalities:  # a camera session has no sound: flagged, as a silent clip is
            shape = self.bundle.input_shapes["audio"]
            arrays["A"] = np.zeros((len(tracks), *shape), np.float32)
            arrays["has_audio"] = np.zeros(len(tracks), np.float32)
        inputs = model_inputs(arrays, slice(None), self.bundle.modalities)
        return self.bundle.predict_inputs(inputs, batch_size=max(1, len(tracks))), arrays["X"], arrays["face"]

    def read(self, frame: np.ndarray, t: float | None = None) -> dict[str, Any]:
        """The reading of one frame taken at `t` seconds (default: now): every face, and the smoothed state."""
        t = time.monotonic() if t is None else t
        if self.t0 is None:
            self.t0 = t
        start = self.last_t if self.last_t is not None else t
        self.last_t, rel = t, t - self.t0
        self.frames += 1
        _, _, crops = self.tracker(frame)
        live = self.tracker.live()
        self._remember(crops, t)
        tracks = sorted(crops, key=lambda tid: -live[tid][0][2] * live[tid][0][3])  # largest (primary) first
        faces: list[dict[str, Any]] = []
        if tracks:
            probs, X, M = self._predict(tracks, t)
            for i, tid in enumerate(tracks):
                w = Window(start_s=round(start - self.t0, 3), end_s=round(rel, 3), crops=X[i], face=M[i])
                quality, unreadable = face_quality(live[tid][1], crops[tid])
                seg = segment(w, probs[i], self.bundle.labels, self.lang, self.bundle.temperature)
                seg = unread(seg, quality) if unreadable else {**seg, "unreadable": False, "quality": quality}
                self.face_tracks.setdefault(tid, []).append(seg)
                if i == 0:
                    self.timeline.append(seg)
                    if not unreadable:  # an unreadable face does not move the smoothed state
                        self.recent.append((t, seg))
                faces.append(self._face(tid, i == 0, seg, live[tid], int(M[i].sum())))
        else:
            self._gap(start - self.t0, rel)
        while self.recent and self.recent[0][0] < t - self.smooth_s:
            self.recent.popleft()
        return {"t_s": round(rel, 3), "faces": faces, "state": self.state()}

    def _gap(self, start: float, end: float) -> None:
        if self.gaps and abs(self.gaps[-1]["end_s"] - round(start, 3)) < 1e-6:
            self.gaps[-1]["end_s"] = round(end, 3)
        else:
            self.gaps.append({"start_s": round(start, 3), "end_s": round(end, 3)})

    def _face(self, tid: int, primary: bool, seg: dict[str, Any], live: tuple, frames: int) -> dict[str, Any]:
        box, _, detected = live
        keep = ("emotion", "emotion_label", "confidence", "probabilities", "valence", "arousal", "sentiment",
                "quality", "unreadable")
        return {"track": tid, "primary": primary, "box": [int(v) for v in box], "detected": bool(detected),
                **{k: seg[k] for k in keep if k in seg}, "window_frames": frames}

    def state(self) -> dict[str, Any] | None:
        """The primary face's readings over the last `smooth_s` seconds, summed up by the rule an upload's summary
        uses (`summary.summarize`: time-weighted probabilities, valence from the network's own reading with the
        temperature undone), so that a live state and an upload of the same face say the same; None when no face
        was read then."""
        if not self.recent:
            return None
        s = summarize([seg for _, seg in self.recent], self.bundle.labels, self.lang)
        probs = s["distribution"]
        out = {"emotion": s["dominant_emotion"], "confidence": round(max(probs.values()), 4), "probabilities": probs,
               "valence": s["sentiment_score"], "sentiment": s["sentiment"], "readings": len(self.recent),
               "window_s": self.smooth_s}
        if self.lang != "en":
            out["emotion_label"] = s["dominant_emotion_label"]
        return out

    def result(self, video: str = "camera") -> dict[str, Any]:
        """The session as an analysis result (the same contract as a file's): timeline, summary, faces."""
        labels = self.bundle.labels
        duration = (self.last_t - self.t0) if self.t0 is not None and self.last_t is not None else 0.0
        return {
            "video": video, "source": "live", "duration_s": round(duration, 3),
            "fps": round((self.frames - 1) / duration, 3) if duration > 0 else 0.0, "frames_analysed": self.frames,
            "model": {"name": self.bundle.info.get("name", "video-emotion"),
                      "version": str(self.bundle.info.get("version", "local")), "labels": list(labels),
                      "modalities": list(self.bundle.modalities)},
            "faces_detected": bool(self.timeline), "timeline": list(self.timeline),
            "summary": summarize(self.timeline, labels, self.lang), "no_face_segments": list(self.gaps),
            "lang": self.lang, "label_names": {lab: translate(lab, self.lang) for lab in labels},
            "faces": [{"track": n, "timeline": segs, "summary": summarize(segs, labels, self.lang)}
                      for n, (_, segs) in enumerate(sorted(self.face_tracks.items()))],
        }
