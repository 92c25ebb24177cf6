"""The pipelined stream (`features.streams`) and the Motion JPEG packet reader (`features.video`).

Real threads, real video files (written by the shipped ffmpeg from real footage)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from video_emotion.features.audio import ffmpeg_exe
from video_emotion.features.sampling import _jpeg_packets, iter_grid
from video_emotion.features.streams import Prefetch, prefetched
from video_emotion.features.video import FrameClock

REAL = Path(__file__).resolve().parents[2] / "data" / "external" / "real_faces" / "cry_then_laugh.mp4"


def test_prefetch_yields_every_item_in_order_and_stays_bounded():
    made = []

    def source():
        for i in range(200):
            made.append(i)
            yield i

    with Prefetch(source(), depth=3) as stream:
        first = next(stream)
        time.sleep(0.2)  # the producer runs ahead, but no further than the queue allows
        assert first == 0 and len(made) <= 1 + 3 + 1
        assert [first, *stream] == list(range(200))


def test_prefetch_raises_the_source_error_in_the_consumer():
    def source():
        yield 1
        raise ValueError("corrupt frame")

    with pytest.raises(ValueError, match="corrupt frame"), Prefetch(source(), depth=2) as stream:
        list(stream)


def test_closing_early_stops_the_producer_and_closes_its_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    gen = prefetched(source(), depth=2, name="t")
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    gen.close()
    assert closed.is_set()  # the source's `finally` ran (on its own thread) before close returned
    assert not [t for t in threading.enumerate() if t.name == "t"]


def test_sequential_mode_is_the_source_itself():
    assert list(prefetched(iter(range(5)), depth=1, name="s", enabled=False)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        Prefetch([], depth=0)


def _ffmpeg(*args: str) -> None:
    res = subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def mjpeg(tmp_path_factory) -> Path:
    """The first 6 s of the real footage as Motion JPEG in AVI (what webcams and cameras record)."""
    out = tmp_path_factory.mktemp("mjpeg") / "real.avi"
    _ffmpeg("-i", str(REAL), "-t", "6", "-an", "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", str(out))
    return out


def test_motion_jpeg_is_read_as_packets_and_other_codecs_are_not(mjpeg):
    cap = _jpeg_packets(mjpeg)
    assert cap is not None
    cap.release()
    assert _jpeg_packets(REAL) is None  # H.264: every frame must be decoded


@pytest.mark.parametrize("rate", [4.0, 8.0, 30.0])
def test_motion_jpeg_packets_give_the_same_frames_and_times_as_ffmpeg(mjpeg, rate):
    """Same grid points, same frame count and duration; pixels within the two JPEG decoders' rounding."""
    fast_clock, ref_clock = FrameClock(), FrameClock()
    fast = list(iter_grid(mjpeg, rate, fast_clock, decoder="auto"))
    ref = list(iter_grid(mjpeg, rate, ref_clock, decoder="ffmpeg"))
    assert [p for p, _ in fast] == [p for p, _ in ref] and len(fast) >= int(6 * min(rate, 23.98)) - 1
    assert (fast_clock.frames, fast_clock.duration_s) == (ref_clock.frames, ref_clock.duration_s)
    for (_, a), (_, b) in zip(fast, ref, strict=True):
        assert a.shape == b.shape
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        # libjpeg (fancy upsampling) and FFmpeg (+ swscale) round differently: a level or two on average.
        assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 12


def test_rotated_motion_jpeg_falls_back_to_ffmpeg(mjpeg, tmp_path):
    """Raw packets are not turned upright: a clip with rotation metadata is decoded by FFmpeg."""
    rotated = tmp_path / "rotated.mov"
    _ffmpeg("-display_rotation", "90", "-i", str(mjpeg), "-c", "copy", str(rotated))
    assert _jpeg_packets(rotated) is None
    (_, frame), *_ = iter_grid(rotated, 4.0)
    ref = cv2.VideoCapture(str(mjpeg)).read()[1]
    assert frame.shape[:2] == ref.shape[1::-1]  # upright: width and height swapped


def test_h264_is_decoded_with_the_threads_left_and_gives_ffmpegs_own_frames(monkeypatch):
    """FFmpeg decodes an analysis's H.264 with `decode_threads()` threads (the cores the other stages leave),
    set when the file is opened; the frames, times and count are those of FFmpeg's default threading."""
    from video_emotion.features import sampling

    cap, _ = sampling._reader(REAL, "auto")
    assert cap.get(cv2.CAP_PROP_N_THREADS) == sampling.decode_threads() >= 1
    cap.release()
    ours_clock, default_clock = FrameClock(), FrameClock()
    ours = list(iter_grid(REAL, 4.0, ours_clock, decoder="ffmpeg"))
    monkeypatch.setattr(sampling, "decode_threads", lambda: 0)  # 0: FFmpeg's default, one thread per core
    default = list(iter_grid(REAL, 4.0, default_clock, decoder="ffmpeg"))
    assert (ours_clock.frames, ours_clock.duration_s) == (default_clock.frames, default_clock.duration_s)
    assert [p for p, _ in ours] == [p for p, _ in default] and len(ours) >= 70
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ours, default, strict=True))
