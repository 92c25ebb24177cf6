"""Sampling a video on a time grid, and the frame readers behind it.

`iter_grid` decodes a video as a stream and converts only the frames on screen at its grid points.
Motion JPEG is read as packets and only the sampled ones are decoded (by libjpeg); H.264 and HEVC are
read by PyAV, which leaves undecoded the non-reference frames no grid point can take (`features.avreader`);
every other codec is decoded by FFmpeg frame by frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from video_emotion.features.avreader import open_skipping
from video_emotion.features.video import FrameClock, open_capture


def decode_threads() -> int:
    """FFmpeg's threads for an analysis's video: the cores its face search and model leave, at least one (on 2
    cores one thread decodes H.264 with ~15% less CPU than the default two; the frames are the same)."""
    return max(1, (os.cpu_count() or 1) - 2)



# Intra-only Motion JPEG (AVI `MJPG`, QuickTime `jpeg`/`mjpa`, Avid): every packet is a whole JPEG image.
MOTION_JPEG = frozenset({"MJPG", "mjpg", "jpeg", "mjpa", "AVRn", "AVDJ", "dmb1"})
# H.264 and HEVC as OpenCV reports them: read by PyAV, unsampled non-reference frames left undecoded.
INTER_CODED = frozenset({"h264", "H264", "avc1", "AVC1", "avc3", "x264", "X264", "hevc", "HEVC", "hvc1", "hev1", "H265",
                         "h265", "x265"})
DECODERS = ("auto", "ffmpeg")


def _fourcc(cap: cv2.VideoCapture) -> str:
    return int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")


def _jpeg_packets(path: str | Path, cap: cv2.VideoCapture | None = None) -> cv2.VideoCapture | None:
    """A capture that hands over Motion JPEG packets undecoded, or None where that is not safe: another
    codec, rotation metadata (raw packets are not turned upright) or a first packet that libjpeg does not
    decode to the stream's size (interlaced fields, an odd variant): those are decoded by FFmpeg as before.
    `cap` (optional): a fresh capture of the file, used here and released."""
    cap = cap or open_capture(path)
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


def _reader(path: str | Path, decoder: str, rate: float = 0.0,
            first_interval: float = 0.0) -> tuple[Any, Callable[[], np.ndarray | None]]:
    """A capture to `grab()` frame by frame and a function that returns the grabbed frame as BGR.

    Motion JPEG (with `decoder="auto"`): frames are read as packets, never decoded unless converted, and
    a converted one is decoded by libjpeg (`cv2.imdecode`), about 5x faster than decoding every frame.
    libjpeg and FFmpeg's decoder round differently (pixels within a few levels; docs/speed.md).
    H.264 and HEVC (with `decoder="auto"` and a grid `rate`): read by PyAV, the non-reference frames that no grid
    point can take left undecoded (`features.avreader`; frames and times those of the full decode).
    Every other codec, or where those readers cannot vouch for a file: FFmpeg decodes each frame on
    `grab()`, `retrieve()` converts it.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    cap = None
    if decoder == "auto":
        probe = open_capture(path)
        fourcc, rotation = _fourcc(probe), int(probe.get(cv2.CAP_PROP_ORIENTATION_META))
        if fourcc in MOTION_JPEG:
            cap = _jpeg_packets(path, probe)
        else:
            probe.release()
            skipping = open_skipping(path, rate, first_interval, rotation, decode_threads()) \
                if fourcc in INTER_CODED and rate > 0 else None
            if skipping is not None:
                return skipping, skipping.retrieve
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
    cap, retrieve = _reader(path, decoder, rate, clock.interval)
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
