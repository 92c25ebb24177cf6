"""The model's exported graphs on the LiteRT interpreter: the whole graph (`LiteGraph`, `model.tflite`), and
the model in two LiteRT graphs (`modeling.export.export_parts`: `frame.tflite`, one crop -> its features;
`head.tflite`, a window's features and mask -> probabilities): the per-frame CNN run once per distinct
crop, then the temporal head over each window's features. Live sessions use the same two graphs.

A window's T frames repeat crops whenever the sampling rate is below the model's own (at 4 fps a 2 s
window of 16 frames holds each sampled crop twice), and interleaved windows share crops. The CNN is most
of the model's cost, so each distinct crop of a call goes through it once (crops are compared byte for
byte) and its features are reused. The CNN reads each crop on its own, so the probabilities are the
whole graph's (bit for bit on the bundles measured: docs/speed.md).

Each graph runs on one thread (`LITE_THREADS`): in an analysis the decoder and the face work keep the
other core busy, and a second XNNPACK thread there costs about 40% more CPU per crop (2.5 ms against
1.8 ms for the per-frame CNN on the 2-core machine) for no gain in time; the service runs one analysis
per core anyway. The outputs do not depend on the thread count (docs/speed.md).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

LITE_THREADS = 1


def _interpreter(path: Path, threads: int = LITE_THREADS):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    inputs = {d["name"].split(":")[0].removeprefix("serving_default_"): (d["index"], tuple(d["shape"]))
              for d in it.get_input_details()}
    return it, inputs, it.get_output_details()[0]["index"]


class LiteGraph:
    """`model.tflite` on the LiteRT interpreter: a fixed batch of windows per call, the last one padded.
    One interpreter is not re-entrant, so calls are serialised."""

    def __init__(self, path: Path, batch: int | None = None) -> None:
        self._it, self._inputs, self._output = _interpreter(path)
        self.batch = batch or next(iter(self._inputs.values()))[1][0]  # default: the graph's own batch
        self._lock = threading.Lock()

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        out = []
        with self._lock:
            for i in range(0, n, self.batch):
                m = min(self.batch, n - i)
                for name, (index, shape) in self._inputs.items():
                    chunk = np.zeros(shape, np.float32)
                    chunk[:m] = inputs[name][i:i + m]
                    self._it.set_tensor(index, chunk)
                self._it.invoke()
                out.append(self._it.get_tensor(self._output)[:m].copy())
        return np.concatenate(out)


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
    Each is a `LiteGraph` (calls to one graph are serialised)."""

    def __init__(self, folder: Path, parts: dict[str, str]) -> None:
        self._cnn, self._head = LiteGraph(folder / parts["frame"]), LiteGraph(folder / parts["head"])

    def features(self, crops: np.ndarray) -> np.ndarray:
        """(n, F) per-frame features of (n, S, S) crops (a live session keeps them per track)."""
        return self._cnn({"crop": crops})

    def head(self, feats: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(N, labels) probabilities of N windows' features (N, T, F) and masks (N, T)."""
        return self._head({"frame_features": feats, "mask": mask})

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        frames, mask = inputs["frames"], inputs["mask"]
        n, t = frames.shape[:2]
        unique, inverse = distinct(frames.reshape(n * t, *frames.shape[2:]))
        return self.head(self.features(unique)[inverse].reshape(n, t, -1), mask)
