"""H.264 and HEVC read by PyAV, leaving undecoded the non-reference frames that no grid point can take.

No frame refers to a non-reference frame (H.264 `nal_ref_idc` 0; HEVC sub-layer non-reference pictures
of a stream with one temporal layer), so not decoding one changes no other frame.
Which frames a grid takes depends only on the frames' times, and those are known from the packets before
anything is decoded: the packets are scanned once (~0.05 s for 200 s of video), their times laid out in
presentation order exactly as OpenCV's FFmpeg reports them, and a non-reference frame is left undecoded
only where no grid point can fall on it even 1 ms either side. Frames, times and order are the full
decode's: PyAV and OpenCV carry the same FFmpeg, the conversion to BGR is the same swscale call, and the
frames are turned upright as OpenCV's `CAP_PROP_ORIENTATION_AUTO` turns them. Whatever the reader cannot
vouch for (missing or repeated timestamps, more reordering than the decoder's delay, a decoding error, a
frame that does not come out where the packets said) hands the read over to OpenCV at the frame where it
stands: OpenCV decodes from the start, passes over the frames already given and goes on as the reference.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from video_emotion.features.nal import Layout, disposable, layout, new_parameter_sets
from video_emotion.features.video import MAX_ORIGIN_S, open_capture

MARGIN_S = 1e-3      # a frame is decoded if a grid point falls within this of the span it could be taken for
MAX_REORDER = 16     # H.264's and HEVC's largest decoded picture buffer: reordering deeper than this is not believed
UNKNOWN, SENT, SKIPPED = 0, 1, 2
# OpenCV's rotation (CAP_PROP_ORIENTATION_META, degrees) and how its ORIENTATION_AUTO turns the frame.
ROTATIONS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class _Unsure(Exception):
    """The stream did something the reader cannot vouch for: OpenCV takes over."""


def scan(container: Any, stream: Any) -> tuple[np.ndarray, int] | None:
    """The frames' timestamps in presentation order and the stream's deepest reordering, from its packets;
    None where a timestamp is missing or repeated, decode timestamps run backwards or reordering is deeper
    than H.264 or HEVC allow."""
    pts, dts = array("q"), array("q")  # 8 bytes a frame while scanning
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # discarded packets are decoded but never shown
            continue
        if packet.pts is None or packet.dts is None:
            return None
        pts.append(packet.pts)
        dts.append(packet.dts)
    if not pts:
        return None
    decode_order = np.frombuffer(pts, np.int64)
    order = np.sort(decode_order)
    if np.any(np.diff(order) <= 0) or np.any(np.diff(np.frombuffer(dts, np.int64)) <= 0):
        return None
    depth = np.zeros(len(pts), np.int64)  # earlier packets shown later, looked for among the last MAX_REORDER
    for lag in range(1, min(MAX_REORDER, len(pts) - 1) + 1):
        depth[lag:] += decode_order[:-lag] > decode_order[lag:]
    running = np.maximum.accumulate(decode_order)
    if len(pts) > MAX_REORDER + 1 and np.any(running[:-MAX_REORDER - 1] > decode_order[MAX_REORDER + 1:]):
        return None
    return order, int(depth.max())


def plan(times_s: np.ndarray, rate: float, first_interval: float) -> np.ndarray:
    """Which frames, at these times (seconds, presentation order, from the clip's start as `FrameClock` counts
    them), a grid at `rate` may take, by `iter_grid`'s rule with a margin. A frame is taken when a grid
    point lies at or after the furthest `time + interval` of the frames before it and before its own (both
    less the rule's 1e-6 s); it may be taken when one lies within `MARGIN_S` of that span."""
    interval = np.diff(times_s, prepend=times_s[0] - first_interval)
    ends = times_s + interval - 1e-6
    before = np.concatenate(([-np.inf], np.maximum.accumulate(ends)[:-1]))

    def points_below(limit: np.ndarray) -> np.ndarray:  # grid points (g + 0.5) / rate < limit
        return np.clip(np.ceil(limit * rate - 0.5), 0, None)

    needed = points_below(ends + MARGIN_S) > points_below(before - MARGIN_S)
    needed[0] = True
    return needed


class SkippingReader:
    """An H.264 or HEVC stream read in presentation order with OpenCV's `grab`, `get(CAP_PROP_POS_MSEC)`, `retrieve`
    and `release`, for `iter_grid`; a grabbed frame that no grid point can take may be left undecoded
    (`retrieve` never asked for it). Hands over to OpenCV on anything it cannot vouch for."""

    def __init__(self, path: str | Path, rate: float, first_interval: float, rotation: int, threads: int,
                 opened: tuple[Any, Any, np.ndarray, int, Layout]) -> None:
        from av.video.reformatter import VideoReformatter

        self._path, self._rate, self._first_interval, self._threads = path, rate, first_interval, threads
        self._container, stream, self._order, self._depth, self._layout = opened
        self._keys = array("q", self._order.tobytes())  # the same timestamps, for quick lookups per packet
        self._codec = stream.codec_context
        self._codec.thread_count, self._codec.thread_type = threads, "AUTO"  # as OpenCV opens it
        self._start, self._tb = stream.start_time, float(stream.time_base.numerator / stream.time_base.denominator)
        self._packets = self._container.demux(stream)
        self._state = bytearray(len(self._order))
        self._may_skip: bytes | None = None  # set once the first frame is out
        self._decoded: deque[Any] = deque()
        self._done, self._given, self._frame, self._msec = False, 0, None, 0.0
        self._rotation, self._reformat = ROTATIONS[rotation], VideoReformatter()
        self._cv: cv2.VideoCapture | None = None
        self.skipped = 0

    def _ms(self, ts: int) -> float:  # OpenCV's CAP_PROP_POS_MSEC: from the stream's start_time
        return float(ts - self._start) * self._tb * 1000.0

    def _feed(self) -> bool:
        """Send the next packet to the decoder, or leave it undecoded; False when the stream is spent."""
        from av.error import FFmpegError

        try:
            packet = None if self._done else next(self._packets, None)
        except FFmpegError as e:  # a damaged container: OpenCV reads it its own way
            raise _Unsure from e
        if packet is None or packet.size == 0:
            if self._done:
                return False
            self._done = True  # flush the decoder's delayed frames
        elif not packet.is_discard:
            i = bisect_left(self._keys, packet.pts) if packet.pts is not None else len(self._keys)
            if i >= len(self._keys) or self._keys[i] != packet.pts or self._state[i] != UNKNOWN:
                raise _Unsure
            if self._may_skip is not None:
                data = memoryview(packet)
                if new_parameter_sets(data, self._layout):  # the stream's decoding may change: no more skips
                    self._may_skip = None
                elif self._may_skip[i] and disposable(data, self._layout):
                    self._state[i], self.skipped = SKIPPED, self.skipped + 1
                    return True
            self._state[i] = SENT
        try:
            self._decoded.extend(self._codec.decode(None if self._done else packet))
        except FFmpegError as e:
            raise _Unsure from e
        return True

    def _next(self) -> bool:
        if self._given >= len(self._keys):
            return False
        k, pts = self._given, self._keys[self._given]
        while self._state[k] == UNKNOWN or (self._state[k] == SENT and not self._decoded):
            if not self._feed():
                raise _Unsure
        self._frame = None
        if self._state[k] == SENT:
            frame = self._decoded.popleft()
            ts = frame.pts if frame.pts != 0 else frame.dts  # OpenCV takes the packet's dts for a pts of 0
            if frame.pts != pts or ts is None or frame.is_corrupt:
                raise _Unsure
            self._frame, pts = frame, ts
        self._msec = self._ms(pts)
        if k == 0:
            self._plan_skips()
        self._given += 1
        return True

    def _plan_skips(self) -> None:
        """Once the first frame is out (its time sets the clock's origin) and the decoder's delay is known."""
        if self._depth > self._codec.reorder_depth:  # the decoder would reorder by guesswork: not vouched for
            raise _Unsure
        # Milliseconds then seconds, as OpenCV reports a time and FrameClock reads it: the same float rounding.
        raw = (self._order - self._start).astype(np.float64) * self._tb * 1000.0 / 1000.0
        raw[0] = self._msec / 1000.0
        origin = 0.0 if 0.0 <= raw[0] <= MAX_ORIGIN_S else raw[0]  # FrameClock's rule
        times = raw - origin
        if np.all(np.diff(times) > 0):  # a pts of 0 is timed by a dts only decoding gives: never skipped
            self._may_skip = (~plan(times, self._rate, self._first_interval) & (self._order != 0)).tobytes()

    def _hand_over(self, frames: int) -> cv2.VideoCapture:
        """OpenCV from the start, `frames` frames passed over; it reads the rest."""
        self._close()
        cap = self._cv = open_capture(self._path, self._threads)
        for _ in range(frames):
            if not cap.grab():
                break
        return cap

    def grab(self) -> bool:
        if self._cv is not None:
            return self._cv.grab()
        try:
            return self._next()
        except _Unsure:
            return self._hand_over(self._given).grab()

    def get(self, prop: int) -> float:
        if self._cv is not None:
            return self._cv.get(prop)
        if prop != cv2.CAP_PROP_POS_MSEC:
            raise ValueError(f"SkippingReader reports only CAP_PROP_POS_MSEC, not {prop}")
        return self._msec

    def retrieve(self) -> np.ndarray | None:
        if self._cv is None and self._frame is None:  # a frame left undecoded was asked for: the plan forbids it
            self._hand_over(self._given)
        if self._cv is not None:
            return self._cv.retrieve()[1]
        image = self._reformat.reformat(self._frame, format="bgr24").to_ndarray()
        return np.ascontiguousarray(image if self._rotation is None else cv2.rotate(image, self._rotation))

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container, self._decoded, self._frame = None, deque(), None

    def release(self) -> None:
        self._close()
        if self._cv is not None:
            self._cv.release()


def open_skipping(path: str | Path, rate: float, first_interval: float, rotation: int,
                  threads: int) -> SkippingReader | None:
    """A `SkippingReader` for an H.264 or HEVC file with one video stream, length-prefixed NAL units (MP4,
    MOV, Matroska), a rotation OpenCV turns, sane timestamps and PyAV installed; None otherwise."""
    if rotation not in ROTATIONS:
        return None
    try:
        import av
    except ImportError:
        return None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError):
        return None
    try:
        videos = container.streams.video
        lay = layout(videos[0].codec_context.name, videos[0].codec_context.extradata) if len(videos) == 1 else None
        if lay is None or videos[0].start_time is None:
            raise _Unsure
        scanned = scan(container, videos[0])
        if scanned is None:
            raise _Unsure
    except (_Unsure, av.error.FFmpegError):
        return None
    finally:
        container.close()
    try:
        container = av.open(str(path))  # afresh: the packets read again from the start, as OpenCV would
    except (av.error.FFmpegError, OSError):
        return None
    opened = (container, container.streams.video[0], *scanned, lay)
    return SkippingReader(path, rate, first_interval, rotation, threads, opened)
