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
                     "real_faces_dir": param_path("real_faces_dir"), "pretrained": param_path("pretrained"),
                     "real_faces": lambda p: (p.root / p.evaluate.real_faces).resolve() if p.evaluate.real_faces
                     else p.path("real_faces_dir")},  # the labelled real faces in use (evaluate.real_faces)
              writes={"metrics": param_path("metrics_dir", "eval.json"),
                      "confusion": param_path("plots_dir", "confusion.csv"),
                      "report_dir": lambda params: params.root / "reports" / "evaluation"},
              options=_options)


def run(cfg: EvaluateConfig, model_dir: Path, processed_dir: Path, real_faces_dir: Path, ring=None,
        pretrained: Path | None = None, labelled: Path | None = None) -> dict[str, Any]:
    """Score the bundle on the test split (decrypted in memory), the real-face check (embedded footage) and the
    real faces that select the champion (`labelled`, else the embedded footage), with the pretrained network
    alone (`pretrained`) on the same crops."""
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
    if "video" in bundle.modalities and (cfg.real_face_check or labelled is not None):
        from video_emotion.inference import realface
        real = realface.run(bundle, real_faces_dir) if cfg.real_face_check else {}
        real.update(realface.selection(bundle, real_faces_dir, pretrained, labelled))
        log.info("real faces: %s", realface.describe(real))
    log.info("test: accuracy %.3f, macro-F1 %.3f, UAR %.3f on %d clips",
             metrics["accuracy"], metrics["macro_f1"], metrics["uar"], metrics["test_clips"])
    return {"metrics": metrics, "real_face": real, "y_true": y_true, "y_pred": y_pred, "labels": bundle.labels}


def write_outputs(result: dict[str, Any], metrics_path: Path, confusion_path: Path, report_dir: Path) -> list[Path]:
    """eval.json (DVC metrics), confusion.csv (DVC plot), report JSON + confusion PNG (MLflow artifacts)."""
    m, real, labels = result["metrics"], result["real_face"], result["labels"]
    flat = {k: round(m[k], 4) for k in ("accuracy", "macro_f1", "uar")}
    flat.update({"test_clips": m["test_clips"], "test_clips_without_face": m["test_clips_without_face"]})
    flat.update({k: v for k, v in real.items() if k.startswith("realface") and isinstance(v, int | float)})
    flat["per_class_f1"] = {k: v["f1"] for k, v in m["per_class"].items()}
    write_json(metrics_path, flat)
    pairs = zip(result["y_true"], result["y_pred"], strict=False)
    rows = ["actual,predicted"] + [f"{labels[a]},{labels[p]}" for a, p in pairs]
    write_text(confusion_path, "\n".join(rows) + "\n")
    with atomic_path(report_dir) as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "classification_report.json", {**m, "real_face": real})
        confusion_png(np.array(m["confusion_matrix"]), labels, tmp / "confusion_matrix.png")
    return [report_dir / "classification_report.json", report_dir / "confusion_matrix.png"]


def body(ctx: Context) -> None:
    from video_emotion.modeling import lineage, promotion, registry, runlog

    params, model_dir, processed = ctx.params, ctx.path("model_dir"), ctx.path("processed_dir")
    faces = ctx.path("real_faces_dir")
    # evaluate.real_faces, if it names another folder (resolved: a symlinked data folder is the same folder)
    labelled = ctx.path("real_faces") if ctx.path("real_faces").resolve() != faces.resolve() else None
    ring = ctx.ring_if(is_encrypted(processed, "test"))
    result = run(params.evaluate, model_dir, processed, faces, ring, ctx.path("pretrained"), labelled)
    artifacts = write_outputs(result, ctx.path("metrics"), ctx.path("confusion"), ctx.path("report_dir"))
    if ctx.args.no_register:
        return
    run_file = model_dir / "run.json"
    if not run_file.is_file():
        raise StageError(f"{run_file} missing: the model was not trained by the train stage")
    m, real, ev = result["metrics"], result["real_face"], params.evaluate
    test_ref = lineage.split_ref(params, "test", processed)
    faces_ref = lineage.folder_ref(labelled or faces, params.root)
    voice = model_dir / "voice" / "voice.json"
    source = promotion.voice_source(json.loads((model_dir / "preprocessing.json").read_text(encoding="utf-8")),
                                    json.loads(voice.read_text(encoding="utf-8")) if voice.is_file() else None,
                                    params.ingest.source)
    candidate = promotion.candidate_from(m, real, faces_ref.digest, faces_ref.source["path"], ev.min_test_macro_f1,
                                         ev.real_face_check, source)
    report = runlog.evaluation_report(m, real, result["labels"], test_ref, faces_ref, artifacts)
    rescore = lambda bundle_dir: promotion.selection_from(  # noqa: E731  (the champion, on the same real faces)
        run(ev, bundle_dir, processed, faces, ring, labelled=labelled)["real_face"], faces_ref.digest,
        faces_ref.source["path"])
    decision = registry.record_evaluation(params, model_dir, candidate, report, rescore)
    write_json(ctx.path("report_dir").parent / "registry.json", decision)


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
