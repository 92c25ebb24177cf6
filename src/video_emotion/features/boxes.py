"""Face boxes and their overlap: one intersection-over-union for the detector's corner boxes and the
face path's (x, y, w, h) boxes."""

from __future__ import annotations

import numpy as np


def corners(box: tuple[int, int, int, int]) -> np.ndarray:
    """An (x, y, w, h) box as x0, y0, x1, y1."""
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) as x0, y0, x1, y1 with boxes b (n, 4); 0 where they do not overlap."""
    ix0, iy0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    ix1, iy1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = np.clip(a[2] - a[0], 0, None) * np.clip(a[3] - a[1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def iou_xywh(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    return float(iou(corners(a), corners(b)[None])[0])
