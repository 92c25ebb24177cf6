"""Video decoding: probing, frame timing and streaming reads.

Videos are decoded as a stream: frames that are not analysed are only grabbed, never converted, and
no function holds a whole video. Container headers are not trusted for time: a WebM recorded by a
browser has no duration (OpenCV then reports a frame count of about -2.8e17), an MPEG-TS header
overstates its length and phone video has a variable frame rate. Frame times come from each
decoded frame's own timestamp (`CAP_PROP_POS_MSEC`, relative to the video stream's start), and a
header that is implausible is replaced by counting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from video_emotion.security.format import MAGIC

# Containers people record and share; OpenCV (FFmpeg) reads them all.
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv"})
DEFAULT_FPS = 25.0         # a missing rate is common in raw streams; 25 is the usual container default
MAX_HEADER_S = 24 * 3600   # a header claiming more than a day of video is not believed
MAX_ORIGIN_S = 1.0         # a first frame later than this after the stream start begins the clock itself
DEMUX_TIMEOUT_S = 120.0    # reading the packets of a long video without decoding them


class VideoError(ValueError):
    """A file that cannot be read as a video (missing, corrupt, unsupported codec, no frames)."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    duration: float | None = None  # measured from decoded frame timestamps, when they were counted
    counted: bool = False          # n_frames and duration come from decoding, not from the header

    @property
    def duration_s(self) -> float:
        if self.duration is not None:
            return self.duration
        return self.n_frames / self.fps if self.fps > 0 else 0.0


def _why_unreadable(path: Path) -> str:
    """Why OpenCV could not open `path`: a file whose container holds no video stream (a song, a voice memo)
    is told so, in PyAV's reading of the container where PyAV is installed; anything else is unreadable."""
    try:
        import av
    except ImportError:
        return "not a readable video (unknown container or codec)"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream (an audio-only file)" if container.streams.audio else "no video stream"
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return "not a readable video (unknown container or codec)"


def open_capture(path: str | Path, threads: int = 0) -> cv2.VideoCapture:  # threads 0: FFmpeg's default (one per core)
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    with path.open("rb") as f:  # FFmpeg may take random bytes for a raw stream and "decode" noise from them
        if f.read(len(MAGIC)) == MAGIC:
            raise VideoError(f"{path}: an encrypted store file, not a video (it is read with the data key)")
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else [])
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: {_why_unreadable(path)}")
    # Phone clips store their rotation as metadata; frames come out upright (OpenCV's default, made explicit).
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def plausible_fps(fps: float) -> bool:
    return math.isfinite(fps) and 0 < fps < 1000


class FrameClock:
    """The time of each decoded frame, from its own timestamp, and what that says about the stream.

    A frame is shown from its timestamp until the next one's, so the stream lasts until the last
    timestamp plus one frame interval (the last interval seen, else the nominal rate's). Timestamps
    that are missing or run backwards are repaired from the nominal rate, never trusted blindly.
    """

    def __init__(self, fps_hint: float | None = None) -> None:
        self.nominal = fps_hint if fps_hint and plausible_fps(fps_hint) else DEFAULT_FPS
        self.frames = 0
        self.origin: float | None = None
        self.last: float | None = None
        self.interval = 1.0 / self.nominal

    def tick(self, cap: cv2.VideoCapture) -> float:
        """Record the frame just grabbed from `cap`; return its time in seconds from the clip start."""
        raw = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self.origin is None:
            ok = math.isfinite(raw) and 0.0 <= raw <= MAX_ORIGIN_S
            self.origin = 0.0 if ok else (raw if math.isfinite(raw) else 0.0)
            t = raw - self.origin if math.isfinite(raw) else 0.0
        else:
            t = raw - self.origin if math.isfinite(raw) else self.last + 1.0 / self.nominal
            if t > self.last:
                self.interval = t - self.last
            t = max(t, self.last)
        self.last = t
        self.frames += 1
        return t

    @property
    def duration_s(self) -> float:
        return 0.0 if self.last is None else self.last + self.interval

    @property
    def fps(self) -> float:
        """The nominal rate when the decoded frames agree with it (within 2 %), else the measured average."""
        measured = self.frames / self.duration_s if self.duration_s > 0 else self.nominal
        return self.nominal if abs(measured - self.nominal) <= 0.02 * self.nominal else measured


def _header_plausible(n: float, fps: float) -> bool:
    return math.isfinite(n) and n >= 1 and plausible_fps(fps) and n / fps <= MAX_HEADER_S


def _demux_count(path: str | Path) -> tuple[int, float] | None:
    """(video packets, time of the stream's end) by reading the packets without decoding them
    (ffmpeg stream copy: about 0.2 s for 200 s of video); None if ffmpeg cannot tell."""
    from video_emotion.features.audio import AudioError, run_ffmpeg

    try:
        res = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null",
                          "-progress", "pipe:1", "-"], DEMUX_TIMEOUT_S, path)
    except AudioError:
        return None
    fields = dict(ln.split("=", 1) for ln in res.stdout.decode(errors="replace").splitlines() if "=" in ln)
    try:
        n, end = int(fields["frame"]), int(fields["out_time_us"]) / 1e6
    except (KeyError, ValueError):
        return None
    return (n, end) if res.returncode == 0 and n >= 1 and end > 0 else None


def probe(path: str | Path, count: bool = False) -> VideoInfo:
    """Frame rate, frame count, size and duration of a video.

    The header's frame count is used only when it is plausible and `count` is off. A header that is
    not (a browser's WebM) is replaced by counting the stream's packets without decoding them, an
    estimate for checks before the work (the analysis measures the stream it decodes). With `count`
    every frame is grabbed (decoded but not converted) and the count and duration come from the
    frames' own timestamps. Width and height are those of the decoded (upright) first frame. A video
    that yields no decodable first frame is rejected here rather than half-way through a stage.
    """
    cap = open_capture(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n_header = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: no decodable frame (corrupt, truncated or unsupported codec)")
        height, width = frame.shape[:2]
        if not count and _header_plausible(n_header, fps):
            return VideoInfo(fps=fps, n_frames=int(n_header), width=width, height=height)
        if not count:
            demuxed = _demux_count(path)
            if demuxed is not None:
                n, duration = demuxed
                return VideoInfo(fps=fps if plausible_fps(fps) else n / duration, n_frames=n, width=width,
                                 height=height, duration=duration)
        clock = FrameClock(fps)
        clock.tick(cap)
        while cap.grab():
            clock.tick(cap)
        return VideoInfo(fps=clock.fps, n_frames=clock.frames, width=width, height=height,
                         duration=clock.duration_s, counted=True)
    finally:
        cap.release()


def uniform_indices(n_frames: int, n_samples: int) -> np.ndarray:
    """`n_samples` frame indices spread uniformly over `n_frames` (repeats when the clip is short)."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.floor((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(np.int64).clip(0, n_frames - 1)


def iter_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(index, BGR frame)` for the requested (sorted, possibly repeated) frame indices.

    Streams: skipped frames are grabbed without decoding into an array. Stops quietly when the file
    ends early (a header that overstates the length); the caller sees fewer frames.
    """
    wanted = sorted(int(i) for i in indices)
    if not wanted:
        return
    cap = open_capture(path)
    try:
        pos = -1
        frame = None
        for idx in wanted:
            if idx == pos and frame is not None:
                yield idx, frame
                continue
            while pos < idx:
                if not cap.grab():
                    return
                pos += 1
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                return
            yield idx, frame
    finally:
        cap.release()
