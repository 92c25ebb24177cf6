"""Frame windows: the model's T frames per window, streamed from a video with their face crops.

Memory holds about one window of crops whatever the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from video_emotion.features.faces import FacePath
from video_emotion.features.sampling import iter_grid
from video_emotion.features.streams import prefetched
from video_emotion.features.tracking import FaceTracker
from video_emotion.features.video import FrameClock, VideoInfo, probe, uniform_indices
from video_emotion.inference.bundle import ModelBundle

DECODE_AHEAD = 4  # decoded frames waiting for the face work (a few MB even at 1080p)
DETECT_AHEAD = 4  # frames searched for faces, waiting for the tracker
DETECT_INTERVAL_S = 0.125  # serving looks for the face at most 8 times a second (mostly near the last box)


@dataclass
class Window:
    start_s: float
    end_s: float
    crops: np.ndarray   # (T, S, S)
    face: np.ndarray    # (T,)
    new_frames: int = 0  # sampled frames first read for this window (sums to the frames analysed)
    span_s: tuple[float, float] | None = None  # time covered by the window's frames (audio is cut to it)
    tracks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # per face: (crops, face)
    quality: list = field(default_factory=list)  # (T,) the primary face's FaceQuality per frame (None: no face)


def iter_windows(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None,
                 faces: FacePath | None = None,
                 detect_interval_s: float = DETECT_INTERVAL_S, fast: bool = True,
                 info: VideoInfo | None = None, clock: FrameClock | None = None, pipeline: bool = True,
                 decoder: str = "auto") -> Iterator[Window]:
    """Windows of `bundle.window_s` seconds, each holding the model's T frames at the model's rate.

    At the model's own rate (T / window_s, the default) windows follow each other. A higher
    `sample_fps` adds interleaved, overlapping windows (k = sample_fps / model rate of them per
    window length), so that every sampled frame goes through the CNN and the timeline gets k times
    finer; a lower one spreads T frames over fewer distinct frames. Only sampled frames are
    converted; memory holds about one window of crops whatever the video's length. Faces are found
    and cropped by the bundle's face path (`faces`: the detector and crop it was trained with), its
    tracker looking for them every `detect_interval_s` seconds; frames in between reuse the box (faces
    move little in a quarter second); `detect_interval_s=0` detects on every sampled frame.

    Frames are placed by their own timestamps as they arrive (variable frame rates, files whose
    header has no duration); the header's frame count is never used. `clock` (optional) is left
    holding the decoded frame count and the measured duration; the last window ends there.
    `pipeline`: the video is decoded on its own thread, a few frames ahead of the face search, which runs
    on its own thread a few frames ahead of the tracker and the crops (`FaceTracker.ahead`: the same frames
    and searches in the same order; False runs each in turn). `decoder`: see `features.sampling.iter_grid`.
    """
    info = info or probe(path)
    k, grid_rate = _grid(bundle, sample_fps, info.fps)
    every = 1 if detect_interval_s <= 0 or not fast else max(bundle.preprocess.detect_every,
                                                             int(round(grid_rate * detect_interval_s)))
    track = FaceTracker(faces or bundle.face_path(), every, max_gap=max(8, 2 * every), track=fast)
    clock = clock if clock is not None else FrameClock(info.fps)
    per_window = max(1, int(round(bundle.window_s * grid_rate)))
    T = bundle.n_frames
    layout = _Consecutive(T, per_window, grid_rate) if k == 1 else _Interleaved(T, k, grid_rate)
    frames = prefetched(iter_grid(path, grid_rate, clock, decoder), DECODE_AHEAD, "decode", pipeline)
    with closing(prefetched(track.ahead(frames), DETECT_AHEAD, "detect", pipeline)) as found:
        yield from _windows(found, track, layout, clock)


def _grid(bundle: ModelBundle, sample_fps: float | None, fps: float) -> tuple[int, float]:
    """(k, grid rate): windows started per window length, and the rate of the frame grid they pick from."""
    model_rate = bundle.n_frames / bundle.window_s
    rate = sample_fps or model_rate
    if rate <= model_rate * 1.001:  # consecutive windows, T frames picked from each
        return 1, min(rate, fps)
    k = max(1, int(round(rate / model_rate)))
    grid_rate = min(model_rate * k, fps)
    return max(1, int(round(grid_rate / model_rate))), grid_rate


def _windows(grid: Iterator[tuple[list[int], np.ndarray, list | None]], track: FaceTracker,
             layout: _Consecutive | _Interleaved, clock: FrameClock) -> Iterator[Window]:
    """The windows of the layout as the grid's frames arrive, each holding only the crops it needs."""
    crops: dict[int, np.ndarray] = {}
    has_face: dict[int, bool] = {}
    per_track: dict[int, dict[int, np.ndarray]] = {}  # grid index -> {track id: crop}
    quality: dict[int, object] = {}  # grid index -> the primary face's FaceQuality
    held: _Spec | None = None  # held back until the next window is complete: the last one ends at the clip's end
    fresh = served = 0
    for points, frame, found in grid:
        crop, face, others = track(frame, found)
        for g in points:
            crops[g], has_face[g], per_track[g], quality[g] = crop, face, others, track.quality
        fresh += len(points)
        served = points[-1] + 1
        for spec in layout.ready(served):
            if held is not None:
                yield _window(held, crops, has_face, per_track, fresh, quality)
                fresh = 0
            held = spec
        first_needed = int(held.picks.min()) if held is not None else layout.first_needed()
        for g in [g for g in crops if g < first_needed]:  # drop crops no later window needs
            del crops[g], has_face[g], per_track[g], quality[g]
    for spec in layout.finish(served):
        if held is not None:
            yield _window(held, crops, has_face, per_track, fresh, quality)
            fresh = 0
        held = spec
    if held is not None:
        yield _window(held, crops, has_face, per_track, fresh, quality, end_s=max(held.start_s, clock.duration_s))


