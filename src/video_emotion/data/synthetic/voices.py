"""Voices of the synthetic corpus: voiced syllables whose prosody depends on the emotion, as WAV."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from video_emotion.data.synthetic.actors import Actor


def synth_audio(actor: Actor, label: str, duration_s: float, rng: np.random.Generator,
                sr: int = 16000) -> np.ndarray:
    """Voiced syllables whose pitch, energy, tempo and contour depend on the emotion."""
    prosody = {  # pitch multiplier, energy, syllables/s, contour slope, jitter
        "neutral": (1.0, 0.35, 3.5, 0.0, 0.01), "happy": (1.25, 0.6, 4.5, 0.15, 0.03),
        "sad": (0.85, 0.2, 2.3, -0.2, 0.01), "surprise": (1.45, 0.7, 3.8, 0.45, 0.03),
        "fear": (1.4, 0.45, 5.5, 0.05, 0.09), "angry": (1.15, 0.9, 5.0, -0.1, 0.05),
        "disgust": (0.95, 0.45, 2.8, -0.15, 0.03),
    }[label]
    mult, energy, rate, slope, jitter = prosody
    n = int(duration_s * sr)
    t = np.arange(n) / sr
    rate *= rng.uniform(0.9, 1.1)
    f0 = actor.pitch_hz * mult * (1 + slope * (t / duration_s - 0.5))
    f0 = f0 * (1 + jitter * rng.standard_normal(n).cumsum() / math.sqrt(sr) * 10)
    phase = 2 * math.pi * np.cumsum(f0) / sr
    voice = sum((0.6 / h) * np.sin(h * phase) for h in range(1, 6))
    syll = np.clip(np.sin(2 * math.pi * rate * t / 2) ** 2, 0, 1)
    env = energy * syll * (t > 0.1) * (t < duration_s - 0.1)
    sig = voice * env + 0.01 * rng.standard_normal(n)
    return np.clip(sig / 2.2, -1, 1).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sr: int = 16000) -> None:
    """16-bit mono PCM WAV."""
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes((samples * 32767).astype("<i2").tobytes())
