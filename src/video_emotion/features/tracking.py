"""Face tracking over a video stream: every face followed from frame to frame.

Serving looks for each face near its last box most of the time (cheap) and searches the whole
frame now and then; the crops come from `faces.crop_face`, the same crop as in training.
"""

from __future__ import annotations

import cv2
import numpy as np

from video_emotion.config import PreprocessConfig
from video_emotion.features.faces import FaceDetector, center_box, crop_face


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


class FaceTracker:
    """Streaming face tracks. Every `every`-th frame each live track is looked for near its last box
    (cheap); a whole-frame search runs every `full_every` frames, when nothing is tracked, and (every
    few frames) when the largest face is lost: it starts tracks for new faces, matched by overlap.
    A track's box is carried for `max_gap` frames without a detection, then the track ends.
    The largest live face is the primary one: it drives the main timeline."""

    def __init__(self, detector: FaceDetector, cfg: PreprocessConfig, every: int, max_gap: int,
                 track: bool = True) -> None:
        self.detector, self.cfg, self.every, self.max_gap, self.track = detector, cfg, every, max_gap, track
        self.k = 0
        self.tracks: dict[int, dict] = {}  # id -> {"box": Box, "age": int}
        self.ended: dict[int, dict] = {}   # tracks lost recently, for re-identification
        self.next_id = 0
        self.full_every = every * 16  # a whole-frame search at least every 16 detections

    def _whole_frame(self, gray: np.ndarray) -> None:
        found = self.detector.detect(gray)
        free = set(self.tracks)
        for box in found:  # largest first
            best = max(free, key=lambda t: _iou(self.tracks[t]["box"], box), default=None)
            if best is not None and _iou(self.tracks[best]["box"], box) >= 0.3:
                self.tracks[best].update(box=box, age=0)
                free.discard(best)
            else:
                back = max(self.ended, key=lambda t: _iou(self.ended[t]["box"], box), default=None)
                if back is not None and _iou(self.ended[back]["box"], box) >= 0.3:
                    self.tracks[back] = {"box": box, "age": 0}
                    del self.ended[back]
                else:
                    self.tracks[self.next_id] = {"box": box, "age": 0}
                    self.next_id += 1

    def _primary(self) -> int | None:
        live = [t for t, v in self.tracks.items() if v["age"] <= self.max_gap]
        return max(live, key=lambda t: self.tracks[t]["box"][2] * self.tracks[t]["box"][3], default=None)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, bool, dict[int, np.ndarray]]:
        """(primary crop, primary face flag, {track id: crop} of every live track) for one frame."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        primary = self._primary()
        if self.k % self.every == 0 or primary is None:
            if self.track and primary is not None and self.k % self.full_every:
                for v in self.tracks.values():
                    if v["age"] <= self.max_gap:
                        near = self.detector.detect(gray, near=v["box"])
                        if near:
                            v.update(box=near[0], age=0)
                lost = any(v["age"] > 0 for v in self.tracks.values() if v["age"] <= self.max_gap)
                if lost and self.k % (4 * self.every) == 0:
                    self._whole_frame(gray)  # a face is lost near its box: look everywhere
            else:
                self._whole_frame(gray)
        self.k += 1
        for t in [t for t, v in self.tracks.items() if v["age"] > self.max_gap]:
            self.ended[t] = self.tracks.pop(t)  # kept a while: the same face found again keeps its id
        for t in [t for t, v in self.ended.items() if v["age"] > 8 * self.max_gap]:
            del self.ended[t]
        crops = {t: crop_face(gray, v["box"], self.cfg) for t, v in self.tracks.items()}
        for v in (*self.tracks.values(), *self.ended.values()):
            v["age"] += 1
        primary = self._primary()
        if primary is None:
            return crop_face(gray, center_box(gray.shape[1], gray.shape[0]), self.cfg), False, {}
        return crops[primary], True, crops
