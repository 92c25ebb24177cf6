"""Sampling a video on a time grid, and the frame readers behind it.

`iter_grid` decodes a video as a stream and converts only the frames on screen at its grid points.
Motion JPEG is read as packets and only the sampled ones are decoded (by libjpeg); every other codec
is decoded by FFmpeg frame by frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from video_emotion.features.video import FrameClock, open_capture


def decode_threads() -> int:
    """FFmpeg's threads for an analysis's video: the cores its face search and model leave, at least one (on 2
    cores one thread decodes H.264 with ~15% less CPU than the default two; the frames are the same)."""
    return max(1, (os.cpu_count() or 1) - 2)



# Intra-only Motion JPEG (AVI `MJPG`, QuickTime `jpeg`/`mjpa`, Avid): every packet is a whole JPEG image.
MOTION_JPEG = frozenset({"MJPG", "mjpg", "jpeg", "mjpa", "AVRn", "AVDJ", "dmb1"})
DECODERS = ("auto", "ffmpeg")


def _fourcc(cap: cv2.VideoCapture) -> str:
    return int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")


def _jpeg_packets(path: str | Path) -> cv2.VideoCapture | None:
    """A capture that hands over Motion JPEG packets undecoded, or None where that is not safe: another
    codec, rotation metadata (raw packets are not turned upright) or a first packet that libjpeg does not
    decode to the stream's size (interlaced fields, an odd variant): those are decoded by FFmpeg as before."""
    cap = open_capture(path)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
    ok = _fourcc(cap) in MOTION_JPEG and not cap.get(cv2.CAP_PROP_ORIENTATION_META) and cap.set(cv2.CAP_PROP_FORMAT, -1)
    if ok and cap.grab():
        got, packet = cap.retrieve()
        image = cv2.imdecode(packet, cv2.IMREAD_COLOR) if got and packet is not None else None
        ok = image is not None and image.shape[:2] == size
    cap.release()
    if not ok:
        return None
    cap = open_capture(path)
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    return cap


def _reader(path: str | Path, decoder: str) -> tuple[cv2.VideoCapture, Callable[[], np.ndarray | None]]:
    """A capture to `grab()` frame by frame and a function that returns the grabbed frame as BGR.

    Motion JPEG (with `decoder="auto"`): frames are read as packets, never decoded unless converted, and
    a converted one is decoded by libjpeg (`cv2.imdecode`), about 5x faster than decoding every frame.
    libjpeg and FFmpeg's decoder round differently (pixels within a few levels; docs/speed.md).
    Every other codec: FFmpeg decodes each frame on `grab()`, `retrieve()` converts it.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    cap = _jpeg_packets(path) if decoder == "auto" else None
    if cap is None:
        cap = open_capture(path, decode_threads())
        return cap, lambda: cap.retrieve()[1]

    def decode() -> np.ndarray | None:
        ok, packet = cap.retrieve()
        return cv2.imdecode(packet, cv2.IMREAD_COLOR) if ok and packet is not None else None

    return cap, decode


def iter_grid(path: str | Path, rate: float, clock: FrameClock | None = None,
              decoder: str = "auto") -> Iterator[tuple[list[int], np.ndarray]]:
    """Sample a video on a uniform time grid: grid point g at `(g + 0.5) / rate` seconds.

    Yields `(grid points, BGR frame)` for each decoded frame that is on screen at one or more grid
    points, in order, without knowing the video's length: times come from the frames' timestamps,
    so variable-frame-rate video is sampled by time, not by index. Only these frames are converted.
    A frame is taken to stay on screen for as long as the interval before it (the next timestamp is
    not known yet without decoding ahead), so where the rate changes a point may get a neighbour of
    the frame on screen; a clip shorter than the first point still gives point 0 its first frame.
    `clock` (optional) is left holding the stream's frame count and measured duration. `decoder`:
    "auto" reads Motion JPEG as packets and decodes only the sampled ones (see `_reader`); "ffmpeg"
    decodes every frame with FFmpeg whatever the codec (the reference path).
    """
    if not rate > 0:
        raise ValueError(f"sampling rate must be positive, got {rate}")
    clock = clock or FrameClock()
    cap, retrieve = _reader(path, decoder)
    g = 0
    first: np.ndarray | None = None  # kept only until a point is served (for clips shorter than one point)
    try:
        while cap.grab():
            t = clock.tick(cap)
            due = []
            # A frame is on screen until the next one, whose time is predicted from the last interval.
            while (g + 0.5) / rate < t + clock.interval - 1e-6:
                due.append(g)
                g += 1
            if not due and clock.frames > 1:
                continue
            frame = retrieve()
            if frame is None:
                break
            if due:
                first = None
                yield due, frame
            else:
                first = frame
        if g == 0 and first is not None:
            yield [0], first
    finally:
        cap.release()
