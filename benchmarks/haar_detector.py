"""The retired Haar face detector (OpenCV cascades), kept only so that benchmarks/realfaces_dev.py can still
measure "the face path before" beside the default. The product no longer uses it: it gives no score and no
keypoints, so it could pass neither the new-face gate nor the quality checks (docs/real-faces.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


class FaceDetector:
    """OpenCV Haar cascade face detector (frontal, with a profile fallback).

    The cascades ship inside the opencv-python-headless wheel, so nothing is downloaded.
    """

    def __init__(self, min_face_frac: float = 0.2, detect_short_side: int = 240) -> None:
        base = Path(cv2.data.haarcascades)
        self.frontal = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_default.xml"))
        self.alt = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_alt2.xml"))
        if self.frontal.empty() or self.alt.empty():
            raise RuntimeError("OpenCV Haar cascades are missing from the installed cv2 package")
        self.min_face_frac = min_face_frac
        self.detect_short_side = detect_short_side

    def detect(self, gray: np.ndarray, near: Box | None = None) -> list[Box]:
        """Faces in a grey frame, largest first.

        With `near` (the box found a moment ago) only a region around it is searched, at face sizes
        close to it: a few pyramid levels on a small crop instead of the whole frame. Nothing found -> [].
        """
        if near is not None:
            return self._detect_near(gray, near)
        side = min(gray.shape[:2])
        min_size = max(20, int(side * self.min_face_frac))
        # Detect on a frame no larger than `detect_short_side` on its short side: Haar cost grows
        # with area, and the faces whose expression can be read fill a fair part of the frame.
        scale = min(1.0, self.detect_short_side / side)
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        ms = max(20, int(min_size * scale))
        boxes = self.frontal.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(ms, ms))
        if len(boxes) == 0:
            boxes = self.alt.detectMultiScale(small, scaleFactor=1.1, minNeighbors=3, minSize=(ms, ms))
        out = [tuple(int(round(v / scale)) for v in b) for b in boxes]
        return sorted(out, key=lambda b: b[2] * b[3], reverse=True)  # type: ignore[return-value]

    def _detect_near(self, gray: np.ndarray, near: Box) -> list[Box]:
        x, y, w, h = near
        H, W = gray.shape[:2]
        x0, y0 = max(0, int(x - 0.6 * w)), max(0, int(y - 0.6 * h))
        x1, y1 = min(W, int(x + 1.6 * w)), min(H, int(y + 1.6 * h))
        roi = gray[y0:y1, x0:x1]
        if roi.size == 0:
            return []
        scale = min(1.0, 48.0 / max(1, w))  # search for a ~48 px face: twice Haar's window, cheap
        small = cv2.resize(roi, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else roi
        lo, hi = max(20, int(0.7 * w * scale)), max(24, int(1.45 * w * scale))
        boxes = self.frontal.detectMultiScale(small, scaleFactor=1.1, minNeighbors=3, minSize=(lo, lo),
                                              maxSize=(hi, hi))
        out = [(int(round(bx / scale)) + x0, int(round(by / scale)) + y0, int(round(bw / scale)),
                int(round(bh / scale)))
               for bx, by, bw, bh in boxes]
        return sorted(out, key=lambda b: b[2] * b[3], reverse=True)


