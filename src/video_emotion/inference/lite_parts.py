"""The model in two LiteRT graphs (`modeling.export.export_parts`: `frame.tflite`, one crop -> its features;
`head.tflite`, a window's features and mask -> probabilities): the per-frame CNN run once per distinct
crop, then the temporal head over each window's features. Live sessions use the same two graphs.

A window's T frames repeat crops whenever the sampling rate is below the model's own (at 4 fps a 2 s
window of 16 frames holds each sampled crop twice), and interleaved windows share crops. The CNN is most
of the model's cost, so each distinct crop of a call goes through it once (crops are compared byte for
byte) and its features are reused. The CNN reads each crop on its own, so the probabilities are the
whole graph's (bit for bit on the bundles measured: docs/speed.md).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np


def _interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    inputs = {d["name"].split(":")[0].removeprefix("serving_default_"): (d["index"], tuple(d["shape"]))
              for d in it.get_input_details()}
    return it, inputs, it.get_output_details()[0]["index"]


def distinct(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct crops in order of first appearance, the index of each crop among them)."""
    seen: dict[bytes, int] = {}
    first, inverse = [], np.empty(len(crops), np.int64)
    for i, crop in enumerate(crops):
        j = seen.setdefault(crop.tobytes(), len(first))
        if j == len(first):
            first.append(i)
        inverse[i] = j
    return crops[first], inverse


class LiteParts:
    """`frame.tflite` + `head.tflite`: named inputs {"frames": (N, T, S, S), "mask": (N, T)} -> (N, labels).
    One interpreter each is not re-entrant, so calls are serialised (as for the whole graph)."""

    def __init__(self, folder: Path, parts: dict[str, str]) -> None:
        threads = os.cpu_count() or 1
        self._cnn, cnn_in, self._cnn_out = _interpreter(folder / parts["frame"], threads)
        (self._cnn_index, self._cnn_shape), = cnn_in.values()
        self._head, self._head_in, self._head_out = _interpreter(folder / parts["head"], threads)
        self.batch = next(iter(self._head_in.values()))[1][0]
        self._lock = threading.Lock()

    def _features(self, crops: np.ndarray) -> np.ndarray:
        """Per-crop features of (n, S, S) crops, the graph's batch of crops per call (the last one padded)."""
        per = int(self._cnn_shape[0])
        out = []
        for i in range(0, len(crops), per):
            chunk = np.zeros(self._cnn_shape, np.float32)
            part = crops[i:i + per]
            chunk[:len(part)] = part
            self._cnn.set_tensor(self._cnn_index, chunk)
            self._cnn.invoke()
            out.append(self._cnn.get_tensor(self._cnn_out).reshape(per, -1)[:len(part)].copy())
        return np.concatenate(out)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        frames, mask = inputs["frames"], inputs["mask"]
        n, t = frames.shape[:2]
        with self._lock:
            unique, inverse = distinct(frames.reshape(n * t, *frames.shape[2:]))
            feats = self._features(unique)[inverse].reshape(n, t, -1)
            out = []
            for i in range(0, n, self.batch):
                m = min(self.batch, n - i)
                for name, (index, shape) in self._head_in.items():
                    chunk = np.zeros(shape, np.float32)
                    chunk[:m] = (feats if name == "frame_features" else mask)[i:i + m]
                    self._head.set_tensor(index, chunk)
                self._head.invoke()
                out.append(self._head.get_tensor(self._head_out)[:m].copy())
        return np.concatenate(out)
