"""The training loop: build the model for a configuration and fit it on in-memory arrays."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import ModelConfig, TrainConfig
from video_emotion.data.processed import usable
from video_emotion.labels import LABELS


class TrainingError(ValueError):
    """Nothing to train on (no usable clip for the chosen modalities)."""


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(float)
    present = counts > 0
    w = np.zeros(n)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w[i]) for i in range(n) if present[i]}


def frame_readings(model_cfg: ModelConfig, settings: dict[str, Any], data: dict[str, np.ndarray],
                   pretrained: Path | None) -> np.ndarray | None:
    """(N, T, F) readings of every clip's frames by the design's frozen per-frame CNN (what `fit` reads them
    into), or None for a design whose CNN trains. The CNN is the pretrained network whatever the seed, so
    several fits on subsets of `data` (cross-validation folds) can share one reading: pass it as `data["F"]`."""
    from video_emotion.modeling.model import build_model, frozen_parts

    n_audio = data["A"].shape[-1] if "A" in data else 200
    model = build_model(model_cfg, settings["n_frames"], settings["image_size"], pretrained, n_audio_frames=n_audio)
    parts = frozen_parts(model, model_cfg)
    return None if parts is None else parts[0].predict(data["X"], batch_size=32, verbose=0)


def predict_clips(model: Any, model_cfg: ModelConfig, data: dict[str, np.ndarray], keep: np.ndarray) -> np.ndarray:
    """The model's probabilities for the clips `keep` of `data`: from their frame readings `data["F"]` where
    given (the model's own head on them), else the whole model on the clips."""
    from video_emotion.modeling.inputs import model_inputs
    from video_emotion.modeling.model import frozen_parts

    parts = frozen_parts(model, model_cfg) if "F" in data else None
    if parts is not None:
        return np.asarray(parts[1].predict({"frame_features": data["F"][keep],
                                            "mask": np.asarray(data["face"][keep]).astype("float32")}, verbose=0))
    return np.asarray(model.predict(model_inputs(data, keep, list(model_cfg.modalities)), verbose=0))


def fit(model_cfg: ModelConfig, cfg: TrainConfig, settings: dict[str, Any], train: dict[str, np.ndarray],
        val: dict[str, np.ndarray], pretrained: Path | None, verbose: int = 2, strategy: Any = None):
    """Build and fit one model on in-memory arrays; returns (model, history, metrics).

    A design with a frozen per-frame CNN reads the frames once and fits its head on the readings; arrays that
    carry them already (`"F"`, from `frame_readings`) are not read again. `strategy` (a `tf.distribute`
    strategy, e.g. one worker's MultiWorkerMirroredStrategy) holds the model's variables; `batch_size` stays
    the global batch, split across the workers."""
    import keras

    from video_emotion.modeling.inputs import model_inputs
    from video_emotion.modeling.model import build_model, frozen_parts

    mods = list(model_cfg.modalities)
    tk, vk = usable(train, mods), usable(val, mods)
    if tk.sum() == 0 or vk.sum() == 0:
        raise TrainingError(f"no train or val clip is usable for modalities {mods} (no face / no audio); "
                         "check the corpus and preprocess settings")
    keras.utils.set_random_seed(cfg.seed)
    n_audio = train["A"].shape[-1] if "A" in train else 200
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model(model_cfg, settings["n_frames"], settings["image_size"], pretrained, n_audio_frames=n_audio)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    xs = lambda d, k: model_inputs(d, k, mods)  # noqa: E731
    if strategy is not None:
        from video_emotion.modeling.distributed import is_multiworker, prepare_fit

        if is_multiworker(strategy):
            first = np.flatnonzero(tk)[:cfg.batch_size]
            prepare_fit(model, strategy, (xs(train, first), train["y"][first]))
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)]
    t0 = time.perf_counter()
    fitted = model
    parts = frozen_parts(model, model_cfg) if strategy is None else None
    if parts is not None:  # frozen per-frame CNN: read every frame once, fit the model's own head on its readings
        features, fitted = parts
        fitted.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
        read = lambda d, k: {"frame_features": d["F"][k] if "F" in d else  # noqa: E731
                             features.predict(d["X"][k], batch_size=32, verbose=0),
                             "mask": np.asarray(d["face"][k]).astype("float32")}
        xs = read
    hist = fitted.fit(xs(train, tk), train["y"][tk], validation_data=(xs(val, vk), val["y"][vk]),
                     epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, callbacks=callbacks,
                     class_weight=class_weights(train["y"][tk], len(LABELS)) if cfg.class_weights else None,
                     verbose=verbose)
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    epochs_run = len(history.get("loss", []))
    best = int(np.argmin(history["val_loss"])) if history.get("val_loss") else epochs_run - 1
    metrics = {
        "train_clips": int(tk.sum()), "val_clips": int(vk.sum()),
        "train_clips_without_face": int((~tk).sum()),
        "epochs_run": epochs_run, "best_epoch": best + 1,
        "best_val_loss": history["val_loss"][best], "best_val_accuracy": history["val_accuracy"][best],
        "train_seconds": round(seconds, 2),
        "train_clips_per_second": round(int(tk.sum()) * epochs_run / seconds, 2),
    }
    return model, history, metrics
