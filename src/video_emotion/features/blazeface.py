"""BlazeFace (MediaPipe Face Detection, Apache-2.0) run by OpenCV's DNN module.

A real face detector for real footage: a box and six keypoints per face (right eye, left eye, nose
tip, mouth centre, right and left ear tragion; "right" is the person's right, on the image's left).
The `.tflite` models come from the pinned npm package (see npm_assets.py, `make assets`).

Two models: "short" (short-range, 128x128 input, 896 anchors: faces within ~2 m of a camera, filling a
fair part of the frame) and "full" (full-range, 192x192, 2304 anchors: also small faces further away);
"auto" combines them (see `BlazeFaceDetector`). The package's "sparse" full-range model uses an operator
OpenCV cannot import (DENSIFY) and is not used.

The frame is letterboxed into the square input (aspect ratio kept, padded), as MediaPipe does; SSD
anchors are generated with MediaPipe's settings, raw outputs decoded (sigmoid scores; box centre and
keypoints as offsets from the anchor centre) and merged by MediaPipe's weighted non-max suppression.
`detect(frame, near=None) -> [Box]` as the Haar `FaceDetector`; `detections(...)` adds score and keypoints.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from video_emotion.features.boxes import iou

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels

KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear_tragion", "left_ear_tragion")
DEFAULT_MODEL_DIR = Path("models/pretrained")
MODEL_FILES = {"short": "blazeface_short_range.tflite", "full": "blazeface_full_range.tflite"}


@dataclass(frozen=True)
class BlazeSpec:
    """MediaPipe's anchor and decoding settings of one BlazeFace model."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale: bool     # a second anchor per layer (interpolated_scale_aspect_ratio = 1.0)
    min_score: float             # MediaPipe's default min_score_thresh
    n_anchors: int


SPECS = {
    # face_detection_short_range.pbtxt: 4 layers, strides 8,16,16,16, 2 anchors per layer
    "short": BlazeSpec(128, (8, 16, 16, 16), True, 0.5, 896),
    # face_detection_full_range.pbtxt: 1 layer, stride 4, 1 anchor per cell
    "full": BlazeSpec(192, (4,), False, 0.6, 2304),
}


