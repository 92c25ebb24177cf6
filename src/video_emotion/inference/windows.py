"""Frame windows: the model's T frames per window, streamed from a video with their face crops.

Memory holds about one window of crops whatever the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from video_emotion.features.faces import FaceDetector
from video_emotion.features.tracking import FaceTracker
from video_emotion.features.video import VideoInfo, iter_frames, probe, uniform_indices
from video_emotion.inference.bundle import ModelBundle

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


def iter_windows(path: str | Path, bundle: ModelBundle, sample_fps: float | None = None,
                 detector: FaceDetector | None = None,
                 detect_interval_s: float = DETECT_INTERVAL_S, fast: bool = True,
                 info: VideoInfo | None = None) -> Iterator[Window]:
    """Windows of `bundle.window_s` seconds, each holding the model's T frames at the model's rate.

    At the model's own rate (T / window_s, the default) windows follow each other. A higher
    `sample_fps` adds interleaved, overlapping windows (k = sample_fps / model rate of them per
    window length), so that every sampled frame goes through the CNN and the timeline gets k times
    finer; a lower one spreads T frames over fewer distinct frames. Only sampled frames are
    converted; memory holds about one window of crops whatever the video's length. The face
    detector runs every `detect_interval_s` seconds and frames in between reuse its box (faces move
    little in a quarter second); `detect_interval_s=0` detects on every sampled frame.
    """
    info = info or probe(path)
    cfg = bundle.preprocess
    detector = detector or FaceDetector(cfg.min_face_frac)
    T = bundle.n_frames
    model_rate = T / bundle.window_s
    rate = sample_fps or model_rate
    if rate <= model_rate * 1.001:  # consecutive windows, T frames picked from each
        k, grid_rate = 1, min(rate, info.fps)
    else:
        k = max(1, int(round(rate / model_rate)))
        grid_rate = min(model_rate * k, info.fps)
        k = max(1, int(round(grid_rate / model_rate)))
    every = 1 if detect_interval_s <= 0 or not fast else max(cfg.detect_every, int(round(grid_rate * detect_interval_s)))
    track = FaceTracker(detector, cfg, every, max_gap=max(8, 2 * every), track=fast)
    n_grid = max(1, int(np.floor(info.duration_s * grid_rate + 1e-6)))
    grid_frames = np.minimum(np.floor((np.arange(n_grid) + 0.5) * info.fps / grid_rate), info.n_frames - 1).astype(np.int64)
    crops: dict[int, np.ndarray] = {}
    faces: dict[int, bool] = {}
    per_track: dict[int, dict[int, np.ndarray]] = {}  # grid index -> {track id: crop}
    pos = {int(f): [] for f in grid_frames}
    for g, f in enumerate(grid_frames):
        pos[int(f)].append(g)

    if k == 1:
        per_window = max(1, int(round(bundle.window_s * grid_rate)))
        spans = [(s, min(n_grid, s + per_window)) for s in range(0, n_grid, per_window)]
        picks = [s + uniform_indices(e - s, T) for s, e in spans]
        times = [(s / grid_rate, e / grid_rate) for s, e in spans]
        covered = times
    else:
        # Window j starts at grid frame j*hop and takes every k-th frame for T frames. With
        # gcd(hop, k) == 1 consecutive windows use different residues mod k, so each sampled frame
        # goes through the CNN about once while windows start k times more often than at the model rate.
        hop = T
        while hop > 1 and math.gcd(hop, k) != 1:
            hop -= 1
        starts = list(range(0, max(1, n_grid - (T - 1) * k), hop)) or [0]
        picks = [np.minimum(s + np.arange(T) * k, n_grid - 1) for s in starts]
        half = hop / grid_rate / 2
        covered = [(s / grid_rate, (s + (T - 1) * k + 1) / grid_rate) for s in starts]
        times = []
        for j, s in enumerate(starts):
            centre = (s + (T - 1) * k / 2) / grid_rate
            lo = 0.0 if j == 0 else centre - half
            hi = info.duration_s if j == len(starts) - 1 else centre + half
            times.append((lo, hi))
    next_window = 0
    fresh = 0
    for idx, frame in iter_frames(path, np.unique(grid_frames)):
        crop, face, others = track(frame)
        fresh += len(pos[int(idx)])
        for g in pos[int(idx)]:
            crops[g], faces[g], per_track[g] = crop, face, others
        last = pos[int(idx)][-1]
        while next_window < len(picks) and int(picks[next_window].max()) <= last:
            p = picks[next_window]
            yield Window(start_s=times[next_window][0], end_s=times[next_window][1],
                         crops=np.stack([crops[int(g)] for g in p]), face=np.array([faces[int(g)] for g in p]),
                         new_frames=fresh, span_s=covered[next_window], tracks=_track_windows(p, per_track))
            fresh = 0
            next_window += 1
            if next_window < len(picks):  # drop crops no later window needs
                low = int(picks[next_window].min())
                for g in [g for g in crops if g < low]:
                    del crops[g], faces[g], per_track[g]
    # A file that ends before its header says: close the windows that have frames.
    while next_window < len(picks):
        p = [int(g) for g in picks[next_window] if int(g) in crops]
        if not p:
            break
        p = [p[i] for i in uniform_indices(len(p), T)]
        yield Window(start_s=times[next_window][0], end_s=min(times[next_window][1], info.duration_s),
                     crops=np.stack([crops[g] for g in p]), face=np.array([faces[g] for g in p]),
                     span_s=covered[next_window])
        next_window += 1


def _track_windows(picks, per_track: dict[int, dict[int, np.ndarray]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each face track's crops at a window's frames (zeros and face=False where the track is absent)."""
    ids = sorted({t for g in picks for t in per_track.get(int(g), {})})
    out = {}
    for t in ids:
        face = np.array([t in per_track[int(g)] for g in picks])
        some = next(per_track[int(g)][t] for g in picks if t in per_track[int(g)])
        out[t] = (np.stack([per_track[int(g)].get(t, np.zeros_like(some)) for g in picks]), face)
    return out
