"""The voice: how something is said, read from the Whisper encoder's states over the speech.

`VoiceModel` is the read-out `modeling.voice` trains (on RAVDESS speech, by default), run here in NumPy: no
TensorFlow is loaded to read a voice. `voice_block` turns a recording's `SpeechStates` into the result's
`voice` block: a timeline of windows (the analysis's window grid), each either read (emotion, confidence,
probabilities over the product's seven labels, valence, arousal, sentiment) or marked `speech: false`
where too little was said to read; never a guessed emotion for silence. Its summary weighs each window
by how long someone spoke in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.labels import LABELS, arousal_of, polarity, translate, valence_of
from video_emotion.modeling.calibration import apply_temperature
from video_emotion.modeling.voice import onto_labels, predict, stats
from video_emotion.text.voice_states import STATES_PER_S, VOICE_LAYERS, SpeechStates

VOICE_SETTINGS = "voice.json"
VOICE_WEIGHTS = "voice_weights.npz"
MIN_SPEECH_S = 0.5      # a window with less speech than this is marked, not read
CONTEXT_S = 0.5         # a window is read with this much of the speech either side of it


class VoiceModelError(ValueError):
    """A voice model folder that cannot be read."""


@dataclass
class VoiceModel:
    """The trained voice head: encoder states (T, D) of one stretch of speech -> probabilities."""

    folder: Path
    classes: list[str]          # what it was trained on (RAVDESS: eight, calm among them)
    to_labels: dict[str, str]   # each class -> one of the product's labels (calm -> neutral)
    temperature: float
    info: dict[str, Any] = field(default_factory=dict)
    w: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, folder: str | Path) -> VoiceModel:
        folder = Path(folder)
        try:
            settings = json.loads((folder / VOICE_SETTINGS).read_text(encoding="utf-8"))
            with np.load(folder / VOICE_WEIGHTS) as z:
                weights = {k: z[k].astype(np.float32) for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise VoiceModelError(f"{folder}: not a voice model ({VOICE_SETTINGS} + {VOICE_WEIGHTS}): {exc}") from exc
        classes = list(settings["classes"])
        to_labels = dict(settings["to_labels"])
        if set(to_labels) != set(classes) or not set(to_labels.values()) <= set(LABELS):
            raise VoiceModelError(f"{folder}: its classes do not map onto the labels {', '.join(LABELS)}")
        layers = settings.get("encoder", {}).get("layers")
        if tuple(layers or ()) != VOICE_LAYERS:
            raise VoiceModelError(f"{folder}: reads encoder layers {layers}; this version reads {list(VOICE_LAYERS)}")
        return cls(folder, classes, to_labels, float(settings.get("temperature", 1.0)), settings.get("info", {}),
                   weights)

    def class_probs(self, states: np.ndarray) -> np.ndarray:
        """(T, D) states of one stretch of speech -> (n_classes,) raw probabilities (before calibration)."""
        return predict(self.w, stats(states)[None])[0]

    def read(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated, raw) probabilities over the product's labels for one stretch of speech."""
        raw = onto_labels(self.class_probs(states)[None], self.classes, self.to_labels)[0]
        return apply_temperature(raw[None], self.temperature)[0], raw


def _segment(lo: float, hi: float, speech_s: float, p: np.ndarray | None, raw: np.ndarray | None,
             lang: str) -> dict[str, Any]:
    seg: dict[str, Any] = {"start_s": round(lo, 3), "end_s": round(hi, 3), "speech": p is not None,
                           "speech_s": round(speech_s, 3)}
    if p is None:
        seg.update({"emotion": None, "confidence": None, "probabilities": None, "valence": None, "arousal": None,
                    "sentiment": None})
        return seg
    reading = {lab: float(v) for lab, v in zip(LABELS, raw, strict=True)}
    top = LABELS[int(np.argmax(p))]
    val = valence_of(reading)
    seg.update({"emotion": top, "confidence": round(float(p.max()), 4),
                "probabilities": {lab: round(float(v), 4) for lab, v in zip(LABELS, p, strict=True)},
                "valence": round(val, 4), "arousal": round(arousal_of(reading), 4), "sentiment": polarity(val)})
    if lang != "en":
        seg["emotion_label"] = translate(top, lang)
        seg["sentiment_label"] = translate(seg["sentiment"], lang)
    return seg


