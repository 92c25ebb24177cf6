"""Box overlap: the tracker's two-box IoU gives exactly what the detector's NumPy IoU gives."""

from __future__ import annotations

import numpy as np
import pytest

from video_emotion.features.boxes import corners, iou, iou_xywh


@pytest.mark.parametrize(("a", "b", "want"), [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (20, 20, 5, 5), 0.0),
    ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),   # touching edges do not overlap
    ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),        # empty boxes: no division by zero
])
def test_iou_of_known_boxes(a, b, want):
    assert iou_xywh(a, b) == pytest.approx(want)
    assert iou_xywh(b, a) == pytest.approx(want)


def test_two_box_iou_is_the_numpy_iou_bit_for_bit():
    rng = np.random.default_rng(7)
    pairs = [(tuple(int(v) for v in rng.integers(-50, 700, 4)), tuple(int(v) for v in rng.integers(-50, 700, 4)))
             for _ in range(3000)]
    pairs += [(tuple(rng.uniform(-5, 400, 4)), tuple(rng.uniform(-5, 400, 4))) for _ in range(3000)]
    pairs += [((x, y, w, h), (x + int(dx), y + int(dy), w, h)) for x, y, w, h, dx, dy in
              rng.integers(0, 200, (3000, 6)).tolist()]  # near boxes, as the tracker compares them
    for a, b in pairs:
        reference = float(iou(corners(a), corners(b)[None])[0])
        assert iou_xywh(a, b) == reference, (a, b)
