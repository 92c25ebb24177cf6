"""Video decoding: probing, frame sampling and streaming reads.

Videos are decoded as a stream: frames that are not analysed are only grabbed (demuxed), never
converted, and no function holds a whole video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Containers people record and share; OpenCV (FFmpeg) reads them all.
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv"})


class VideoError(ValueError):
    """A file that cannot be read as a video (missing, corrupt, unsupported codec, no frames)."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps if self.fps > 0 else 0.0


def _open(path: str | Path) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: not a readable video (unknown container or codec)")
    return cap


def probe(path: str | Path, count: bool = False) -> VideoInfo:
    """Container metadata; with `count`, the frame count is established by demuxing every frame.

    Container headers can lie (truncated files, variable frame rate), so ingest counts; a video that
    yields no decodable first frame is rejected here rather than half-way through a stage.
    """
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: no decodable frame (corrupt, truncated or unsupported codec)")
        if count:
            n = 1
            while cap.grab():
                n += 1
        else:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            n = max(n, 1)
        if not (0 < fps < 1000):
            fps = 25.0  # a missing rate is common in raw streams; 25 is the usual container default
        return VideoInfo(fps=fps, n_frames=n, width=width or frame.shape[1], height=height or frame.shape[0])
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
    cap = _open(path)
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