@dataclass(frozen=True)
class _Spec:
    picks: np.ndarray               # grid points of the window's T frames
    start_s: float
    end_s: float
    span_s: tuple[float, float]     # time covered by those frames


class _Consecutive:
    """Windows that follow each other, `per_window` grid points each, T of them picked uniformly."""

    def __init__(self, T: int, per_window: int, rate: float) -> None:
        self.T, self.per_window, self.rate, self.j = T, per_window, rate, 0

    def _spec(self, s: int, e: int) -> _Spec:
        self.j += 1
        return _Spec(s + uniform_indices(e - s, self.T), s / self.rate, e / self.rate, (s / self.rate, e / self.rate))

    def ready(self, n: int) -> list[_Spec]:
        out = []
        while (self.j + 1) * self.per_window <= n:
            out.append(self._spec(self.j * self.per_window, (self.j + 1) * self.per_window))
        return out

    def finish(self, n: int) -> list[_Spec]:
        return [self._spec(self.j * self.per_window, n)] if self.j * self.per_window < n else []

    def first_needed(self) -> int:
        """The first grid point a window still to come may pick."""
        return self.j * self.per_window


class _Interleaved:
    """Window j starts at grid point j*hop and takes every k-th point for T frames. With gcd(hop, k)
    == 1 consecutive windows use different residues mod k, so each sampled frame goes through the
    CNN about once while windows start k times more often than at the model rate."""

    def __init__(self, T: int, k: int, rate: float) -> None:
        hop = T
        while hop > 1 and math.gcd(hop, k) != 1:
            hop -= 1
        self.T, self.k, self.rate, self.hop, self.j = T, k, rate, hop, 0

    def _spec(self, picks: np.ndarray) -> _Spec:
        s, r = self.j * self.hop, self.rate
        centre, half = (s + (self.T - 1) * self.k / 2) / r, self.hop / r / 2
        self.j += 1
        return _Spec(picks, 0.0 if s == 0 else centre - half, centre + half, (s / r, (int(picks.max()) + 1) / r))

    def ready(self, n: int) -> list[_Spec]:
        out = []
        while self.j * self.hop + (self.T - 1) * self.k < n:
            out.append(self._spec(self.j * self.hop + np.arange(self.T) * self.k))
        return out

    def finish(self, n: int) -> list[_Spec]:
        """A clip shorter than one window still gets one, its picks clipped to the frames there are."""
        return [self._spec(np.minimum(np.arange(self.T) * self.k, n - 1))] if self.j == 0 and n > 0 else []

    def first_needed(self) -> int:
        """The first grid point a window still to come may pick."""
        return self.j * self.hop


def _window(spec: _Spec, crops: dict[int, np.ndarray], has_face: dict[int, bool],
            per_track: dict[int, dict[int, np.ndarray]], fresh: int, quality: dict | None = None,
            end_s: float | None = None) -> Window:
    picks = spec.picks
    return Window(start_s=spec.start_s, end_s=spec.end_s if end_s is None else end_s,
                  crops=np.stack([crops[int(g)] for g in picks]), face=np.array([has_face[int(g)] for g in picks]),
                  new_frames=fresh, span_s=spec.span_s, tracks=_track_windows(picks, per_track),
                  quality=[(quality or {}).get(int(g)) for g in picks])


def _track_windows(picks, per_track: dict[int, dict[int, np.ndarray]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each face track's crops at a window's frames (zeros and face=False where the track is absent)."""
    ids = sorted({t for g in picks for t in per_track.get(int(g), {})})
    out = {}
    for t in ids:
        face = np.array([t in per_track[int(g)] for g in picks])
        some = next(per_track[int(g)][t] for g in picks if t in per_track[int(g)])
        out[t] = (np.stack([per_track[int(g)].get(t, np.zeros_like(some)) for g in picks]), face)
    return out
