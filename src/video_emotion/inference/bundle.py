"""The model bundle: a trained Keras model with the settings it was trained with.

The bundle carries its own labels and preprocessing settings (`preprocessing.json` beside
`model.keras`); nothing that serves it hardcodes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import PreprocessConfig, section_from_dict

BUNDLE_MODEL = "model.keras"
BUNDLE_SETTINGS = "preprocessing.json"


@dataclass
class ModelBundle:
    """A trained model with the settings it was trained with (labels, frames, crop, window)."""

    model: Any
    labels: list[str]
    preprocess: PreprocessConfig
    window_s: float
    info: dict[str, Any] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=lambda: ["video"])
    _compiled: Any = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, folder: str | Path, info: dict[str, Any] | None = None) -> "ModelBundle":
        import keras

        import video_emotion.modeling.model  # noqa: F401  (registers the custom layers)

        folder = Path(folder)
        settings_path = folder / BUNDLE_SETTINGS
        if not (folder / BUNDLE_MODEL).is_file() or not settings_path.is_file():
            raise FileNotFoundError(f"{folder}: not a model bundle ({BUNDLE_MODEL} + {BUNDLE_SETTINGS} expected)")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        model = keras.models.load_model(folder / BUNDLE_MODEL, compile=False)
        return cls(model=model, labels=list(settings["labels"]),
                   preprocess=section_from_dict(PreprocessConfig, settings),
                   window_s=float(settings.get("window_s", 2.0)),
                   info={**settings.get("model_info", {}), **(info or {})},
                   modalities=list(settings.get("model", {}).get("modalities", ["video"])))

    @property
    def n_frames(self) -> int:
        return self.preprocess.n_frames

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        inputs = self.model.input if isinstance(self.model.input, dict) else {}
        return {name: tuple(int(d) for d in t.shape[1:]) for name, t in inputs.items()}

    @property
    def n_audio_frames(self) -> int:
        return self.input_shapes.get("audio", (64, 200))[1]

    def _fn(self):
        """The model as one traced graph with a fixed signature (any batch size): traced once, then
        several times faster than eager calls, which pay Python overhead on every LSTM step."""
        if self._compiled is None:
            import tensorflow as tf

            spec = {name: tf.TensorSpec([None, *self.input_shapes[name]], tf.float32) for name in self.input_shapes}
            self._compiled = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        return self._compiled

    def warm_up(self) -> None:
        """Trace the graph now (a service does this at start-up, not on its first request)."""
        self.predict_inputs({name: np.zeros((1, *shape), np.float32) for name, shape in self.input_shapes.items()})

    def predict_inputs(self, inputs: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Named model inputs (see `modeling.model.model_inputs`) -> (N, n_labels) probabilities."""
        fn = self._fn()
        n = len(next(iter(inputs.values()))) if inputs else 0
        out = []
        for i in range(0, n, batch_size):
            out.append(np.asarray(fn({k: v[i:i + batch_size].astype("float32") for k, v in inputs.items()})))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, frames: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, T, S, S) uint8 crops and (N, T) masks -> (N, n_labels) probabilities (video models)."""
        return self.predict_inputs({"frames": frames, "mask": mask}, batch_size)


def load_bundle(ref: str, params) -> ModelBundle:
    """A bundle folder, or a registry reference (`name@alias`, `name/version`, `models:/...`)."""
    p = Path(ref)
    if p.is_dir():
        return ModelBundle.load(p, {"name": p.name, "version": "local"})
    import tempfile

    from video_emotion.modeling import registry

    with tempfile.TemporaryDirectory(prefix="video-emotion-model-") as tmp:
        folder, info = registry.download_model(ref, params.tracking, params.root, Path(tmp))
        return ModelBundle.load(folder, info)  # loaded into memory; the download can go
