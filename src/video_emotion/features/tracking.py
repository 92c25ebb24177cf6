"""Face tracking over a video stream: every face followed from frame to frame (`FaceTracker(path, ...)`).

Detection and crops come from the face path (`features.faces.FacePath`), the same as in training.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from video_emotion.features.boxes import iou_xywh as _iou
from video_emotion.features.faces import FacePath, box_of


class FaceTracker:
    """Streaming face tracks. Every `every`-th frame the faces are looked for; a face's box is carried for
    `max_gap` frames without a detection, then its track ends. The largest live face is the primary
    one: it drives the main timeline.

    BlazeFace (whole frames as cheap as regions): a whole-frame search at every detection step, faces
    matched to tracks by overlap (the reference path's faces whenever it finds them), and a search near
    the last box for a tracked face the whole frame missed (small, turned, blurred).
    A detector a test gives (`FacePath.near_first`; the retired Haar path's way): each live track is looked
    for near its last box (cheap); a whole-frame search runs every `full_every` frames, when nothing is tracked,
    and (every few frames) when the largest face is lost: it starts tracks for new faces.
    `track=False`: a whole-frame search at every detection step and nothing else (the reference path).
    A face that no track follows must pass the face path's new-face gate (`FacePath.is_face`) to start one;
    a followed face is kept at the detector's own threshold (hysteresis: a face turning away stays a face).
    After each call, `quality` holds the primary face's `FaceQuality` (None without a face).
    `ahead` runs the whole-frame searches the tracker is sure to make, ahead of it (another pipeline stage)."""

    def __init__(self, path: FacePath, every: int, max_gap: int, track: bool = True) -> None:
        self.path, self.every, self.max_gap, self.track = path, max(1, every), max_gap, track
        self.k = 0
        self.tracks: dict[int, dict] = {}  # id -> {"face": Detection | Box, "box": Box, "age": int}
        self.ended: dict[int, dict] = {}   # tracks lost recently, for re-identification
        self.next_id = 0
        self.full_every = self.every * 16  # near-first: a whole-frame search at least every 16 detections
        self.quality = None

    def _set(self, t: int, face, shape) -> None:
        self.tracks[t] = {"face": face, "box": box_of(face, shape[1], shape[0]), "age": 0}

    def ahead(self, frames: Iterable[tuple[Any, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray, list | None]]:
        """`(item, frame, faces)` for each `(item, frame)` of a stream that this tracker will then read in
        the same order, `faces` being the whole-frame search it is sure to make on that frame (BlazeFace:
        every `every`-th frame), else None (made by the tracker itself if it needs one). A search is a pure
        function of the frame, so running it on another thread, ahead, changes nothing."""
        sure, stream = not self.path.near_first, iter(frames)
        try:
            for i, (item, frame) in enumerate(stream, start=self.k):
                yield item, frame, self.path.detect(frame) if sure and i % self.every == 0 else None
        finally:  # closing this generator closes the stream (a pipeline stage: its thread stops)
            getattr(stream, "close", lambda: None)()

    def _whole_frame(self, frame: np.ndarray, found: list | None = None) -> None:
        free = set(self.tracks)
        for face in self.path.detect(frame) if found is None else found:  # largest first
            box = box_of(face, frame.shape[1], frame.shape[0])
            best = max(free, key=lambda t: _iou(self.tracks[t]["box"], box), default=None)
            if best is not None and _iou(self.tracks[best]["box"], box) >= 0.3:
                self._set(best, face, frame.shape)
                free.discard(best)
                continue
            if not self.path.is_face(frame, face):
                continue  # not followed yet and not sure enough to start a face
            back = max(self.ended, key=lambda t: _iou(self.ended[t]["box"], box), default=None)
            if back is not None and _iou(self.ended[back]["box"], box) >= 0.3:
                del self.ended[back]
                self._set(back, face, frame.shape)
            else:
                self._set(self.next_id, face, frame.shape)
                self.next_id += 1

    def _near(self, frame: np.ndarray, only_lost: bool) -> None:
        for t, v in list(self.tracks.items()):
            if v["age"] <= self.max_gap and (v["age"] > 0 or not only_lost):
                near = self.path.detect(frame, near=v["box"])
                if near:
                    self._set(t, near[0], frame.shape)

    def _primary(self) -> int | None:
        live = [t for t, v in self.tracks.items() if v["age"] <= self.max_gap]
        return max(live, key=lambda t: self.tracks[t]["box"][2] * self.tracks[t]["box"][3], default=None)

    def _detect(self, frame: np.ndarray, found: list | None) -> None:
        primary = self._primary()
        if not self.track or primary is None:
            self._whole_frame(frame, found)
        elif not self.path.near_first:  # every track is at least one frame old here: a match sets 0
            self._whole_frame(frame, found)
            self._near(frame, only_lost=True)
        elif self.k % self.full_every:
            self._near(frame, only_lost=False)
            lost = any(v["age"] > 0 for v in self.tracks.values() if v["age"] <= self.max_gap)
            if lost and self.k % (4 * self.every) == 0:
                self._whole_frame(frame)  # a face is lost near its box: look everywhere
        else:
            self._whole_frame(frame)

    def live(self) -> dict[int, tuple[tuple[int, int, int, int], object, bool]]:
        """After a call: each live track's box, face (detection or box) and whether the detector found it
        on that frame (False: the box is carried over a miss)."""
        return {t: (v["box"], v["face"], v["age"] == 1) for t, v in self.tracks.items()}

    def __call__(self, frame: np.ndarray, found: list | None = None) -> tuple[np.ndarray, bool, dict[int, np.ndarray]]:
        """(primary crop, primary face flag, {track id: crop} of every live track) for one frame; `found`:
        this frame's whole-frame search when made already (`ahead`)."""
        if self.k % self.every == 0 or self._primary() is None:
            self._detect(frame, found)
        self.k += 1
        for t in [t for t, v in self.tracks.items() if v["age"] > self.max_gap]:
            self.ended[t] = self.tracks.pop(t)  # kept a while: the same face found again keeps its id
        for t in [t for t, v in self.ended.items() if v["age"] > 8 * self.max_gap]:
            del self.ended[t]
        crops = {t: self.path.crop(frame, v["face"]) for t, v in self.tracks.items()}
        for v in (*self.tracks.values(), *self.ended.values()):
            v["age"] += 1
        primary = self._primary()
        if primary is None:
            self.quality = None
            return self.path.crop(frame, None), False, {}
        self.quality = self.path.quality(frame, self.tracks[primary]["face"], crops[primary])
        return crops[primary], True, crops
