"""Confidence that means what it says: calibration error, and one temperature that corrects it.

Pure NumPy on class probabilities (no TensorFlow), so the exported analysis path can apply it.

- `ece`: expected calibration error of the top-class confidence, equal-width bins (the usual
  definition: sum over bins of |accuracy - mean confidence| weighted by the bin's share of items);
  `reliability` gives the per-bin figures behind it (the reliability plot).
- `apply_temperature`: softmax(log p / T). For probabilities that came out of a softmax this is
  exactly temperature scaling of the logits (log p differs from the logits by a constant per row);
  T > 1 softens an over-confident network, T = 1 changes nothing, and the top class never changes.
- `fit_temperature`: the T that minimises the negative log-likelihood of the labels (Guo et al. 2017),
  a one-dimensional convex problem in log T, solved by golden-section search.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """(n, k) probabilities -> the same, sharpened (T < 1) or softened (T > 1); rows keep their argmax."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = np.asarray(probs, np.float64)
    if temperature == 1.0:
        return p
    z = np.log(np.clip(p, EPS, None)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = np.asarray(probs, np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], EPS, None))))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: mean top-class confidence, accuracy, and count (empty bins: NaN, 0)."""
    p = np.asarray(probs, np.float64)
    conf, correct = p.max(1), (p.argmax(1) == np.asarray(y)).astype(float)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # bin b holds (b/bins, (b+1)/bins]
    count = np.bincount(idx, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, bins) / count
        acc = np.bincount(idx, correct, bins) / count
    return {"edges": np.linspace(0.0, 1.0, bins + 1), "confidence": mean_conf, "accuracy": acc, "count": count}


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence (0: confidence equals accuracy in every bin)."""
    r = reliability(probs, y, bins)
    seen = r["count"] > 0
    if not seen.any():
        return 0.0
    w = r["count"][seen] / r["count"].sum()
    return float(np.sum(w * np.abs(r["accuracy"][seen] - r["confidence"][seen])))


def fit_temperature(probs: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0, tol: float = 1e-4) -> float:
    """The temperature in [lo, hi] that minimises the labels' NLL (golden-section search over log T)."""
    if len(y) == 0:
        raise ValueError("no labelled items to fit a temperature on")
    f = lambda t: nll(apply_temperature(probs, float(np.exp(t))), y)  # noqa: E731
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float(np.exp((a + b) / 2.0))
