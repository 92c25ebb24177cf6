"""A small `.tflite` network (BlazeFace) run on a BGR square: LiteRT where it is installed, else OpenCV DNN.

LiteRT (XNNPACK, one thread) runs BlazeFace's short-range model in a little over half the time of OpenCV's
DNN module (3.0 ms against 5.3 ms a frame, measured side by side on a loaded 2-core machine), and the face
work is a third of an analysis's CPU time.
One thread: in the pipelined analysis the decoder and the emotion network use the other core. Both
runtimes read the same file; their outputs differ by about 1e-4 (float rounding: docs/speed.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

RUNTIMES = ("auto", "litert", "opencv")


def litert_installed() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class _LiteRT:
    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=str(path), num_threads=1)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._it.get_output_details()]

    def __call__(self, square: np.ndarray) -> list[np.ndarray]:
        rgb = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32)
        self._it.set_tensor(self._input, ((rgb - 127.5) * np.float32(1 / 127.5))[None])
        self._it.invoke()
        return [self._it.get_tensor(i) for i in self._outputs]


class _OpenCV:
    def __init__(self, path: Path) -> None:
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._names = self._net.getUnconnectedOutLayersNames()

    def __call__(self, square: np.ndarray) -> list[np.ndarray]:
        blob = cv2.dnn.blobFromImage(square, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=True)
        self._net.setInput(blob)
        return list(self._net.forward(self._names))


def load_net(path: Path, runtime: str = "auto") -> _LiteRT | _OpenCV:
    """The network at `path` as a callable: BGR uint8 square -> its raw outputs (RGB in [-1, 1] inside)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "litert" or (runtime == "auto" and litert_installed()):
        return _LiteRT(path)
    return _OpenCV(path)
