"""What an evaluation logs, assembled from the stage's results (pure; the registry writes it).

Headline metrics keep stable names so runs line up in the MLflow UI: `test_accuracy` (WAR), `test_uar`,
`test_macro_f1`, `test_f1_<label>`, and every numeric real-face figure under its own name
(`realfaces_accuracy`, `realfaces_macro_f1`, ... from the labelled real-face evaluation; `realface_*` from
the check on the embedded footage).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.modeling.lineage import DataRef

HEADLINE = {"accuracy": "test_accuracy", "uar": "test_uar", "macro_f1": "test_macro_f1"}


def real_face_confusion(real: dict[str, Any], labels: list[str]) -> np.ndarray | None:
    """The real-face confusion matrix: the labelled evaluation's own, or the posed photos of the check."""
    if real.get("realfaces_confusion_matrix") is not None:
        return np.asarray(real["realfaces_confusion_matrix"], dtype=int)
    photos = real.get("photos")
    if not photos:
        return None
    cm = np.zeros((len(labels), len(labels)), int)
    for expected, got in photos.items():
        if expected in labels and got in labels:  # a photo without a detected face has no reading
            cm[labels.index(expected), labels.index(got)] += 1
    return cm


def evaluation_report(metrics: dict[str, Any], real: dict[str, Any], labels: list[str], test_data: DataRef,
                      real_data: DataRef, artifacts: list[Path] = ()) -> dict[str, Any]:
    """Metrics (by the dataset they were measured on), confusion matrices, version tags and files to log."""
    check = real.get("realface_pass")
    if real.get("realfaces_digest"):  # a labelled set: identified as the selection identifies it (labels + content)
        full = str(real["realfaces_digest"])
        real_data = replace(real_data, digest=full[:32], source={**real_data.source, "set_digest": full,
                                                                  "files_digest": real_data.digest})
    confusions = {"confusion_test": (np.asarray(metrics["confusion_matrix"], dtype=int), labels,
                                     f"Synthetic test split ({metrics.get('test_clips', '?')} clips)")}
    cm = real_face_confusion(real, labels)
    if cm is not None:
        confusions["confusion_real_faces"] = (cm, labels, f"Real faces ({real_data.source.get('path', '')})")
    return {
        "metrics": {name: float(metrics[k]) for k, name in HEADLINE.items()},
        "per_class": {f"test_f1_{k}": float(v["f1"]) for k, v in metrics["per_class"].items()},
        "real_metrics": {k: float(v) for k, v in real.items()
                         if k.startswith("realface") and isinstance(v, (int, float)) and not isinstance(v, bool)},
        "test_data": test_data, "real_data": real_data, "datasets": [test_data, real_data],
        "artifacts": list(artifacts), "confusions": confusions,
        "tags": {"test_macro_f1": f"{float(metrics['macro_f1']):.6f}", "test_data_digest": test_data.digest,
                 "real_faces_digest": real_data.digest,
                 "real_face_check": "not run" if check is None else "pass" if check else "fail"},
    }
