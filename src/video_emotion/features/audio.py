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
LIST_TIMEOUT_S = 30.0     # listing a file's streams reads only its header
DECODE_TIMEOUT_S = 300.0  # decoding the audio of a long video; a stuck ffmpeg is killed, never waited on
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$")
_START = re.compile(r"\bstart (-?\d+(?:\.\d+)?)")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
# Sound files people record and share (a voice memo, a call, a podcast); ffmpeg reads them all.
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac"})


class AudioError(ValueError):
    """Audio that cannot be read: no audio stream, an unreadable file, or ffmpeg taking too long."""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], timeout: float, path: str | Path) -> subprocess.CompletedProcess:
    """Run the shipped ffmpeg with a deadline (on expiry the process is killed and AudioError raised)."""
    try:
        return subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", *args], capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{path}: ffmpeg did not finish within {timeout:.0f} s") from None


def _input_streams(stderr: str) -> list[tuple[str, float]]:
    """(kind, start time in s) of the input's video and audio streams, from ffmpeg's verbose listing.

    ffmpeg prints a stream's start only when it is not zero; cover art is not the video."""
    listing = stderr.split("Stream mapping:")[0].split("\nOutput #")[0]
    out = []
    for line in listing.splitlines():
        m = _STREAM.match(line)
        if m and "(attached pic)" not in m.group(2):
            start = _START.search(m.group(2))
            out.append((m.group(1), float(start.group(1)) if start else 0.0))
    return out


def has_audio(path: str | Path) -> bool:
    """Whether a media file has an audio stream (ffmpeg's stream listing)."""
    res = run_ffmpeg(["-i", str(path)], LIST_TIMEOUT_S, path)
    return any(kind == "Audio" for kind, _ in _input_streams(res.stderr.decode(errors="replace")))


def stream_listing(path: str | Path) -> tuple[set[str], float | None]:
    """The kinds of a media file's streams (`Video`, `Audio`; cover art is not a video) and the duration its
    container states (None where it states none), from ffmpeg's listing of the header."""
    res = run_ffmpeg(["-i", str(path)], LIST_TIMEOUT_S, path)
    err = res.stderr.decode(errors="replace")
    m = _DURATION.search(err)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None
    return {kind for kind, _ in _input_streams(err)}, duration


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_s: float | None = None) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at `sr` from a video's (first) audio track or an audio file.

    Sample 0 is the video's first frame: an audio track that starts later than the video stream is
    preceded by silence, one that starts earlier is cut (stream start times from ffmpeg's listing),
    so audio and frame timestamps share one clock.
    """
    cmd = ["-v", "verbose", "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sr)]
    if max_s:
        cmd += ["-t", f"{max_s + 1.0:.3f}"]  # room for an audio track that starts before the video
    res = run_ffmpeg(cmd + ["-f", "s16le", "-"], DECODE_TIMEOUT_S, path)
    err = res.stderr.decode(errors="replace")
    streams = _input_streams(err)
    if res.returncode != 0:
        if streams and not any(kind == "Audio" for kind, _ in streams):
            raise AudioError(f"{path}: no audio stream")
        why = [re.sub(r"^\[[^]]*\] *", "", ln) for ln in err.splitlines()
               if "rror" in ln or "No such" in ln or "Invalid data" in ln]
        raise AudioError(f"{path}: no readable audio ({(why[0] if why else err[-200:]).strip()[:200]})")
    samples = np.frombuffer(res.stdout, dtype="<i2").astype(np.float32) / 32768.0
    shift = audio_offset(streams)
    n = int(round(abs(shift) * sr))
    if shift > 0:
        samples = np.concatenate([np.zeros(n, np.float32), samples])
    elif shift < 0:
        samples = samples[n:]
    return samples[: int(round(max_s * sr))] if max_s else samples


def audio_offset(streams: list[tuple[str, float]]) -> float:
    """Seconds by which the first audio stream starts after the first video stream (0 without video)."""
    video = next((t for kind, t in streams if kind == "Video"), None)
    audio = next((t for kind, t in streams if kind == "Audio"), None)
    return 0.0 if video is None or audio is None else audio - video


def mux(video: str | Path, wav: str | Path, out: str | Path) -> Path:
    """Copy `video`'s stream and add `wav` as an AAC track (used to build real-layout fixtures)."""
    res = run_ffmpeg(["-v", "error", "-y", "-i", str(video), "-i", str(wav), "-c:v", "copy", "-c:a", "aac",
                   "-shortest", str(out)], DECODE_TIMEOUT_S, video)
    if res.returncode != 0:
        raise AudioError(f"{video}: could not add {wav} ({res.stderr.decode(errors='replace').strip()[:200]})")
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
