"""The voice head, learned from real speech: statistics of Whisper's middle layers over an utterance -> emotion.

Each utterance's encoder states (`text.voice_states`: layers 2 and 3, 1024 wide, 50 a second over its
speech) are pooled over time into their mean and standard deviation (statistics pooling), standardised,
and read by a softmax layer with an L2 penalty (Keras). The states are computed once per file and cached,
never per epoch or per fold. Chosen on RAVDESS's actor-disjoint folds (docs/speech.md, The voice): an
attention head over time read 0.62 of the eight classes where this read-out reads 0.77, so the simplest
head that generalises across speakers is the one that ships. `export` writes the arrays that
`inference.voice.VoiceModel` runs in NumPy (no TensorFlow to read a voice). No MLflow here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from video_emotion.config import VoiceConfig
from video_emotion.labels import LABELS


def stats(states: np.ndarray) -> np.ndarray:
    """An utterance's pooled statistics: the mean and standard deviation over time of each state dimension
    (the same function `inference.voice.VoiceModel` applies)."""
    x = np.asarray(states, np.float32)
    if len(x) == 0:
        raise ValueError("no states to pool: nothing was said")
    return np.concatenate([x.mean(0), x.std(0)])


def fit_head(cfg: VoiceConfig, features: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[dict[str, np.ndarray],
                                                                                               dict[str, list[float]]]:
    """A read-out trained on pooled statistics (N, F) and classes (N,): (its weights, its history)."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    mu = features.mean(0)
    sd = features.std(0) + 1e-6
    z = ((features - mu) / sd).astype(np.float32)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weight = {c: float(len(y) / (n_classes * max(1.0, counts[c]))) for c in range(n_classes)}
    model = keras.Sequential([keras.Input((z.shape[1],)), keras.layers.Dropout(cfg.dropout),
                              keras.layers.Dense(n_classes, activation="softmax",
                                                 kernel_regularizer=keras.regularizers.L2(cfg.l2))])
    model.compile(keras.optimizers.Adam(cfg.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(z, y, epochs=cfg.epochs, batch_size=len(z), verbose=0, class_weight=weight, shuffle=False)
    kernel, bias = (w.numpy() for w in model.layers[-1].weights)
    weights = {"mu": mu.astype(np.float32), "sd": sd.astype(np.float32), "kernel": kernel.astype(np.float32),
               "bias": bias.astype(np.float32)}
    return weights, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def predict(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities of pooled statistics (N, F) (the read-out as `inference.voice` runs it)."""
    z = (features - weights["mu"]) / weights["sd"]
    logits = z @ weights["kernel"] + weights["bias"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def onto_labels(probs: np.ndarray, classes: list[str] | tuple[str, ...], to_labels: dict[str, str]) -> np.ndarray:
    """(N, n_classes) probabilities over a corpus's classes -> (N, 7) over the product's labels (e.g. RAVDESS's calm
    joins neutral)."""
    out = np.zeros((len(probs), len(LABELS)))
    for i, c in enumerate(classes):
        out[:, LABELS.index(to_labels[c])] += probs[:, i]
    return out


def crossval(cfg: VoiceConfig, features: np.ndarray, y: np.ndarray, groups: np.ndarray,
             folds: list[tuple[Any, ...]], n_classes: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold probabilities: fold i's groups (actors) are read by a head trained on every other group."""
    oof = np.zeros((len(y), n_classes))
    per_fold = []
    for i, test_groups in enumerate(folds):
        te = np.isin(groups, test_groups)
        if not te.any() or te.all():
            raise ValueError(f"fold {i + 1}: its actors {test_groups} leave no test or no training data")
        weights, _ = fit_head(cfg, features[~te], y[~te], n_classes)
        oof[te] = predict(weights, features[te])
        per_fold.append({"fold": i + 1, "test_actors": [str(g) for g in test_groups], "test_files": int(te.sum()),
                         "accuracy": round(float((oof[te].argmax(1) == y[te]).mean()), 4)})
    return oof, per_fold


__all__ = ["crossval", "onto_labels", "fit_head", "predict", "stats"]
