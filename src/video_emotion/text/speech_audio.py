"""Audio for speech recognition: a cheap energy check and bounded windows of a signal or a media file.

Silence must cost next to nothing (a face-only video pays this on every analysis), and long audio
must keep memory bounded, so audio is handled in windows of a few minutes, cut at quiet points, and
a media file's track is decoded as a stream (the ffmpeg binary of the imageio-ffmpeg wheel).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # Whisper's (and the audio module's) rate

FRAME = 320                  # 20 ms energy frames
SILENCE_DBFS = -50.0         # frame RMS below this is silence whatever the recording
MIN_LOUD_S = 0.2             # less than this much non-silent audio cannot hold a word
WINDOW_S = 120.0             # audio handled per Whisper call: bounds memory on long videos
CUT_SEARCH_S = 10.0          # a window ends at the quietest 20 ms of its last seconds


def _frame_rms(samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0, np.float32)
    frames = samples[: n * FRAME].reshape(n, FRAME).astype(np.float32, copy=False)
    return np.sqrt(np.mean(frames * frames, axis=1))


def has_voice_energy(samples: np.ndarray) -> bool:
    """Cheap first check: at least MIN_LOUD_S of frames above SILENCE_DBFS (no model involved)."""
    rms = _frame_rms(samples)
    loud = int(np.count_nonzero(rms > 10 ** (SILENCE_DBFS / 20)))
    return loud * FRAME / SAMPLE_RATE >= MIN_LOUD_S


def _windows(read: Callable[[int], np.ndarray], window_s: float = WINDOW_S) -> Iterator[tuple[float, np.ndarray]]:
    """(start second, samples) windows of at most `window_s` from a reader, each but the last cut at
    the quietest frame of its final CUT_SEARCH_S so that a word is rarely split in two."""
    size = int(window_s * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_S * SAMPLE_RATE), size // 2)
    buf = np.zeros(0, np.float32)
    offset = 0
    while True:
        chunk = read(size - len(buf))
        buf = np.concatenate([buf, chunk]) if len(buf) else chunk
        if len(buf) < size:  # end of the audio
            if len(buf):
                yield offset / SAMPLE_RATE, buf
            return
        tail = _frame_rms(buf[size - search:])
        cut = size - search + int(np.argmin(tail)) * FRAME + FRAME // 2 if len(tail) else size
        yield offset / SAMPLE_RATE, buf[:cut]
        offset += cut
        buf = buf[cut:].copy()


def _array_reader(samples: np.ndarray) -> Callable[[int], np.ndarray]:
    pos = 0

    def read(n: int) -> np.ndarray:
        nonlocal pos
        out = samples[pos:pos + n]
        pos += len(out)
        return out

    return read


class NoAudioStream(Exception):
    """The media file has no audio track."""


def media_windows(path: str | Path, window_s: float = WINDOW_S) -> Iterator[tuple[float, np.ndarray]]:
    """Windows of a media file's first audio track, decoded by the imageio-ffmpeg binary as a stream
    (16 kHz mono): only one window is in memory at a time."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn",
           "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty ffmpeg can never block
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        got_any = False

        def read(n: int) -> np.ndarray:
            nonlocal got_any
            data = bytearray()
            want = 2 * n
            while len(data) < want:
                block = proc.stdout.read(want - len(data))
                if not block:
                    break
                data += block
            got_any = got_any or bool(data)
            return np.frombuffer(bytes(data[: len(data) // 2 * 2]), dtype="<i2").astype(np.float32) / 32768.0

        try:
            yield from _windows(read, window_s)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        err.seek(0)
        msg = err.read().decode(errors="replace").strip()
        if rc != 0 and not got_any:
            if "matches no streams" in msg or "does not contain any stream" in msg:
                raise NoAudioStream(path.name)
            raise ValueError(f"{path.name}: no readable audio ({msg[:200]})")



def array_windows(samples: np.ndarray, window_s: float = WINDOW_S) -> Iterator[tuple[float, np.ndarray]]:
    """Windows of 16 kHz mono samples already in memory (e.g. decoded for the audio model)."""
    return _windows(_array_reader(samples), window_s)


__all__ = ["SAMPLE_RATE", "NoAudioStream", "array_windows", "has_voice_energy", "media_windows"]
