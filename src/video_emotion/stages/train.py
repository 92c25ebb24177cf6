"""Stage `train`: fit the CNN+LSTM on the train split, early-stopped on val; save the model bundle."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import ModelConfig, TrainConfig
from video_emotion.io_utils import atomic_path, write_json, write_text
from video_emotion.labels import LABELS
from video_emotion.stages.common import StageError, load, parser, run_main

log = logging.getLogger("video_emotion.train")


def load_split(processed_dir: Path, split: str, ring=None) -> dict[str, np.ndarray]:
    """A processed split; an encrypted one (`.npz.enc`) is decrypted in memory only."""
    import io

    from video_emotion import secure_store
    from video_emotion.stages.preprocess import split_name

    path = Path(processed_dir) / f"{split}.npz"
    enc = path.with_name(path.name + secure_store.SUFFIX)
    if enc.is_file():
        if ring is None:
            raise StageError(f"{enc}: the {split} split is encrypted; a data key is needed")
        source = io.BytesIO(secure_store.decrypt_bytes(enc, ring, split_name(Path(processed_dir), split)))
    elif path.is_file():
        source = path
    else:
        raise StageError(f"{path}: processed split not found; run the preprocess stage")
    with np.load(source, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def usable(d: dict[str, np.ndarray], modalities: list[str] = ("video",)) -> np.ndarray:
    """Clips that can teach or test the model: a face in at least one frame (video models), or an
    audio track (audio-only models)."""
    if "video" in modalities:
        return d["face"].any(axis=1)
    return d["has_audio"].astype(bool) if "has_audio" in d else np.zeros(len(d["y"]), bool)


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(float)
    present = counts > 0
    w = np.zeros(n)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w[i]) for i in range(n) if present[i]}


def fit(model_cfg: ModelConfig, cfg: TrainConfig, settings: dict[str, Any], train: dict[str, np.ndarray],
        val: dict[str, np.ndarray], pretrained: Path | None, verbose: int = 2):
    """Build and fit one model on in-memory arrays; returns (model, history, metrics)."""
    import keras

    from video_emotion.model import build_model, model_inputs

    mods = list(model_cfg.modalities)
    tk, vk = usable(train, mods), usable(val, mods)
    if tk.sum() == 0 or vk.sum() == 0:
        raise StageError(f"no train or val clip is usable for modalities {mods} (no face / no audio); "
                         "check the corpus and preprocess settings")
    keras.utils.set_random_seed(cfg.seed)
    n_audio = train["A"].shape[-1] if "A" in train else 200
    model = build_model(model_cfg, settings["n_frames"], settings["image_size"], pretrained, n_audio_frames=n_audio)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xs = lambda d, k: model_inputs(d, k, mods)  # noqa: E731
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)]
    t0 = time.perf_counter()
    hist = model.fit(xs(train, tk), train["y"][tk], validation_data=(xs(val, vk), val["y"][vk]),
                     epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, callbacks=callbacks,
                     class_weight=class_weights(train["y"][tk], len(LABELS)) if cfg.class_weights else None,
                     verbose=verbose)
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    epochs_run = len(history.get("loss", []))
    best = int(np.argmin(history["val_loss"])) if history.get("val_loss") else epochs_run - 1
    metrics = {
        "train_clips": int(tk.sum()), "val_clips": int(vk.sum()),
        "train_clips_without_face": int((~tk).sum()),
        "epochs_run": epochs_run, "best_epoch": best + 1,
        "best_val_loss": history["val_loss"][best], "best_val_accuracy": history["val_accuracy"][best],
        "train_seconds": round(seconds, 2),
        "train_clips_per_second": round(int(tk.sum()) * epochs_run / seconds, 2),
    }
    return model, history, metrics


def run(model_cfg: ModelConfig, cfg: TrainConfig, processed_dir: Path, model_dir: Path,
        pretrained: Path | None) -> dict[str, Any]:
    """Train and write the bundle (model.keras, preprocessing.json, history.json) atomically."""
    settings = json.loads((Path(processed_dir) / "preprocessing.json").read_text(encoding="utf-8"))
    train, val = load_split(processed_dir, "train"), load_split(processed_dir, "val")
    model, history, metrics = fit(model_cfg, cfg, settings, train, val, pretrained)
    epochs_run, best, seconds = metrics["epochs_run"], metrics["best_epoch"] - 1, metrics["train_seconds"]
    bundle_settings = {**settings, "model": {k: getattr(model_cfg, k) for k in model_cfg.__dataclass_fields__}}
    with atomic_path(model_dir) as tmp:
        tmp.mkdir(parents=True)
        model.save(tmp / "model.keras")
        write_json(tmp / "preprocessing.json", bundle_settings)
        write_json(tmp / "history.json", history)
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


def main(argv: list[str] | None = None) -> int:
    p = parser("Train the CNN+LSTM video emotion model (stage `train`).")
    p.add_argument("--processed-dir", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--pretrained", required=True)
    p.add_argument("--metrics", required=True, help="DVC metrics JSON to write")
    p.add_argument("--plot", required=True, help="per-epoch training curves CSV to write")
    args = p.parse_args(argv)

    def body() -> None:
        from video_emotion import tracking
        from video_emotion.stages.preprocess import data_hash

        params = load(args)
        model_dir = Path(args.model_dir)
        result = run(params.model, params.train, Path(args.processed_dir), model_dir, Path(args.pretrained))
        write_outputs(result, Path(args.metrics), Path(args.plot))
        run_id = tracking.start_run(params.tracking, params.root, params.to_flat_dict(),
                                    {"data_hash": data_hash(Path(args.processed_dir)),
                                     "model_design": f"{params.model.init}/{params.model.head}/{params.model.fine_tune}"})
        tracking.log_history(run_id, result["history"])
        tracking.log_metrics(run_id, result["metrics"])
        # Evaluate continues the same run, so one run holds training and test results.
        write_json(model_dir / "run.json", {"run_id": run_id})

    return run_main("train", body)


if __name__ == "__main__":
    raise SystemExit(main())
