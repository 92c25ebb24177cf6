"""What the voice model reads: Whisper base's middle encoder layers over the speech of a recording.

Whisper's encoder turns 10 ms log-mel frames into one 512-wide state every 20 ms. Its middle layers
carry how something is said; its last layer has moved on to what is said (on RAVDESS, actor-disjoint
folds, a linear read-out of the statistics of layer 6 reads 0.68 of the eight classes, layer 3 0.74, layers
2 and 3 together 0.77: docs/speech.md, The voice). So the voice reads layers 2 and 3, from two CTranslate2
encoders truncated to those depths, built in memory from the pinned, checked Whisper base model (nothing
else to fetch or pin). Reading a stretch of speech runs 2 + 3 encoder blocks over the speech alone (no
padding to 30 s): a pass of its own beside the words' (whose 30 s windows end at layer 6, past what the voice
needs), measured in benchmarks/voice_cost.py.

`encode_spans` gives a `SpeechStates`: the time of each state (seconds from the start of the recording) and
the states of the chosen layers side by side, over speech only; silence has no states, so the voice is never
read where nobody speaks.
"""

from __future__ import annotations

import mmap
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
FRAMES_PER_S = 100           # log-mel frames
STATES_PER_S = 50            # encoder states (two frames each)
MAX_FRAMES = 3000            # Whisper's 30 s input
MAX_SPAN_S = 20.0            # a longer stretch of speech is encoded in parts of at most this
MIN_SPAN_S = 0.1             # a shorter one holds nothing to read
VOICE_LAYERS = (2, 3)        # the encoder layers the voice reads (chosen on RAVDESS folds)


@dataclass
class SpeechStates:
    """Encoder states over speech: `times[i]` (s, on the recording's clock) is when `states[i]` was said."""

    times: np.ndarray   # (N,) float64, increasing
    states: np.ndarray  # (N, D) float32

    @classmethod
    def empty(cls, dim: int = 512 * len(VOICE_LAYERS)) -> SpeechStates:
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


_ENCODER_LAYER = re.compile(rb"^encoder/layer_(\d+)/")
_DECODER_LAYER = re.compile(rb"^decoder/layer_([1-9]\d*)/")  # CTranslate2 needs the decoder's first block


def truncated_model_bin(model_bin: bytes | mmap.mmap, encoder_layers: int) -> bytes:
    """A CTranslate2 Whisper `model.bin` keeping the first `encoder_layers` encoder blocks (and one decoder
    block, which loading needs and encoding never runs): its encoder output is layer `encoder_layers`'s,
    through the encoder's final layer norm. The format: version, spec name, revision, variable count, then
    each variable (name, rank, dims, dtype, byte count, bytes), then the aliases, copied as they are."""
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        out = struct.unpack_from("<" + fmt, model_bin, pos)
        pos += struct.calcsize("<" + fmt)
        return out

    def name() -> bytes:
        nonlocal pos
        (n,) = take("H")
        pos += n
        return model_bin[pos - n:pos - 1]

    take("I")
    name()
    take("I")
    header_end = pos
    (count,) = take("I")
    kept = []
    for _ in range(count):
        start = pos
        var = name()
        (rank,) = take("B")
        take("I" * rank)
        take("B")
        (size,) = take("I")
        pos += size
        m = _ENCODER_LAYER.match(var)
        if (m and int(m.group(1)) >= encoder_layers) or _DECODER_LAYER.match(var):
            continue
        kept.append(memoryview(model_bin)[start:pos])  # no copy until the one join
    return b"".join([model_bin[:header_end], struct.pack("<I", len(kept)), *kept, model_bin[pos:]])


class VoiceEncoder:
    """Whisper base's encoder read at the voice's layers (CPU, int8), built and loaded once on first use."""

    def __init__(self, whisper_dir: str | Path, layers: tuple[int, ...] = VOICE_LAYERS, cpu_threads: int = 2) -> None:
        self.whisper_dir, self.layers, self.cpu_threads = Path(whisper_dir), tuple(layers), cpu_threads
        self._models: dict[int, object] = {}
        self._extractor = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        fh = open(self.whisper_dir / "model.bin", "rb")  # noqa: SIM115  (mapped, not read: closed below)
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        files = {n: (self.whisper_dir / n).read_bytes() for n in ("config.json", "vocabulary.json")
                 if (self.whisper_dir / n).is_file()}
        for k in self.layers:  # one truncated copy in memory at a time
            model_bin = truncated_model_bin(data, k)
            self._models[k] = ctranslate2.models.Whisper(
                f"{self.whisper_dir}#encoder{k}", device="cpu", compute_type="int8", intra_threads=self.cpu_threads,
                files={**files, "model.bin": model_bin})
            del model_bin
        data.close()
        fh.close()
        self._extractor = FeatureExtractor()

    def states(self, samples: np.ndarray) -> np.ndarray:
        """(n_states, 512 * len(layers)) float32 for up to 30 s of 16 kHz speech, unpadded."""
        import ctranslate2

        with self._lock:
            if not self._models:
                self._load()
        feats = self._extractor(np.asarray(samples, np.float32))
        n = min(MAX_FRAMES, feats.shape[-1] // 2 * 2)
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None, :, :n], np.float32))
        outs = [np.asarray(self._models[k].encode(view, to_cpu=True))[0] for k in self.layers]
        return np.concatenate(outs, axis=1).astype(np.float32)


def _pieces(spans: list[dict[str, int]]) -> list[tuple[int, int]]:
    """VAD spans (samples) cut into pieces of at most MAX_SPAN_S."""
    step = int(MAX_SPAN_S * SAMPLE_RATE)
    return [(s, min(s + step, sp["end"])) for sp in spans for s in range(sp["start"], sp["end"], step)]


def encode_spans(encoder: VoiceEncoder, samples: np.ndarray, spans: list[dict[str, int]]) -> SpeechStates:
    """States of each stretch of speech (`spans`: VAD spans in samples of `samples`), each encoded on its own."""
    parts = []
    for lo, hi in _pieces(spans):
        if hi - lo < MIN_SPAN_S * SAMPLE_RATE:
            continue
        st = encoder.states(samples[lo:hi])
        n = min(len(st), (hi - lo) // (SAMPLE_RATE // STATES_PER_S))
        times = lo / SAMPLE_RATE + (np.arange(n) + 0.5) / STATES_PER_S
        parts.append(SpeechStates(times, st[:n]))
    return SpeechStates.join(parts)


__all__ = ["STATES_PER_S", "VOICE_LAYERS", "SpeechStates", "VoiceEncoder", "encode_spans", "truncated_model_bin"]
