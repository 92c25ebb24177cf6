"""The model bundle: a trained model with the settings it was trained with.

The bundle carries its own labels and preprocessing settings (`preprocessing.json` beside
`model.keras`); nothing that serves it hardcodes them. Bundles trained since the inference export
(see `modeling.export`) also hold the model's traced graphs: prediction then runs `frame.tflite` and
`head.tflite` (or, for a design that cannot be split, `model.tflite`) on the LiteRT interpreter (no
TensorFlow, no Keras, no tracing: the first window runs at once), or the SavedModel in `graph/` (written
where the TFLite conversion fails) on plain TensorFlow. Older bundles are served from `model.keras` as
before. Exactly one of them is loaded for prediction.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import PreprocessConfig
from video_emotion.features.faces import BUNDLE_DIR as FACE_MODELS
from video_emotion.features.faces import FacePath
from video_emotion.inference.lite_parts import LiteGraph, LiteParts
from video_emotion.inference.voice import VOICE_SETTINGS, VoiceModel
from video_emotion.modeling.calibration import apply_temperature
from video_emotion.modeling.export import ENDPOINT, EXPORT_INFO, LITE_BATCH

BUNDLE_MODEL = "model.keras"
BUNDLE_SETTINGS = "preprocessing.json"
VOICE_DIR = "voice"  # the voice model inside a bundle (inference.voice); none in bundles older than it

RUNTIMES = ("auto", "litert", "savedmodel", "keras")
_TF_IMPORT = threading.Lock()


def import_tensorflow():
    """TensorFlow without the Keras it imports eagerly at start-up.

    `import tensorflow` imports all of Keras 3 "to register optimizers for SavedModel loading", and
    Keras in turn imports scikit-learn, SciPy, pandas and Matplotlib when they are installed: about
    1.5-2.5 s and 220 MB of RSS that loading and running an exported graph never use. TensorFlow
    skips that step when the import of Keras fails, so Keras is hidden for the duration of the
    import only; `import keras` works normally afterwards.
    """
    with _TF_IMPORT:
        if "tensorflow" in sys.modules:
            return sys.modules["tensorflow"]
        hide = "keras" not in sys.modules
        if hide:
            sys.modules["keras"] = None  # type: ignore[assignment]  (makes `import keras` raise ImportError)
        try:
            import tensorflow as tf
        finally:
            if hide and sys.modules.get("keras", 0) is None:
                del sys.modules["keras"]
        return tf


class ModelLoadError(RuntimeError):
    """The bundle's model could not be loaded (raised where prediction first needs it)."""


class _Graph:
    """The exported inference graph (`graph/`): a SavedModel endpoint over named float32 inputs."""

    def __init__(self, folder: Path) -> None:
        tf = import_tensorflow()
        self._loaded = tf.saved_model.load(str(folder))
        self._fn = getattr(self._loaded, ENDPOINT)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._fn(inputs))


class _Traced:
    """A Keras model as one traced graph with a fixed signature (any batch size): traced on its
    first call, then several times faster than eager calls, which pay Python overhead on every
    LSTM step."""

    def __init__(self, model: Any, shapes: dict[str, tuple[int, ...]]) -> None:
        import tensorflow as tf

        spec = {name: tf.TensorSpec([None, *shape], tf.float32) for name, shape in shapes.items()}
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._fn(inputs))


def _keras_model(folder: Path) -> Any:
    import keras

    import video_emotion.modeling.model  # noqa: F401  (registers the custom layers)

    return keras.models.load_model(folder / BUNDLE_MODEL, compile=False)


def _keras_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    inputs = model.input if isinstance(model.input, dict) else {}
    return {name: tuple(int(d) for d in t.shape[1:]) for name, t in inputs.items()}


def _litert_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ai_edge_litert") is not None


def _choose(runtime: str, exported: dict[str, Any]) -> str:
    """The runtime asked for, or for `auto` the fastest one the bundle has exports for."""
    lite = bool(exported.get("lite") or exported.get("parts"))
    available = [name for name, ok in (("litert", lite and _litert_installed()),
                                       ("savedmodel", bool(exported.get("graph"))), ("keras", True)) if ok]
    if runtime == "auto":
        return available[0]
    if runtime not in available:
        raise FileNotFoundError(f"runtime {runtime!r} is not available for this bundle (has: {', '.join(available)})")
    return runtime


