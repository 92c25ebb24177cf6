"""Audio tracks: presence check and extraction with the ffmpeg that ships in the imageio-ffmpeg wheel.

OpenCV reads no audio, so a registry-installed ffmpeg binary does it (nothing is downloaded at run
time). Features (log-mel) and the audio model branch build on `load_audio`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def has_audio(path: str | Path) -> bool:
    """Whether a media file has an audio stream (ffmpeg's stream listing)."""
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return bool(re.search(r"Stream #\d+:\d+.*: Audio:", res.stderr))


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_s: float | None = None) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at `sr` from a video's audio track or an audio file."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(sr)]
    if max_s:
        cmd += ["-t", f"{max_s:.3f}"]
    res = subprocess.run(cmd + ["-f", "s16le", "-"], capture_output=True)
    if res.returncode != 0:
        raise ValueError(f"{path}: no readable audio ({res.stderr.decode(errors='replace').strip()[:200]})")
    return np.frombuffer(res.stdout, dtype="<i2").astype(np.float32) / 32768.0


def mux(video: str | Path, wav: str | Path, out: str | Path) -> Path:
    """Copy `video`'s stream and add `wav` as an AAC track (used to build real-layout fixtures)."""
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(video), "-i", str(wav), "-c:v", "copy", "-c:a", "aac",
           "-shortest", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return Path(out)