def ssd_anchors(spec: BlazeSpec) -> np.ndarray:
    """Anchor centres (n, 2) as (x, y) in [0, 1] of the input, in the model's output order.

    MediaPipe's SsdAnchorsCalculator with fixed_anchor_size (every anchor is 1 x 1, so only the
    centres matter): consecutive layers with the same stride share one feature map, each layer adds
    one anchor per aspect ratio (1.0) plus the interpolated-scale one when enabled; anchors are laid
    out row by row, cell by cell, all anchors of a cell together.
    """
    out, layer, n_layers = [], 0, len(spec.strides)
    while layer < n_layers:
        stride = spec.strides[layer]
        per_cell = 0
        while layer < n_layers and spec.strides[layer] == stride:
            per_cell += 2 if spec.interpolated_scale else 1
            layer += 1
        fm = int(np.ceil(spec.input_size / stride))
        ys, xs = np.mgrid[0:fm, 0:fm]
        centres = np.stack([(xs + 0.5) / fm, (ys + 0.5) / fm], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass
class Detection:
    """One face in frame pixels: box (x, y, w, h) as floats, score in [0, 1], keypoints (6, 2) as (x, y)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)

    right_eye = property(lambda self: self.keypoints[0])
    left_eye = property(lambda self: self.keypoints[1])
    nose_tip = property(lambda self: self.keypoints[2])
    mouth = property(lambda self: self.keypoints[3])

    @property
    def eye_angle_deg(self) -> float:
        """Roll of the face: angle of the line from the right eye to the left eye (0 = level)."""
        dx, dy = self.left_eye - self.right_eye
        return float(np.degrees(np.arctan2(dy, dx)))

    def int_box(self, width: int | None = None, height: int | None = None) -> Box:
        """The box as ints, clipped to the frame when its size is given (as Haar boxes always are)."""
        x, y, w, h = self.box
        x0, y0, x1, y1 = x, y, x + w, y + h
        if width is not None and height is not None:
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(width), x1), min(float(height), y1)
        x0i, y0i = int(round(x0)), int(round(y0))
        return x0i, y0i, max(1, int(round(x1)) - x0i), max(1, int(round(y1)) - y0i)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-max suppression.

    The best remaining candidate and every candidate overlapping it by more than `iou_threshold`
    form one face, whose box and keypoints are the score-weighted mean of the group and whose score
    is the best one. boxes (n, 4) x0, y0, x1, y1; keypoints (n, k, 2).
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (iou(boxes[i], boxes) > iou_threshold)
        group[i] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kps, float(scores[i])))
        alive &= ~group
    return out


def letterbox(image: np.ndarray, size: int, pad_value: int = 0) -> tuple[np.ndarray, float, float, float]:
    """`image` resized into a size x size square, aspect ratio kept, centred, padded with `pad_value`.

    Returns (square, scale, pad_x, pad_y): frame pixel p maps to p * scale + pad.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = cv2.copyMakeBorder(resized, py, size - nh - py, px, size - nw - px, cv2.BORDER_CONSTANT,
                             value=(pad_value,) * 3)
    return out, scale, float(px), float(py)


def model_path(kind: str = "short", model_dir: str | Path = DEFAULT_MODEL_DIR) -> Path:
    return Path(model_dir) / MODEL_FILES[kind]


class _Model:
    """One BlazeFace network with its anchors, run on a letterboxed square."""

    def __init__(self, kind: str, path: Path, min_score: float | None, iou_threshold: float) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: BlazeFace model missing; run `make assets`")
        self.kind, self.path, self.spec = kind, path, SPECS[kind]
        self.net = cv2.dnn.readNetFromTFLite(str(path))
        self.outputs = self.net.getUnconnectedOutLayersNames()
        self.anchors = ssd_anchors(self.spec)
        self.min_score = self.spec.min_score if min_score is None else float(min_score)
        self.iou_threshold = iou_threshold
        self._lock = threading.Lock()  # a cv2.dnn.Net must not run two forwards at once

    def _run(self, square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores (n,) and regressors (n, 16) of a BGR (or grey) input-sized square."""
        if square.ndim == 2:
            square = cv2.cvtColor(square, cv2.COLOR_GRAY2BGR)
        # the network takes RGB in [-1, 1]
        blob = cv2.dnn.blobFromImage(square, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True)
        with self._lock:
            self.net.setInput(blob)
            outs = self.net.forward(self.outputs)
        a, b = (np.asarray(o).reshape(-1, o.shape[-1]) for o in outs)
        scores, regs = (a, b) if a.shape[-1] == 1 else (b, a)
        return scores[:, 0], regs

    def decode(self, raw_scores: np.ndarray, regs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Detections in the model input's normalised [0, 1] coordinates."""
        s = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -100.0, 100.0)))
        keep = np.flatnonzero(s >= self.min_score)
        if keep.size == 0:
            return []
        size = float(self.spec.input_size)
        r, anc = regs[keep] / size, self.anchors[keep]
        cx, cy = r[:, 0] + anc[:, 0], r[:, 1] + anc[:, 1]
        w, h = r[:, 2], r[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        return weighted_nms(boxes, kps, s[keep], self.iou_threshold)

    def __call__(self, image: np.ndarray, x0: float = 0.0, y0: float = 0.0) -> list[Detection]:
        """Faces in a BGR or grey image (a region of the frame whose top-left corner is x0, y0), frame pixels."""
        square, scale, px, py = letterbox(image, self.spec.input_size)
        size = self.spec.input_size
        out = []
        for box, kps, score in self.decode(*self._run(square)):
            b = (box * size - [px, py, px, py]) / scale + [x0, y0, x0, y0]
            k = (kps * size - [px, py]) / scale + [x0, y0]
            out.append(Detection((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])),
                                 score, k.astype(np.float32)))
        return out


