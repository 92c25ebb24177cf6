"""The shipped voice model (models/voice, learned from RAVDESS speech) for test bundles, and audio files of every
kind the product takes, made from one speech WAV with the project's own ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from tests.speech_media import ffmpeg

RAVDESS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
TO_LABELS = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
             "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}
# ffmpeg's encoder for each audio container the product reads.
AUDIO_CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libvorbis", ".flac": "flac"}


def shipped_voice_model(folder: Path) -> Path:
    """The project's own voice model (models/voice, learned from RAVDESS speech) copied into `folder`."""
    shutil.copytree(ROOT / "models" / "voice", folder)
    return folder


def audio_as(wav: Path, suffix: str, out_dir: Path) -> Path:
    """`wav` re-encoded into the container and codec of `suffix` (one of AUDIO_CODECS)."""
    out = out_dir / f"{wav.stem}{suffix}"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", AUDIO_CODECS[suffix], str(out)],
                   check=True, capture_output=True, timeout=120)
    return out
