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


N_MELS = 64
HOP = 160     # 10 ms at 16 kHz
N_FFT = 512


def _mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(30.0), hz_to_mel(sr / 2), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), np.float32)
    for i in range(n_mels):
        lo, mid, hi = bins[i], bins[i + 1], max(bins[i + 2], bins[i + 1] + 1)
        fb[i, lo:mid] = (np.arange(lo, mid) - lo) / max(1, mid - lo)
        fb[i, mid:hi] = (hi - np.arange(mid, hi)) / max(1, hi - mid)
    return fb


_FB: dict[tuple[int, int, int], np.ndarray] = {}


def log_mel(samples: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(N_MELS, n_frames) log-mel spectrogram (10 ms hop) of `samples`, zero-padded or cut to length."""
    need = (n_frames - 1) * HOP + N_FFT
    x = np.zeros(need, np.float32)
    x[: min(need, len(samples))] = samples[:need]
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n_frames] * np.hanning(N_FFT).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    key = (sr, N_FFT, N_MELS)
    if key not in _FB:
        _FB[key] = _mel_filterbank(sr, N_FFT, N_MELS)
    mel = power @ _FB[key].T
    return np.log(mel + 1e-6).T.astype(np.float32)


def n_audio_frames(window_s: float) -> int:
    return int(round(window_s * SAMPLE_RATE / HOP))


SILENCE_PEAK = 1e-4  # a segment whose peak stays under this carries no audio (flagged, never invented)


def segment_features(samples: np.ndarray | None, n_frames: int, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, bool]:
    """(log-mel, has_audio) of a segment: zeros and False where there is no sound to read."""
    if samples is None or samples.size == 0 or float(np.abs(samples).max()) <= SILENCE_PEAK:
        return np.zeros((N_MELS, n_frames), np.float32), False
    return log_mel(samples, n_frames, sr), True
