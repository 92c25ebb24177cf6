"""Stage `train_voice`: the voice head learned from RAVDESS speech (real actors), shipped in `paths.voice_model`.

`voice.root` names the extracted RAVDESS speech download a user brings; empty (the default), the stage does
nothing heavy: it says so in its metrics and leaves the shipped voice model as it is (the pipeline on the
embedded corpus never needs RAVDESS, and never learns a voice from its generated ones). Given one, it reads
every utterance through the product's own path once (cached under `voice.cache`), runs the actor-disjoint
5-fold protocol (each fold's head reads actors it never heard), fits the temperature on those out-of-fold
readings, trains the head that ships on all 24 actors, and writes `voice.json`, `voice_weights.npz`, the
figures (`voice_figures.json`) and a model card into the model folder atomically, and one MLflow run.
The `train` stage copies this folder into every model bundle, so each registered model carries its voice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from video_emotion.io_utils import write_json, write_text
from video_emotion.stages.runner import Context, Stage, StageError, param_path

log = logging.getLogger("video_emotion.train_voice")

STAGE = Stage("train_voice", "Learn the voice head from RAVDESS speech (stage `train_voice`; off without voice.root).",
              reads={"whisper_dir": param_path("whisper_dir")},
              writes={"voice_model": param_path("voice_model"), "metrics": param_path("metrics_dir", "voice.json"),
                      "plot": param_path("plots_dir", "voice_confusion.csv")})
def write_outputs(result: dict[str, Any] | None, metrics_path: Path, plot_path: Path, why: str = "") -> None:
    """DVC metrics and the confusion matrix over the seven labels (a header alone when the stage did nothing)."""
    from video_emotion.labels import LABELS

    if result is None:
        write_json(metrics_path, {"skipped": why})
        write_text(plot_path, "actual,predicted,count\n")
        return
    f = result["figures"]
    write_json(metrics_path, {k: v for k, v in f.items() if isinstance(v, float | int)})
    rows = [f"{LABELS[i]},{LABELS[j]},{n}" for i, row in enumerate(f["confusion7"]) for j, n in enumerate(row)]
    write_text(plot_path, "\n".join(["actual,predicted,count", *rows]) + "\n")


def body(ctx: Context) -> None:
    params, cfg = ctx.params, ctx.params.voice
    if not cfg.root:
        why = "no RAVDESS folder (voice.root is empty): nothing trained, the shipped voice model left as it is"
        log.info(why)
        write_outputs(None, ctx.path("metrics"), ctx.path("plot"), why)
        return
    root = (params.root / cfg.root).resolve()
    if not root.is_dir():
        raise StageError(f"voice.root {cfg.root!r}: no such folder")
    from video_emotion.modeling import registry
    from video_emotion.modeling.voice_train import train_voice

    result = train_voice(params, root, ctx.path("whisper_dir"), ctx.path("voice_model"))
    write_outputs(result, ctx.path("metrics"), ctx.path("plot"))
    run_id = registry.start_run(params, "train_voice", {"model_design": "voice/whisper-base-l2l3-stats"})
    flat = {k: v for k, v in result["figures"].items() if isinstance(v, float | int)}
    flat.update({f"fold{p['fold']}_accuracy8": p["accuracy"] for p in result["per_fold"]})
    registry.log_metrics(run_id, {**flat, "temperature": result["temperature"]},
                         [ctx.path("voice_model") / "voice_figures.json", ctx.path("voice_model") / "MODEL_CARD.md"])
    f = result["figures"]
    log.info("voice, 5 actor-disjoint folds: accuracy8 %.3f, UAR8 %.3f, accuracy7 %.3f, macro-F1(7) %.3f",
             f["accuracy8"], f["uar8"], f["accuracy7"], f["macro_f1_7"])


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