def _region(W: int, H: int, box: tuple[float, float, float, float], context: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    side = context * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    x1, y1 = int(min(W, round(cx + side / 2))), int(min(H, round(cy + side / 2)))
    return x0, y0, x1, y1


class BlazeFaceDetector:
    """BlazeFace face detector with the interface of the Haar `FaceDetector`.

    model:
      "short" - the short-range model on the letterboxed frame: finds faces larger than ~1/8 of the
                frame's long side (80 px in 640x360, 240 px in 1920x1080), 3-4 ms per frame here;
      "full"  - the full-range model: faces down to ~1/16 of the long side, ~10 ms, looser boxes;
      "auto"  - (default) short-range first; when it finds nothing, full-range, each face it finds
                re-detected by the short-range model in a square around it (boxes and keypoints follow
                the short-range definition, on which align.py's crop was measured);
      or a path to a `.tflite` file whose name says which ("full" in the name: full-range).
    min_score: detection threshold (MediaPipe's default per model when None); min_face_frac: drop faces
    smaller than this fraction of the shorter frame side; near_context: with `near`, the side of the
    square searched around the previous box, in box sizes.
    """

    def __init__(self, model: str | Path = "auto", model_dir: str | Path = DEFAULT_MODEL_DIR,
                 min_score: float | None = None, min_face_frac: float = 0.0, iou_threshold: float = 0.3,
                 near_context: float = 2.2) -> None:
        kinds = ("short", "full") if str(model) == "auto" else (str(model),) if str(model) in SPECS else ()
        if kinds:
            self.models = {k: _Model(k, model_path(k, model_dir), min_score, iou_threshold) for k in kinds}
        else:
            path = Path(model)
            kind = "full" if "full" in path.name else "short"
            self.models = {kind: _Model(kind, path, min_score, iou_threshold)}
        self.kind = "auto" if len(self.models) == 2 else next(iter(self.models))
        self.anchors = next(iter(self.models.values())).anchors
        self.min_face_frac = min_face_frac
        self.near_context = near_context

    def _whole_frame(self, frame: np.ndarray) -> list[Detection]:
        if self.kind != "auto":
            return self.models[self.kind](frame)
        found = self.models["short"](frame)
        if found:
            return found
        H, W = frame.shape[:2]
        out = []
        for d in self.models["full"](frame):
            x0, y0, x1, y1 = _region(W, H, d.box, self.near_context)
            refined = self.models["short"](frame[y0:y1, x0:x1], x0, y0) if min(x1 - x0, y1 - y0) >= 8 else []
            cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
            inside = [r for r in refined
                      if r.box[0] <= cx <= r.box[0] + r.box[2] and r.box[1] <= cy <= r.box[1] + r.box[3]]
            out.append(max(inside, key=lambda r: r.score) if inside else d)
        return out

    # -- public API -------------------------------------------------------------------------------
    def detections(self, frame: np.ndarray, near: Box | None = None) -> list[Detection]:
        """Faces with score and keypoints in frame pixels, largest first.

        `frame`: grey (H, W) or BGR (H, W, 3) uint8. With `near` (a box found a moment ago) only a
        square of `near_context` box sizes around it is searched, by the short-range model (when
        loaded): the face then fills a large part of the model's input, where that model is most
        accurate, and the cost is one small forward pass whatever the frame size.
        """
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        elif frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        H, W = frame.shape[:2]
        if near is not None:
            x0, y0, x1, y1 = _region(W, H, tuple(float(v) for v in near), self.near_context)
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            model = self.models.get("short") or self.models["full"]
            found = model(frame[y0:y1, x0:x1], x0, y0)
        else:
            found = self._whole_frame(frame)
        min_side = self.min_face_frac * min(H, W)
        found = [d for d in found if max(d.box[2], d.box[3]) >= min_side]
        return sorted(found, key=lambda d: d.box[2] * d.box[3], reverse=True)

    def detect(self, frame: np.ndarray, near: Box | None = None) -> list[Box]:
        """Face boxes (x, y, w, h) as ints inside the frame, largest first (as `FaceDetector.detect`)."""
        H, W = frame.shape[:2]
        return [d.int_box(W, H) for d in self.detections(frame, near)]
