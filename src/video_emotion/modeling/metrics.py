"""Classification metrics (WAR, UAR, macro-F1, per class, confusion matrix) and their picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Counts (n, n + 1): row the true class, column the prediction; the last column counts predictions
    outside 0..n-1 (no reading, e.g. a face not found), which are wrong for every class."""
    counts = np.zeros((n, n + 1), np.int64)
    y_pred = np.asarray(y_pred)
    np.add.at(counts, (np.asarray(y_true), np.where((y_pred < 0) | (y_pred >= n), n, y_pred)), 1)
    return counts


def class_scores(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 (0 where undefined) and support from `confusion_counts`."""
    n = counts.shape[0]
    tp = np.diag(counts[:, :n]).astype(float)
    support = counts.sum(1).astype(float)
    predicted = counts[:, :n].sum(0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return precision, recall, f1, support


def macro_f1(f1: np.ndarray, support: np.ndarray) -> float:
    """Mean F1 over the classes present (0 with none): absent classes neither help nor hurt."""
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """WAR (accuracy), UAR (mean recall), macro-F1, per-class P/R/F1 and the confusion matrix."""
    n = len(labels)
    counts = confusion_counts(y_true, y_pred, n)
    cm, tp = counts[:, :n], np.diag(counts[:, :n]).astype(float)
    precision, recall, f1, support = class_scores(counts)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(1, counts.sum())),
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": macro_f1(f1, support),
        "per_class": {lab: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                            "f1": round(float(f1[i]), 4), "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
    }


def confusion_png(cm: np.ndarray, labels: list[str], path: Path,
                  title: str = "Test confusion matrix") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
