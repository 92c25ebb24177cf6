"""Stage `crossval`: actor-independent k-fold cross-validation (`train.cv_folds` >= 2).

All clips of all splits are pooled (the encrypted test split is decrypted in memory) and the actors
are dealt into k folds; fold i is tested on its actors after training on the others, with the next
fold's actors held out for early stopping. No actor is ever in two folds: the stage checks it and
fails otherwise. A design whose per-frame CNN is frozen (the default) has every clip's frames read by it
once, and each fold fits and tests its head on those readings. Reports mean and standard deviation over
folds of accuracy (WAR), UAR and macro-F1, and per-class F1, as DVC metrics and in one MLflow run. With
`cv_folds: 0` it records that CV is off.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import ModelConfig, TrainConfig
from video_emotion.data.manifest import SPLITS, actor_folds
from video_emotion.data.processed import is_encrypted, load_split, usable
from video_emotion.io_utils import write_json
from video_emotion.labels import LABELS
from video_emotion.modeling.metrics import classification_metrics
from video_emotion.modeling.training import fit, frame_readings, predict_clips
from video_emotion.stages.runner import Context, Stage, StageError, param_path

log = logging.getLogger("video_emotion.crossval")

STAGE = Stage("crossval",
              "Actor-independent k-fold cross-validation (stage `crossval`; off unless train.cv_folds >= 2).",
              reads={"processed_dir": param_path("processed_dir"), "pretrained": param_path("pretrained")},
              writes={"metrics": param_path("metrics_dir", "cv.json")})


def _subset(d: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in d.items()}


def run(model_cfg: ModelConfig, cfg: TrainConfig, processed_dir: Path, pretrained: Path | None,
        ring=None) -> dict[str, Any]:
    if cfg.cv_folds < 2:
        return {"enabled": False, "folds": 0}
    settings = json.loads((Path(processed_dir) / "preprocessing.json").read_text(encoding="utf-8"))
    parts = [load_split(processed_dir, s, ring) for s in SPLITS]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    fold_of = actor_folds(list(data["actor"]), cfg.cv_folds, cfg.seed)
    fold = np.array([fold_of[a] for a in data["actor"]])
    for a in set(data["actor"]):  # the leakage check: an actor's clips all sit in one fold
        if len(set(fold[data["actor"] == a])) != 1:
            raise StageError(f"actor {a} appears in more than one fold")
    readings = frame_readings(model_cfg, settings, data, pretrained)  # a frozen CNN reads each clip once, not k times
    if readings is not None:
        data["F"] = readings
    results = []
    for i in range(cfg.cv_folds):
        te, va = fold == i, fold == (i + 1) % cfg.cv_folds
        tr = ~(te | va)
        model, history, m = fit(model_cfg, cfg, settings, _subset(data, tr), _subset(data, va), pretrained, verbose=0)
        test = _subset(data, te)
        keep = usable(test, list(model_cfg.modalities))
        probs = predict_clips(model, model_cfg, test, keep)
        scores = classification_metrics(test["y"][keep], probs.argmax(1), list(LABELS))
        results.append({"fold": i, "test_actors": sorted(set(test["actor"])), "test_clips": int(keep.sum()),
                        "epochs_run": m["epochs_run"], **{k: scores[k] for k in ("accuracy", "uar", "macro_f1")},
                        "per_class_f1": {k: v["f1"] for k, v in scores["per_class"].items()}})
        log.info("fold %d/%d: %d test clips, accuracy %.3f, UAR %.3f, macro-F1 %.3f", i + 1, cfg.cv_folds,
                 keep.sum(), scores["accuracy"], scores["uar"], scores["macro_f1"])
    summary: dict[str, Any] = {"enabled": True, "folds": cfg.cv_folds}
    for key in ("accuracy", "uar", "macro_f1"):
        vals = np.array([r[key] for r in results])
        summary[f"{key}_mean"], summary[f"{key}_std"] = round(float(vals.mean()), 4), round(float(vals.std(ddof=0)), 4)
    per_class = {lab: [r["per_class_f1"][lab] for r in results] for lab in LABELS}
    summary["per_class_f1_mean"] = {lab: round(float(np.mean(v)), 4) for lab, v in per_class.items()}
    summary["per_class_f1_std"] = {lab: round(float(np.std(v)), 4) for lab, v in per_class.items()}
    log.info("%d-fold actor-independent CV: accuracy %.3f ± %.3f, UAR %.3f ± %.3f, macro-F1 %.3f ± %.3f",
             cfg.cv_folds, summary["accuracy_mean"], summary["accuracy_std"], summary["uar_mean"], summary["uar_std"],
             summary["macro_f1_mean"], summary["macro_f1_std"])
    return {**summary, "per_fold": results}


def body(ctx: Context) -> None:
    from video_emotion.modeling import lineage, registry

    params = ctx.params
    needs_key = params.train.cv_folds >= 2 and is_encrypted(ctx.path("processed_dir"), "test")
    result = run(params.effective_model, params.train, ctx.path("processed_dir"), ctx.path("pretrained"),
                 ctx.ring_if(needs_key))  # the design chosen by the corpus (model.adapt)
    per_fold = {f"fold{r['fold'] + 1}": {k: round(r[k], 4) for k in ("accuracy", "uar", "macro_f1")}
                for r in result.get("per_fold", [])}
    write_json(ctx.path("metrics"), {**{k: v for k, v in result.items() if k != "per_fold"}, "per_fold": per_fold})
    if result["enabled"]:  # every split is pooled: all three are this run's data (the test split by digest only)
        data = [lineage.split_ref(params, s, ctx.path("processed_dir"), context="cross-validation") for s in SPLITS]
        run_id = registry.start_run(params, "crossval", {"kind": "crossval", "folds": str(params.train.cv_folds),
                                    "model_design": f"{params.effective_model.init}/{params.effective_model.head}"},
                                    data)
        flat = {f"cv_{k}": v for k, v in result.items() if isinstance(v, float)}
        flat.update({f"cv_f1_{k}": v for k, v in result["per_class_f1_mean"].items()})
        registry.log_metrics(run_id, flat)


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
