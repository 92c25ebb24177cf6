"""The Whisper encoder's states over the speech of a recording: what the voice-emotion model reads.

Whisper's encoder turns 10 ms log-mel frames into one 512-wide state every 20 ms (base). Those states
carry how something is said as well as what, so the voice model (`modeling.voice`, `inference.voice`) is a
small head over them, not a second speech network. Two ways to get them, one format:

- `encode_spans`: the encoder alone over each stretch of speech the voice activity detector found (what
  the voice model was trained on: one utterance a pass, no padding to 30 s, so a pass costs about the
  speech's own length); used when the words are not transcribed.
- `EncoderTap`: while faster-whisper transcribes, every encoder pass it makes is kept and mapped back to
  the recording's clock, so when the words are transcribed the encoder runs once for both.

Either way the result is a `SpeechStates`: the time of each state (seconds from the start of the
recording) and the states, speech only; silence has no states, so the voice is never read where nobody
speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
FRAMES_PER_S = 100           # log-mel frames
STATES_PER_S = 50            # encoder states (two frames each)
MAX_FRAMES = 3000            # Whisper's 30 s input
MAX_SPAN_S = 20.0            # a longer stretch of speech is encoded in parts of at most this


@dataclass
class SpeechStates:
    """Encoder states over speech: `times[i]` (s, on the recording's clock) is when `states[i]` was said."""

    times: np.ndarray   # (N,) float64, increasing
    states: np.ndarray  # (N, D) float32

    @classmethod
    def empty(cls, dim: int = 512) -> SpeechStates:
        return cls(np.zeros(0), np.zeros((0, dim), np.float32))

    def __len__(self) -> int:
        return len(self.times)

    def shifted(self, offset_s: float) -> SpeechStates:
        return SpeechStates(self.times + offset_s, self.states)

    def between(self, lo: float, hi: float) -> np.ndarray:
        """The states said in [lo, hi)."""
        i, j = np.searchsorted(self.times, [lo, hi])
        return self.states[i:j]

    @staticmethod
    def join(parts: list[SpeechStates]) -> SpeechStates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return SpeechStates.empty()
        times = np.concatenate([p.times for p in parts])
        order = np.argsort(times, kind="stable")
        return SpeechStates(times[order], np.concatenate([p.states for p in parts])[order])


def _pieces(spans: list[dict[str, int]]) -> list[tuple[int, int]]:
    """VAD spans (samples) cut into pieces of at most MAX_SPAN_S."""
    step = int(MAX_SPAN_S * SAMPLE_RATE)
    return [(s, min(s + step, sp["end"])) for sp in spans for s in range(sp["start"], sp["end"], step)]


def _states_of(whisper, samples: np.ndarray) -> np.ndarray:
    """The encoder alone over up to 30 s of samples, unpadded: (n_states, D) float32."""
    import ctranslate2

    feats = whisper.feature_extractor(samples)
    n = min(MAX_FRAMES, 2 * max(1, -(-len(samples) // (2 * SAMPLE_RATE // FRAMES_PER_S))))
    feats = np.ascontiguousarray(feats[None, :, :n], np.float32)
    if feats.shape[-1] < n:  # the extractor's last frame may be missing: pad with its quietest value
        feats = np.pad(feats, ((0, 0), (0, 0), (0, n - feats.shape[-1])), constant_values=float(feats.min()))
    out = whisper.model.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True)
    return np.asarray(out)[0].astype(np.float32)


def encode_spans(whisper, samples: np.ndarray, spans: list[dict[str, int]]) -> SpeechStates:
    """States of each stretch of speech (`spans`: VAD spans in samples of `samples`), encoded on its own.

    `whisper` is a loaded faster-whisper `WhisperModel`."""
    parts = []
    for lo, hi in _pieces(spans):
        if hi - lo < SAMPLE_RATE // 10:  # under 0.1 s: nothing to read
            continue
        st = _states_of(whisper, samples[lo:hi])
        n = min(len(st), -(-(hi - lo) // (SAMPLE_RATE // STATES_PER_S)))
        times = lo / SAMPLE_RATE + (np.arange(n) + 0.5) / STATES_PER_S
        parts.append(SpeechStates(times, st[:n]))
    return SpeechStates.join(parts)


class EncoderTap:
    """Keeps the encoder passes faster-whisper makes during one `transcribe` call, on the recording's clock.

    Installed on the model instance for the call (`with EncoderTap(model, spans) as tap:`); faster-whisper
    encodes 30 s windows of the speech that its VAD kept, joined end to end, at seek points it picks from
    the decoded text. Each pass is placed by finding its first frames in the full log-mel it was cut from,
    then mapped from the joined speech back to the recording through the same VAD spans."""

    def __init__(self, whisper, spans: list[dict[str, int]]) -> None:
        self.whisper, self.spans = whisper, spans
        self._features: np.ndarray | None = None
        self._passes: dict[int, np.ndarray] = {}

    def __enter__(self) -> EncoderTap:
        w = self.whisper
        encode, generate = getattr(w, "encode", None), getattr(w, "generate_segments", None)
        if encode is None or generate is None:  # not a faster-whisper model (a stand-in): nothing to keep
            return self

        def tapped_generate(features, *args: Any, **kwargs: Any):
            self._features = features
            return generate(features, *args, **kwargs)

        def tapped_encode(features):
            out = encode(features)
            self._keep(features, out)
            return out

        w.generate_segments, w.encode = tapped_generate, tapped_encode
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in ("generate_segments", "encode"):
            self.whisper.__dict__.pop(name, None)  # the class's own methods again

    def _keep(self, segment: np.ndarray, out) -> None:
        full = self._features
        if full is None:  # language detection, before the decode (which encodes that first window again)
            return
        seg = np.asarray(segment)
        seg = seg[0] if seg.ndim == 3 else seg
        seek = _find_seek(full, seg)
        if seek is None or seek in self._passes:
            return
        valid = min(MAX_FRAMES, full.shape[-1] - 1 - seek) // 2
        if valid > 0:
            self._passes[seek] = np.asarray(out)[0, :valid].astype(np.float32)

    def states(self) -> SpeechStates:
        """Every state heard once (where passes overlap, the earlier pass's), on the recording's clock."""
        from faster_whisper.vad import SpeechTimestampsMap

        if not self._passes or not self.spans:
            return SpeechStates.empty()
        ts_map = SpeechTimestampsMap(self.spans, SAMPLE_RATE)
        parts, covered = [], 0
        for seek, st in sorted(self._passes.items()):
            first = max(0, (covered - seek) // 2)
            idx = np.arange(first, len(st))
            if not len(idx):
                continue
            joined_t = (seek + 2 * idx + 1) / FRAMES_PER_S
            times = np.array([ts_map.get_original_time(t) for t in joined_t])
            parts.append(SpeechStates(times, st[first:]))
            covered = max(covered, seek + 2 * len(st))
        return SpeechStates.join(parts)


def _find_seek(full: np.ndarray, seg: np.ndarray, check: int = 8) -> int | None:
    """Where `seg` (a window cut from `full` at some column and padded) starts in `full`, or None."""
    n = min(check, seg.shape[-1], full.shape[-1])
    for c in np.flatnonzero(full[0] == seg[0, 0]):
        if c + n <= full.shape[-1] and np.array_equal(full[:, c:c + n], seg[:, :n]):
            return int(c)
    return None


__all__ = ["STATES_PER_S", "EncoderTap", "SpeechStates", "encode_spans"]