@dataclass
class ModelBundle:
    """A trained model with the settings it was trained with (labels, frames, crop, window)."""

    folder: Path
    labels: list[str]
    preprocess: PreprocessConfig
    window_s: float
    info: dict[str, Any] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=lambda: ["video"])
    runtime: str = "auto"  # what predicts: auto (the fastest the bundle and install allow), litert, savedmodel, keras
    temperature: float = 1.0  # model.temperature: outputs are softmax(log p / T), calibrated (modeling.calibration)
    _predictor: Any = field(default=None, init=False, repr=False)
    _shapes: dict[str, tuple[int, ...]] | None = field(default=None, init=False, repr=False)
    _keras: Any = field(default=None, init=False, repr=False)
    _loading: threading.Thread | None = field(default=None, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)
    _voice: VoiceModel | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, folder: str | Path, info: dict[str, Any] | None = None, background: bool = False,
             runtime: str = "auto") -> ModelBundle:
        """Read the bundle's settings and load its model. `background=True` loads the model on a
        thread while the caller goes on (the first video is opened and read meanwhile); prediction
        waits for it, and a failure surfaces there as `ModelLoadError`."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        folder = Path(folder)
        settings_path = folder / BUNDLE_SETTINGS
        if not (folder / BUNDLE_MODEL).is_file() or not settings_path.is_file():
            raise FileNotFoundError(f"{folder}: not a model bundle ({BUNDLE_MODEL} + {BUNDLE_SETTINGS} expected)")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        bundle = cls(folder=folder, labels=list(settings["labels"]),
                     preprocess=PreprocessConfig.from_saved(settings),
                     window_s=float(settings.get("window_s", 2.0)),
                     info={**settings.get("model_info", {}), **(info or {})},
                     modalities=list(settings.get("model", {}).get("modalities", ["video"])),
                     temperature=float(settings.get("model", {}).get("temperature", 1.0)))
        exported = bundle.exported()
        bundle.runtime = _choose(runtime, exported)
        if bundle.runtime != "keras":
            bundle._shapes = {name: tuple(shape) for name, shape in exported["inputs"].items()}
        if background:
            bundle._loading = threading.Thread(target=bundle._load_quietly, name="model-load")
            bundle._loading.start()
        else:
            bundle._load()
        return bundle

    def exported(self) -> dict[str, Any]:
        """What `modeling.export` wrote into the bundle (nothing for bundles older than the export)."""
        try:
            return json.loads((self.folder / EXPORT_INFO).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _load(self) -> None:
        if self.runtime == "litert":
            exported = self.exported()
            parts = exported.get("parts")  # the CNN once per distinct crop (inference.lite_parts)
            self._predictor = LiteParts(self.folder, parts) if parts else \
                LiteGraph(self.folder / exported["lite"], int(exported.get("lite_batch", LITE_BATCH)))
        elif self.runtime == "savedmodel":
            self._predictor = _Graph(self.folder / self.exported()["graph"])
        else:
            self._keras = _keras_model(self.folder)
            self._shapes = _keras_shapes(self._keras)

    def lite_parts(self) -> LiteParts | None:
        """The model's two LiteRT graphs (per-frame CNN, head) where this bundle runs on them, else None."""
        self.wait()
        return self._predictor if isinstance(self._predictor, LiteParts) else None

    def _load_quietly(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # kept for the caller's thread: raised where prediction needs the model
            self._error = exc

    def wait(self) -> None:
        """Block until a background load has finished; raise `ModelLoadError` if it failed."""
        if self._loading is not None:
            self._loading.join()
            self._loading = None
        if self._error is not None:
            raise ModelLoadError(f"{self.folder}: {self._error}") from self._error

    @property
    def model(self) -> Any:
        """The Keras model (loaded on first use where prediction runs on an export: training-side uses only)."""
        self.wait()
        if self._keras is None:
            self._keras = _keras_model(self.folder)
        return self._keras

    def voice_model(self) -> VoiceModel | None:
        """The voice model this bundle carries (`voice/`), loaded once; None where it has none."""
        if self._voice is None and (self.folder / VOICE_DIR / VOICE_SETTINGS).is_file():
            self._voice = VoiceModel.load(self.folder / VOICE_DIR)
        return self._voice

    def face_path(self) -> FacePath:
        """The face path this model was trained with (detector, crop), its detector files from the bundle."""
        folder = self.folder / FACE_MODELS
        if self.preprocess.detector == "blazeface" and not folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: the bundle's face detector ({FACE_MODELS}/) is missing")
        return FacePath(self.preprocess, folder)

    @property
    def n_frames(self) -> int:
        return self.preprocess.n_frames

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if self._shapes is None:
            self.wait()
        return dict(self._shapes or {})

    @property
    def n_audio_frames(self) -> int:
        return self.input_shapes.get("audio", (64, 200))[1]

    def _fn(self):
        self.wait()
        if self._predictor is None:
            self._predictor = _Traced(self.model, self.input_shapes)
        return self._predictor

    def warm_up(self) -> None:
        """Load the model, and trace a Keras one, now (a service does this at start-up, not on its first request)."""
        self.predict_inputs({name: np.zeros((1, *shape), np.float32) for name, shape in self.input_shapes.items()})

    def predict_inputs(self, inputs: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Named model inputs (see `modeling.model.model_inputs`) -> (N, n_labels) probabilities, calibrated by
        the bundle's temperature (every runtime: the exports hold the network, the bundle's settings its T)."""
        fn = self._fn()
        n = len(next(iter(inputs.values()))) if inputs else 0
        # LiteRT copies each call's windows into its float input: no float32 copy of the whole batch (13 MB)
        cast = (lambda v: v) if isinstance(fn, LiteGraph | LiteParts) else (lambda v: v.astype("float32"))
        out = [fn({k: cast(v[i:i + batch_size]) for k, v in inputs.items()}) for i in range(0, n, batch_size)]
        if not out:
            return np.zeros((0, len(self.labels)), np.float32)
        return apply_temperature(np.concatenate(out), self.temperature).astype(np.float32)

    def predict(self, frames: np.ndarray, mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N, T, S, S) uint8 crops and (N, T) masks -> (N, n_labels) probabilities (video models)."""
        return self.predict_inputs({"frames": frames, "mask": mask}, batch_size)


def load_bundle(ref: str, params, background: bool = False) -> ModelBundle:
    """A bundle folder, or a registry reference (`name@alias`, `name/version`, `models:/...`).

    A registered model is resolved to the version its alias points to now and read from a local
    cache of that version's bundle (`modeling.model_cache`: no MLflow import for the default sqlite
    store; filled once per version)."""
    p = Path(ref)
    if p.is_dir():
        return ModelBundle.load(p, {"name": p.name, "version": "local"}, background=background)
    from video_emotion.modeling.model_cache import cached_bundle

    folder, info = cached_bundle(ref, params.tracking, params.root)
    return ModelBundle.load(folder, info, background=background)
