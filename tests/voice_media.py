"""A voice model for tests only: random weights in the files `inference.voice.VoiceModel` reads (voice.json +
voice_weights.npz, the arrays `modeling.voice.export_weights` writes), over RAVDESS's eight classes with calm
read as neutral. It reads real Whisper encoder states of real speech into real (meaningless) emotions: enough
to test how a voice reading travels through the product, never a model to ship. Audio files of every kind the
product takes are made from one speech WAV with the project's own ffmpeg."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from tests.speech_media import ffmpeg

RAVDESS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
TO_LABELS = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
             "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}
# ffmpeg's encoder for each audio container the product reads.
AUDIO_CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libvorbis", ".flac": "flac"}


def random_voice_model(folder: Path, seed: int = 3, dim: int = 512, units: int = 32) -> Path:
    """Write a random-weight voice head (with the temporal convolution) into `folder`; returns it."""
    rng = np.random.default_rng(seed)
    n = len(RAVDESS)
    w = {"ln_gamma": np.ones(dim), "ln_beta": np.zeros(dim), "ln_eps": np.array(1e-3),
         "proj_kernel": rng.normal(0, 0.05, (dim, units)), "proj_bias": np.zeros(units),
         "conv_kernel": rng.normal(0, 0.1, (5, units, units)), "conv_bias": np.zeros(units),
         "att_kernel": rng.normal(0, 0.2, (units, 16)), "att_bias": np.zeros(16),
         "att_v_kernel": rng.normal(0, 0.2, (16, 1)), "att_v_bias": np.zeros(1),
         "out_kernel": rng.normal(0, 1.0, (units, n)), "out_bias": rng.normal(0, 0.5, n)}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "voice_weights.npz", **{k: np.asarray(v, np.float32) for k, v in w.items()})
    (folder / "voice.json").write_text(json.dumps({
        "classes": RAVDESS, "to_labels": TO_LABELS, "pool": 2, "temperature": 1.0,
        "info": {"name": "test-voice", "trained_on": "random weights (tests only)"}}), encoding="utf-8")
    return folder


def audio_as(wav: Path, suffix: str, out_dir: Path) -> Path:
    """`wav` re-encoded into the container and codec of `suffix` (one of AUDIO_CODECS)."""
    out = out_dir / f"{wav.stem}{suffix}"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", AUDIO_CODECS[suffix], str(out)],
                   check=True, capture_output=True, timeout=120)
    return out
