"""Stage `evaluate`: test-split metrics, the real-face check, MLflow logging and registration."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.analyze import ModelBundle
from video_emotion.config import EvaluateConfig
from video_emotion.io_utils import atomic_path, write_json, write_text
from video_emotion.model import model_inputs
from video_emotion.stages.common import StageError, load, parser, run_main
from video_emotion.stages.train import load_split, usable

log = logging.getLogger("video_emotion.evaluate")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """WAR (accuracy), UAR (mean recall), macro-F1, per-class P/R/F1 and the confusion matrix."""
    n = len(labels)
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {lab: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                            "f1": round(float(f1[i]), 4), "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
    }


def run(cfg: EvaluateConfig, model_dir: Path, processed_dir: Path, real_faces_dir: Path, ring=None) -> dict[str, Any]:
    """Score the bundle on the test split (decrypted in memory) and the real-face check."""
    bundle = ModelBundle.load(model_dir)
    test = load_split(processed_dir, "test", ring)
    keep = usable(test, bundle.modalities)
    if keep.sum() == 0:
        raise StageError(f"no test clip is usable for modalities {bundle.modalities}; nothing to evaluate")
    probs = bundle.predict_inputs(model_inputs(test, keep, bundle.modalities))
    y_true, y_pred = test["y"][keep], probs.argmax(1)
    metrics = classification_metrics(y_true, y_pred, bundle.labels)
    metrics["test_clips"] = int(keep.sum())
    metrics["test_clips_without_face"] = int((~keep).sum())
    real: dict[str, Any] = {}
    if cfg.real_face_check and "video" in bundle.modalities:
        from video_emotion import realface

        real = realface.run(bundle, real_faces_dir)
        log.info("real-face check: crying windows sad %.2f (negative %.2f), laughing windows happy %.2f "
                 "(positive %.2f), posed photos %.2f -> %s; windows: %s",
                 real["realface_crying_sad_share"], real["realface_crying_negative_share"],
                 real["realface_laughing_happy_share"], real["realface_laughing_positive_share"],
                 real["realface_photo_accuracy"], "PASS" if real["realface_pass"] else "FAIL",
                 " ".join(f"{t:.0f}s:{e}" for t, e, _ in real["timeline"]))
    log.info("test: accuracy %.3f, macro-F1 %.3f, UAR %.3f on %d clips",
             metrics["accuracy"], metrics["macro_f1"], metrics["uar"], metrics["test_clips"])
    return {"metrics": metrics, "real_face": real, "y_true": y_true, "y_pred": y_pred, "labels": bundle.labels}


def write_outputs(result: dict[str, Any], metrics_path: Path, confusion_path: Path, report_dir: Path) -> list[Path]:
    """eval.json (DVC metrics), confusion.csv (DVC plot), report JSON + confusion PNG (MLflow artifacts)."""
    m, real, labels = result["metrics"], result["real_face"], result["labels"]
    flat = {k: round(m[k], 4) for k in ("accuracy", "macro_f1", "uar")}
    flat.update({"test_clips": m["test_clips"], "test_clips_without_face": m["test_clips_without_face"]})
    flat.update({k: v for k, v in real.items() if k.startswith("realface_")})
    flat["per_class_f1"] = {k: v["f1"] for k, v in m["per_class"].items()}
    write_json(metrics_path, flat)
    rows = ["actual,predicted"] + [f"{labels[a]},{labels[p]}" for a, p in zip(result["y_true"], result["y_pred"])]
    write_text(confusion_path, "\n".join(rows) + "\n")
    with atomic_path(report_dir) as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "classification_report.json", {**m, "real_face": real})
        _confusion_png(np.array(m["confusion_matrix"]), labels, tmp / "confusion_matrix.png")
    return [report_dir / "classification_report.json", report_dir / "confusion_matrix.png"]


def _confusion_png(cm: np.ndarray, labels: list[str], path: Path) -> None:
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
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("Test confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def requirements() -> list[str]:
    """Exact pins of what the logged pyfunc model needs, from the installed distributions."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("tensorflow-cpu", "keras", "numpy", "opencv-python-headless", "pandas", "tqdm", "pyyaml"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser("Evaluate on the test split, run the real-face check, log and register (stage `evaluate`).")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--processed-dir", required=True)
    p.add_argument("--real-faces-dir", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--confusion", required=True)
    p.add_argument("--report-dir", required=True)
    p.add_argument("--no-register", action="store_true", help="score only; log nothing, register nothing")
    args = p.parse_args(argv)

    def body() -> None:
        from video_emotion import tracking

        from video_emotion import secure_store

        params = load(args)
        model_dir = Path(args.model_dir)
        enc = (Path(args.processed_dir) / f"test.npz{secure_store.SUFFIX}").is_file()
        ring = secure_store.load_keyring(params.secure.key_file) if enc else None
        result = run(params.evaluate, model_dir, Path(args.processed_dir), Path(args.real_faces_dir), ring)
        artifacts = write_outputs(result, Path(args.metrics), Path(args.confusion), Path(args.report_dir))
        if args.no_register:
            return
        run_file = model_dir / "run.json"
        if not run_file.is_file():
            raise StageError(f"{run_file} missing: the model was not trained by the train stage")
        run_id = json.loads(run_file.read_text())["run_id"]
        m, real = result["metrics"], result["real_face"]
        tracking.configure(params.tracking, params.root)
        logged = {f"test_{k}": m[k] for k in ("accuracy", "macro_f1", "uar")}
        logged.update({f"test_f1_{k}": v["f1"] for k, v in m["per_class"].items()})
        logged.update({k: v for k, v in real.items() if k.startswith("realface_")})
        tracking.log_metrics(run_id, logged, artifacts)
        # No check (disabled, or an audio-only model): the version can never become champion.
        gate = bool(real["realface_pass"]) if "realface_pass" in real else (None if params.evaluate.real_face_check else False)
        decision = tracking.register(run_id, model_dir, params.evaluate.registered_model, m["macro_f1"], gate,
                                     requirements())
        write_json(Path(args.report_dir).parent / "registry.json", {**decision, "run_id": run_id})

    return run_main("evaluate", body)


if __name__ == "__main__":
    raise SystemExit(main())
