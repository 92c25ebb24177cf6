"""Stage `finetune_faces`: the per-frame face network fine-tuned on FER+ (real web faces, ten votes each).

`finetune_faces.root` names a FER+ folder the user brings (`data.ferplus`); empty (the default), the stage does
nothing heavy: it says so in its metrics and leaves the network folder as it is (the pipeline on the embedded
corpus never needs FER+). Given one, it crops every image with the product's face path, reads the crops through
the frozen trunk once (both cached under `.cache/ferplus`), fine-tunes the last blocks and an 8-way classifier
on the vote distributions, chooses the epoch on Valid, fits the temperature on Valid, scores Test once, and
writes the network in face-api.js's format to `paths.ferplus_network`, with its figures (`ferplus.json`) and a
model card. Whether the pipeline then uses it is a separate, deliberate choice: `paths.pretrained`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from video_emotion.config import Params
from video_emotion.io_utils import atomic_path, write_json, write_text
from video_emotion.stages.runner import Context, Stage, param_path

log = logging.getLogger("video_emotion.finetune_faces")

STAGE = Stage("finetune_faces", "Fine-tune the per-frame face network on FER+ (stage `finetune_faces`).",
              reads={"base_network": param_path("base_network"), "face_models": param_path("face_models")},
              writes={"network": param_path("ferplus_network"),
                      "metrics": param_path("metrics_dir", "finetune_faces.json"),
                      "plot": param_path("plots_dir", "finetune_faces_history.csv")})
HISTORY_KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")


def run(params: Params, base: Path, face_models: Path, network: Path) -> dict[str, Any]:
    """Fine-tune (see the module docstring) and write the network folder atomically; the result dict."""
    from video_emotion.modeling import lineage, packaging
    from video_emotion.modeling.ferplus import Sources, finetune, model_card

    cfg = params.finetune_faces
    root = (params.root / cfg.root).resolve()
    src = Sources(root=root, base=Path(base), face_models=Path(face_models),
                  cache_dir=params.root / ".cache" / "ferplus")
    with atomic_path(network) as tmp:
        result = finetune(src, params.preprocess, cfg, tmp)
        if (Path(base) / "LICENSE").is_file():
            shutil.copy2(Path(base) / "LICENSE", tmp / "LICENSE")
        result["settings"] = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k != "root"}
        result["commit"] = lineage.git_commit(packaging.package_dir())
        write_json(tmp / "ferplus.json", result)
        write_text(tmp / "MODEL_CARD.md", model_card(result))
    return result


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """`<split>_<network>_<figure>` (accuracy8, accuracy7, macro_f1_7, ece7) and the wall times: DVC and MLflow."""
    out: dict[str, float] = {f"seconds_{k}": v for k, v in result["seconds"].items()}
    for split, fig in result["figures"].items():
        for who in ("base", "finetuned"):
            out.update({f"{split}_{who}_{k}": fig[who][k] for k in ("accuracy8", "accuracy7", "macro_f1_7", "ece7")})
        out[f"{split}_face_found"] = fig["face_found"]
    out.update(temperature=result["temperature"], best_epoch=result["best_epoch"], mix=result["mix"],
               **{f"valid_unmixed_{k}": v for k, v in result["valid_unmixed"].items()})
    return out


def write_outputs(result: dict[str, Any] | None, metrics_path: Path, plot_path: Path, why: str = "") -> None:
    """DVC metrics and the per-epoch curves (a header alone when the stage did nothing)."""
    write_json(metrics_path, flat_metrics(result) if result else {"skipped": why})
    h = result["history"] if result else {}
    keys = [k for k in HISTORY_KEYS if k in h] if h else list(HISTORY_KEYS)
    rows = [f"{i + 1}," + ",".join(f"{h[k][i]:.6f}" for k in keys) for i in range(len(h.get("loss", [])))]
    write_text(plot_path, "\n".join(["epoch," + ",".join(keys), *rows]) + "\n")


def body(ctx: Context) -> None:
    params, cfg = ctx.params, ctx.params.finetune_faces
    if not cfg.root:
        why = "no FER+ folder (finetune_faces.root is empty): nothing fine-tuned, the network folder left as it is"
        log.info(why)
        write_outputs(None, ctx.path("metrics"), ctx.path("plot"), why)
        return
    from video_emotion.modeling import registry

    result = run(params, ctx.path("base_network"), ctx.path("face_models"), ctx.path("network"))
    write_outputs(result, ctx.path("metrics"), ctx.path("plot"))
    run_id = registry.start_run(params, "finetune_faces", {"model_design": f"faceapi+ferplus/blocks{cfg.blocks}"})
    registry.log_history(run_id, result["history"])
    registry.log_metrics(run_id, flat_metrics(result), [ctx.path("network") / "ferplus.json"])
    for split, fig in result["figures"].items():
        log.info("FER+ %s: accuracy8 %.3f -> %.3f, accuracy7 %.3f -> %.3f (as published -> fine-tuned)", split,
                 fig["base"]["accuracy8"], fig["finetuned"]["accuracy8"], fig["base"]["accuracy7"],
                 fig["finetuned"]["accuracy7"])
    log.info("wall time: %s s", result["seconds"])


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
