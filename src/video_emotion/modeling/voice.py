"""The voice head: a small Keras network over the Whisper encoder's states of one stretch of speech.

Layer norm, a projection, a residual temporal convolution (context of a few hundred ms) and attention
pooling over time, then the classes. Trained on the states `text.voice_states` gives, with the encoder
frozen (its readings are computed once, never per epoch); `export_weights` writes the few arrays that
`inference.voice.VoiceModel` runs in NumPy, so reading a voice loads no TensorFlow. Definition and
training only: no files are read here, and no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VoiceHeadConfig:
    """The head's design and its training (params.yaml `voice`)."""

    units: int = 128
    conv_width: int = 5         # 0: no temporal convolution
    attention_units: int = 64
    dropout: float = 0.3
    pool: int = 2               # encoder states averaged in groups of this many (50/s -> 25/s)
    max_steps: int = 128        # longest stretch read in training, after pooling (5 s at 25/s)
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 7


def pooled(states: np.ndarray, pool: int) -> np.ndarray:
    """States averaged in groups of `pool` (the same as `inference.voice.VoiceModel` does)."""
    x = np.asarray(states, np.float32)
    if pool <= 1 or len(x) < pool:
        return x
    n = len(x) // pool * pool
    return x[:n].reshape(-1, pool, x.shape[1]).mean(1)


def padded(sequences: list[np.ndarray], cfg: VoiceHeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pooled sequences padded to `max_steps` (a longer one keeps its middle) and their masks."""
    dim = sequences[0].shape[1]
    x = np.zeros((len(sequences), cfg.max_steps, dim), np.float32)
    m = np.zeros((len(sequences), cfg.max_steps), bool)
    for i, s in enumerate(sequences):
        s = pooled(s, cfg.pool)
        if len(s) > cfg.max_steps:
            start = (len(s) - cfg.max_steps) // 2
            s = s[start:start + cfg.max_steps]
        x[i, :len(s)], m[i, :len(s)] = s, True
    return x, m


def build_head(cfg: VoiceHeadConfig, dim: int, n_classes: int):
    """The Keras head: (states, mask) -> class probabilities."""
    import keras
    from keras import layers, ops

    states = keras.Input((cfg.max_steps, dim), name="states")
    mask = keras.Input((cfg.max_steps,), dtype="bool", name="mask")
    h = layers.LayerNormalization(name="ln")(states)
    h = layers.Dropout(cfg.dropout / 2)(h)
    h = layers.Dense(cfg.units, activation="gelu", name="proj")(h)
    if cfg.conv_width:
        conv = layers.Conv1D(cfg.units, cfg.conv_width, padding="same", activation="gelu", name="conv")(h)
        h = layers.Add()([h, conv])
    score = layers.Dense(1, name="att_v")(layers.Dense(cfg.attention_units, activation="tanh", name="att")(h))
    score = ops.where(mask, score[..., 0], -1e9)
    weights = ops.softmax(score, axis=1)
    pooled_h = ops.sum(h * weights[..., None], axis=1)
    out = layers.Dense(n_classes, activation="softmax", name="out")(layers.Dropout(cfg.dropout)(pooled_h))
    model = keras.Model([states, mask], out, name="voice_head")
    model.compile(keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_head(cfg: VoiceHeadConfig, sequences: list[np.ndarray], y: np.ndarray, n_classes: int,
             class_weight: bool = True) -> tuple[Any, dict[str, list[float]]]:
    """A head trained on (states, class) pairs for `cfg.epochs` epochs (no early stopping: a fixed budget
    chosen on the folds, so no test data picks the epoch)."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    x, m = padded(sequences, cfg)
    model = build_head(cfg, x.shape[2], n_classes)
    weights = None
    if class_weight:
        counts = np.bincount(y, minlength=n_classes).astype(float)
        weights = {c: float(len(y) / (n_classes * max(1.0, counts[c]))) for c in range(n_classes)}
    hist = model.fit({"states": x, "mask": m}, y, epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=0,
                     class_weight=weights, shuffle=True)
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def predict_head(model, cfg: VoiceHeadConfig, sequences: list[np.ndarray]) -> np.ndarray:
    x, m = padded(sequences, cfg)
    return np.asarray(model.predict({"states": x, "mask": m}, verbose=0, batch_size=64), np.float64)


def export_weights(model, cfg: VoiceHeadConfig) -> dict[str, np.ndarray]:
    """The head's arrays under the names `inference.voice.VoiceModel` reads."""
    ln = model.get_layer("ln")
    out = {"ln_gamma": ln.gamma.numpy(), "ln_beta": ln.beta.numpy(), "ln_eps": np.array(ln.epsilon, np.float32)}
    for name in ("proj", "att", "att_v", "out") + (("conv",) if cfg.conv_width else ()):
        layer = model.get_layer(name)
        out[f"{name}_kernel"], out[f"{name}_bias"] = (w.numpy() for w in (layer.kernel, layer.bias))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


__all__ = ["VoiceHeadConfig", "build_head", "export_weights", "fit_head", "padded", "pooled", "predict_head"]
