"""Stage `evaluate`: test-split metrics, the real-face check, MLflow logging and registration."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import EvaluateConfig
from video_emotion.data.processed import is_encrypted, load_split, usable
from video_emotion.inference.bundle import ModelBundle
from video_emotion.io_utils import atomic_path, write_json, write_text
from video_emotion.modeling.inputs import model_inputs
from video_emotion.modeling.metrics import classification_metrics, confusion_png
from video_emotion.stages.runner import Context, Stage, StageError, param_path

log = logging.getLogger("video_emotion.evaluate")


def _options(p) -> None:
    p.add_argument("--no-register", action="store_true", help="score only; log nothing, register nothing")


STAGE = Stage("evaluate", "Evaluate on the test split, run the real-face check, log and register (stage `evaluate`).",
              reads={"model_dir": param_path("model_dir"), "processed_dir": param_path("processed_dir"),
                     "real_faces_dir": param_path("real_faces_dir")},
              writes={"metrics": param_path("metrics_dir", "eval.json"),
                      "confusion": param_path("plots_dir", "confusion.csv"),
                      "report_dir": lambda params: params.root / "reports" / "evaluation"},
              options=_options)


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
        from video_emotion.inference import realface
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
        confusion_png(np.array(m["confusion_matrix"]), labels, tmp / "confusion_matrix.png")
    return [report_dir / "classification_report.json", report_dir / "confusion_matrix.png"]


def body(ctx: Context) -> None:
    from video_emotion.modeling import lineage, promotion, registry, runlog

    params, model_dir, processed, faces = ctx.params, ctx.path("model_dir"), ctx.path("processed_dir"), ctx.path("real_faces_dir")
    ring = ctx.ring_if(is_encrypted(processed, "test"))
    result = run(params.evaluate, model_dir, processed, faces, ring)
    artifacts = write_outputs(result, ctx.path("metrics"), ctx.path("confusion"), ctx.path("report_dir"))
    if ctx.args.no_register:
        return
    run_file = model_dir / "run.json"
    if not run_file.is_file():
        raise StageError(f"{run_file} missing: the model was not trained by the train stage")
    m, real, ev = result["metrics"], result["real_face"], params.evaluate
    test_ref, faces_ref = lineage.split_ref(params, "test", processed), lineage.folder_ref(faces, params.root)
    candidate = promotion.candidate_from(m, real, faces_ref.digest, faces_ref.source["path"], ev.min_test_macro_f1,
                                         ev.real_face_check)
    report = runlog.evaluation_report(m, real, result["labels"], test_ref, faces_ref, artifacts)
    rescore = lambda bundle_dir: promotion.selection_from(  # noqa: E731  (the champion, on the same real faces)
        run(ev, bundle_dir, processed, faces, ring)["real_face"], faces_ref.digest, faces_ref.source["path"])
    train_run = json.loads(run_file.read_text())["run_id"]
    decision = registry.record_evaluation(params, train_run, model_dir, candidate, report, rescore)
    write_json(ctx.path("report_dir").parent / "registry.json", decision)


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
