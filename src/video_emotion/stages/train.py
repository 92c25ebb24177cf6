"""Stage `train`: fit the CNN+LSTM on the train split, early-stopped on val; save the model bundle."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from video_emotion.config import ModelConfig, TrainConfig
from video_emotion.data.processed import data_hash, load_split
from video_emotion.features.faces import BUNDLE_DIR as FACE_MODELS
from video_emotion.inference.bundle import VOICE_DIR
from video_emotion.inference.voice import VOICE_SETTINGS
from video_emotion.io_utils import atomic_path, write_json, write_text
from video_emotion.modeling.export import export_inference
from video_emotion.modeling.training import fit
from video_emotion.stages.runner import Context, Stage, param_path

log = logging.getLogger("video_emotion.train")

STAGE = Stage("train", "Train the CNN+LSTM video emotion model (stage `train`).",
              reads={"processed_dir": param_path("processed_dir"), "pretrained": param_path("pretrained"),
                     "voice_model": param_path("voice_model")},
              writes={"model_dir": param_path("model_dir"), "metrics": param_path("metrics_dir", "train.json"),
                      "plot": param_path("plots_dir", "train_history.csv")})


def run(model_cfg: ModelConfig, cfg: TrainConfig, processed_dir: Path, model_dir: Path,
        pretrained: Path | None, voice_model: Path | None = None) -> dict[str, Any]:
    """Train and write the bundle (model.keras, its inference exports, preprocessing.json, history.json) atomically.
    The voice model learned from real speech (`voice_model`, stage `train_voice`) travels in it as `voice/`."""
    settings = json.loads((Path(processed_dir) / "preprocessing.json").read_text(encoding="utf-8"))
    train, val = load_split(processed_dir, "train"), load_split(processed_dir, "val")
    train_fn = fit
    if cfg.strategy == "multiworker":  # the same fit on cfg.workers processes (scale.multiworker)
        from video_emotion.scale.multiworker import fit_multiworker as train_fn
    model, history, metrics = train_fn(model_cfg, cfg, settings, train, val, pretrained)
    epochs_run, best, seconds = metrics["epochs_run"], metrics["best_epoch"] - 1, metrics["train_seconds"]
    bundle_settings = {**settings, "model": {k: getattr(model_cfg, k) for k in model_cfg.__dataclass_fields__}}
    with atomic_path(model_dir) as tmp:
        tmp.mkdir(parents=True)
        model.save(tmp / "model.keras")
        export_inference(model, tmp, cfg=model_cfg)  # the traced graphs (parts or model.tflite): no Keras to analyse
        write_json(tmp / "preprocessing.json", bundle_settings)
        if (Path(processed_dir) / FACE_MODELS).is_dir():  # the detector the crops were made with travels with the model
            shutil.copytree(Path(processed_dir) / FACE_MODELS, tmp / FACE_MODELS)
        write_json(tmp / "history.json", history)
        if voice_model is not None and (Path(voice_model) / VOICE_SETTINGS).is_file():
            shutil.copytree(voice_model, tmp / VOICE_DIR)
    log.info("trained %d epochs in %.1f s (%.1f clips/s); best val accuracy %.3f at epoch %d",
             epochs_run, seconds, metrics["train_clips_per_second"], metrics["best_val_accuracy"], best + 1)
    return {"metrics": metrics, "history": history}


def write_outputs(result: dict[str, Any], metrics_path: Path, plot_path: Path) -> None:
    """DVC metrics (train.json) and the per-epoch curves (CSV for `dvc plots`)."""
    write_json(metrics_path, result["metrics"])
    h = result["history"]
    keys = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in h]
    lines = ["epoch," + ",".join(keys)]
    lines += [f"{i + 1}," + ",".join(f"{h[k][i]:.6f}" for k in keys) for i in range(len(h["loss"]))]
    write_text(plot_path, "\n".join(lines) + "\n")


def body(ctx: Context) -> None:
    from video_emotion.modeling import lineage, packaging, registry

    params, model_dir, processed = ctx.params, ctx.path("model_dir"), ctx.path("processed_dir")
    model_cfg, design = params.model.effective(params.ingest.source)  # chosen by the corpus (model.adapt)
    log.info("model design: %s", design)
    result = run(model_cfg, params.train, processed, model_dir, ctx.path("pretrained"), ctx.path("voice_model"))
    write_outputs(result, ctx.path("metrics"), ctx.path("plot"))
    run_id = registry.start_run(params, "train", {"data_hash": data_hash(processed),
                                "model_design": f"{model_cfg.init}/{model_cfg.head}/{model_cfg.fine_tune}",
                                "model_adapt": design},
                                [lineage.split_ref(params, s, processed) for s in ("train", "val")])
    registry.log_history(run_id, result["history"])  # per-epoch curves: one step per epoch
    registry.log_metrics(run_id, result["metrics"])
    # Evaluate continues the same run, so one run holds training and test results.
    write_json(model_dir / "run.json", lineage.training_record(run_id, lineage.git_commit(packaging.package_dir())))


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
