"""Face boxes and their overlap: one intersection-over-union for the detector's corner boxes and the
face path's (x, y, w, h) boxes."""

from __future__ import annotations

import numpy as np


def corners(box: tuple[int, int, int, int]) -> np.ndarray:
    """An (x, y, w, h) box as x0, y0, x1, y1."""
    return np.array(_corner_floats(box), dtype=np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box a (4,) as x0, y0, x1, y1 with boxes b (n, 4); 0 where they do not overlap."""
    ix0, iy0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    ix1, iy1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = np.clip(a[2] - a[0], 0, None) * np.clip(a[3] - a[1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def iou_xywh(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes: `iou` of their corners, the same arithmetic on Python floats (the
    tracker matches boxes several times a frame, and NumPy's overhead on two boxes was ~80 us a call)."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _corner_floats(a), _corner_floats(b)
    inter = max(min(ax1, bx1) - max(ax0, bx0), 0.0) * max(min(ay1, by1) - max(ay0, by0), 0.0)
    area_a = max(ax1 - ax0, 0.0) * max(ay1 - ay0, 0.0)
    area_b = max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0)
    return inter / max(area_a + area_b - inter, 1e-9)


def _corner_floats(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """An (x, y, w, h) box as x0, y0, x1, y1 Python floats (the sums made before the conversion)."""
    x, y, w, h = box
    return float(x), float(y), float(x + w), float(y + h)