class VoiceTimeline:
    """The voice's windows over a recording on the analysis's grid, read as the speech's states arrive.

    `add(states, heard_until_s)` takes each audio window's `SpeechStates` (in order); every voice window
    whose speech and context are complete is read at once and its states dropped, so memory stays bounded
    whatever the length of the recording. `finish(duration_s)` reads the rest and returns the timeline."""

    def __init__(self, model: VoiceModel, window_s: float, lang: str = "en") -> None:
        self.model, self.window_s, self.lang = model, window_s, lang
        self.segments: list[dict[str, Any]] = []
        self._states = SpeechStates.empty()

    def add(self, states: SpeechStates, heard_until_s: float) -> None:
        self._states = SpeechStates.join([self._states, states])
        while (len(self.segments) + 1) * self.window_s + CONTEXT_S <= heard_until_s:
            self._read_next(None)

    def _read_next(self, duration_s: float | None) -> None:
        lo = len(self.segments) * self.window_s
        hi = lo + self.window_s if duration_s is None else min(duration_s, lo + self.window_s)
        said = len(self._states.between(lo, hi)) / STATES_PER_S
        if said < MIN_SPEECH_S:
            self.segments.append(_segment(lo, hi, said, None, None, self.lang))
        else:
            p, raw = self.model.read(self._states.between(lo - CONTEXT_S, hi + CONTEXT_S))
            self.segments.append(_segment(lo, hi, said, p, raw, self.lang))
        keep = np.searchsorted(self._states.times, hi - CONTEXT_S)
        self._states = SpeechStates(self._states.times[keep:], self._states.states[keep:])

    def finish(self, duration_s: float) -> list[dict[str, Any]]:
        """Every window up to `duration_s` (windows past it, from audio longer than the video, are dropped)."""
        while len(self.segments) * self.window_s < duration_s - 1e-6:
            self._read_next(duration_s)
        n = max(1, int(np.ceil(duration_s / self.window_s - 1e-9)))
        out = self.segments[:n]
        out[-1]["end_s"] = round(min(out[-1]["end_s"], duration_s), 3)
        return out


def voice_summary(timeline: list[dict[str, Any]], lang: str = "en") -> dict[str, Any]:
    """The voice's video-level reading: windows weighed by how long someone spoke in them."""
    read = [s for s in timeline if s["speech"]]
    speech_s = round(sum(s["speech_s"] for s in timeline), 3)
    if not read:
        return {"dominant_emotion": None, "distribution": {lab: 0.0 for lab in LABELS}, "sentiment": None,
                "sentiment_score": None, "confidence": None, "speech_s": speech_s, "note": "no speech heard"}
    w = np.array([s["speech_s"] for s in read])
    w = w / w.sum()
    dist = sum(wi * np.array([s["probabilities"][lab] for lab in LABELS]) for wi, s in zip(w, read, strict=True))
    score = float(np.clip(sum(wi * s["valence"] for wi, s in zip(w, read, strict=True)), -1, 1))
    top = LABELS[int(np.argmax(dist))]
    out = {"dominant_emotion": top,
           "distribution": {lab: round(float(v), 4) for lab, v in zip(LABELS, dist, strict=True)},
           "sentiment": polarity(score), "sentiment_score": round(score, 4),
           "confidence": round(float(sum(wi * s["confidence"] for wi, s in zip(w, read, strict=True))), 4),
           "speech_s": speech_s}
    if lang != "en":
        out["dominant_emotion_label"] = translate(top, lang)
        out["sentiment_label"] = translate(out["sentiment"], lang)
    return out




_NO_VOICE = {"off": "the voice was not read (voice off)", "no_audio": "no audio track",
             "unavailable": "the voice cannot be read here (no Whisper model)",
             "failed": "the audio track could not be read", "no_model": "this model carries no voice model"}


def voice_block(status: str, timeline: VoiceTimeline | None, duration_s: float, lang: str = "en") -> dict[str, Any]:
    """The result's `voice` block: its status, model, timeline and summary (a note where it was not read)."""
    if status != "read" or timeline is None:
        summary = voice_summary([], lang)
        summary["note"] = _NO_VOICE.get(status, summary["note"])
        return {"status": status, "model": None, "timeline": [], "summary": summary}
    segments = timeline.finish(duration_s)
    summary = voice_summary(segments, lang)
    model = {"name": timeline.model.info.get("name", "voice"), "trained_on": timeline.model.info.get("trained_on"),
             "classes": timeline.model.classes}
    if summary["dominant_emotion"] is None:
        return {"status": "no_speech", "model": model, "timeline": segments, "summary": summary}
    return {"status": "read", "model": model, "timeline": segments, "summary": summary}


__all__ = ["VoiceModel", "VoiceModelError", "VoiceTimeline", "voice_block", "voice_summary"]
