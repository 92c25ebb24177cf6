"""Fine-tuning the per-frame face network on FER+: cached readings, vote-distribution training, FER+ scores.

The recipe (Barsoum et al. 2016, their best scheme): cross-entropy against each face's normalised votes
over the eight emotions; the epoch is chosen on Valid (majority-label accuracy over the eight classes);
Test is scored once, on majority labels, over the eight classes and the product's seven.

On 2 CPU cores the whole network cannot be retrained per epoch; and it need not be: the trunk (every layer
before the last `blocks` dense blocks) is frozen, so its reading of each crop is computed once
(`cached_readings`, float16 on disk, keyed by the crops and the network) and each epoch only runs the last
blocks and the classifier over those readings. With `mirror`, the mirror image of every training crop is
read once too and trained on with the same votes (the only augmentation cached readings allow).

`scores` gives the FER+ figures of any reading (the bare network's 7 columns or the fine-tuned 8): a
7-label reading never predicts contempt, which then counts as wrong in `accuracy8`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.config import FinetuneFacesConfig
from video_emotion.data.ferplus import CLASSES8, CONTEMPT
from video_emotion.io_utils import atomic_path
from video_emotion.modeling.calibration import apply_temperature, ece
from video_emotion.modeling.metrics import class_scores, confusion_counts, macro_f1

log = logging.getLogger("video_emotion.ferplus")


def readings(trunk: Any, crops: np.ndarray, mirror: bool = False, batch_size: int = 128) -> np.ndarray:
    """The trunk's float16 readings of (n, S, S) uint8 crops (of their mirror images with `mirror`)."""
    out = None
    for lo in range(0, len(crops), batch_size):
        x = np.asarray(crops[lo:lo + batch_size], np.float32)[..., None] / 127.5 - 1.0
        if mirror:
            x = x[:, :, ::-1]
        r = np.asarray(trunk(x, training=False), np.float16)
        if out is None:
            out = np.empty((len(crops), *r.shape[1:]), np.float16)
        out[lo:lo + len(r)] = r
    return out if out is not None else np.zeros((0,), np.float16)


def network_digest(folder: str | Path, blocks: int) -> str:
    """What a trunk's readings depend on besides the crops: the network's weights and where it is cut."""
    h = hashlib.sha256(f"blocks={blocks}".encode())
    for f in sorted(Path(folder).iterdir()):
        if f.suffix in (".bin", ".json"):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cached_readings(trunk: Any, crops: np.ndarray, key: str, cache_dir: Path, mirror: bool = False) -> np.ndarray:
    """`readings`, read back from `cache_dir/<key>` when computed before (the key names crops and network)."""
    path = Path(cache_dir) / f"readings-{key}{'-mirror' if mirror else ''}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    t0 = time.perf_counter()
    r = readings(trunk, crops, mirror)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, r)
    log.info("read %d crops through the frozen trunk in %.0f s (cached: %s)", len(crops), time.perf_counter() - t0,
             path.name)
    return r


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64) - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def product_reading(p: np.ndarray) -> np.ndarray:
    """The 7-label reading the product shows: the first seven columns, renormalised."""
    p7 = np.asarray(p, np.float64)[:, :CONTEMPT]
    return p7 / p7.sum(1, keepdims=True)


def scores(p: np.ndarray, y8: np.ndarray, temperature: float = 1.0) -> dict[str, Any]:
    """FER+ figures of readings `p` (n, 7 or 8) against majority labels `y8` (CLASSES8 order; -1 rows left
    out): accuracy8 (contempt counts: a 7-label reading is wrong on it), accuracy7, macro_f1_7 and ece7 over
    the faces whose label is one of the product's seven, per-class recall and the 8x8 confusion matrix."""
    keep = y8 >= 0
    p, y = np.asarray(p)[keep], np.asarray(y8)[keep]
    pred8 = p.argmax(1)
    seven = y < CONTEMPT
    p7 = apply_temperature(product_reading(p[seven]), temperature)
    pred7 = p7.argmax(1)
    c8 = confusion_counts(y, pred8, len(CLASSES8))
    _, recall8, _, support8 = class_scores(c8)
    _, _, f1_7, support7 = class_scores(confusion_counts(y[seven], pred7, CONTEMPT))
    return {"n": int(keep.sum()), "accuracy8": round(float(np.mean(pred8 == y)), 4),
            "accuracy7": round(float(np.mean(pred7 == y[seven])), 4),
            "macro_f1_7": round(macro_f1(f1_7, support7), 4), "ece7": round(ece(p7, y[seven]), 4),
            "recall": {c: round(float(recall8[i]), 4) for i, c in enumerate(CLASSES8) if support8[i] > 0},
            "confusion_matrix": c8[:, :len(CLASSES8)].tolist()}


def fit_classifier(model: Any, train: Any, valid: tuple[np.ndarray, np.ndarray], cfg: FinetuneFacesConfig
                   ) -> tuple[dict[str, list[float]], float]:
    """Fit readings -> 8 logits on vote distributions; keep the epoch with the best Valid majority accuracy.

    `train`: batches of (readings, (n, 8) vote distributions) (`ferplus_net.Batches`); `valid`: (readings,
    majority labels, all >= 0)."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience,
                                         restore_best_weights=True)
    y_valid = np.eye(len(CLASSES8), dtype=np.float32)[valid[1]]
    t0 = time.perf_counter()
    hist = model.fit(train, validation_data=(np.asarray(valid[0], np.float32), y_valid), epochs=cfg.epochs,
                     callbacks=[stop], verbose=2)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return history, time.perf_counter() - t0


def predict8(model: Any, reading: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(n, 8) probabilities of the classifier on readings."""
    return softmax(model.predict(reading, batch_size=batch_size, verbose=0))


@dataclass(frozen=True)
class Sources:
    """Where the inputs are: the FER+ folder, the base network, the BlazeFace models, the reading cache."""

    root: Path
    base: Path
    face_models: Path
    cache_dir: Path


def _data(src: Sources, preprocess: Any, trunk: Any, digest: str, mirror: bool, splits: tuple[str, ...]
          ) -> tuple[dict[str, Any], dict[str, float]]:
    """Per split: the FerSplit, the crops' found flags and the trunk's readings (cached); the seconds each took."""
    from video_emotion.data.ferplus import load_split
    from video_emotion.modeling.ferplus_data import cache_key, cached_crops

    out: dict[str, Any] = {}
    seconds = {"crops": 0.0, "readings": 0.0}
    for s in splits:
        split = load_split(src.root, s)
        t0 = time.perf_counter()
        crops, found = cached_crops(split, preprocess, src.face_models, src.cache_dir)
        t1 = time.perf_counter()
        key = f"{s}-{cache_key(split, preprocess, src.face_models)}-{digest}"
        r = cached_readings(trunk, crops, key, src.cache_dir)
        rm = cached_readings(trunk, crops, key, src.cache_dir, mirror=True) if mirror and s == "train" else None
        seconds["crops"] += t1 - t0
        seconds["readings"] += time.perf_counter() - t1
        out[s] = {"split": split, "found": found, "reading": r, "mirror": rm}
    return out, seconds


def finetune(src: Sources, preprocess: Any, fit: FinetuneFacesConfig, out_dir: Path) -> dict[str, Any]:
    """Fine-tune the last `blocks` blocks + an 8-way classifier on FER+ Train's vote distributions, chosen on
    Valid; with `mix` < 1 the trained weights are moved back towards the published ones (`ferplus_net.mix_weights`);
    write the network to `out_dir` (face-api.js format); figures of the base and the fine-tuned network on Valid
    (and, with `report_test`, once on Test), the temperature fitted on Valid, and the wall times."""
    from video_emotion.modeling.calibration import fit_temperature
    from video_emotion.modeling.ferplus_net import (
        Batches,
        classifier_model,
        export_network,
        mix_weights,
        split_network,
    )

    t_start = time.perf_counter()
    blocks, mirror, report_test, mix = fit.blocks, fit.mirror, fit.report_test, fit.mix
    backbone, trunk, tail = split_network(src.base, blocks)
    splits = ("train", "valid", "test") if report_test else ("train", "valid")
    data, seconds = _data(src, preprocess, trunk, network_digest(src.base, blocks), mirror, splits)
    model = classifier_model(backbone, tail, fit.dropout)
    base = {s: product_reading(predict8(model, d["reading"])) for s, d in data.items() if s != "train"}
    tr, va = data["train"], data["valid"]
    rows = np.flatnonzero(tr["split"].trainable)
    sources = [(tr["reading"], rows)] + ([(tr["mirror"], rows)] if tr["mirror"] is not None else [])
    targets = np.concatenate([tr["split"].distribution()[rows]] * len(sources))
    y_va = va["split"].label
    trained = [tail, model.get_layer("ferplus_logits")]
    start = [layer.get_weights() for layer in trained]
    history, seconds["train"] = fit_classifier(model, Batches(sources, targets, fit.batch_size, fit.seed),
                                               (va["reading"][y_va >= 0], y_va[y_va >= 0]), fit)
    unmixed = scores(predict8(model, va["reading"]), y_va)
    mix_weights(trained, start, mix)
    tuned = {s: predict8(model, d["reading"]) for s, d in data.items() if s != "train"}
    seven = (y_va >= 0) & (y_va < CONTEMPT)
    temperature = fit_temperature(product_reading(tuned["valid"][seven]), y_va[seven])
    base_t = fit_temperature(base["valid"][seven], y_va[seven])
    export_network(backbone, model.get_layer("ferplus_logits"), src.base, out_dir)
    figures = {s: {"base": scores(base[s], data[s]["split"].label, base_t),
                   "finetuned": scores(tuned[s], data[s]["split"].label, temperature),
                   "finetuned_ece7_raw": scores(tuned[s], data[s]["split"].label)["ece7"],
                   "base_ece7_raw": scores(base[s], data[s]["split"].label)["ece7"],
                   "face_found": round(float(data[s]["found"].mean()), 4)} for s in tuned}
    best = int(np.argmax(history["val_accuracy"]))
    return {"figures": figures, "history": history, "temperature": round(temperature, 4), "mix": mix,
            "valid_unmixed": {k: unmixed[k] for k in ("accuracy8", "accuracy7", "macro_f1_7")},
            "base_temperature": round(base_t, 4), "best_epoch": best + 1, "epochs_run": len(history["loss"]),
            "train_faces": int(len(rows)), "train_rows": int(len(targets)),
            "seconds": {k: round(v, 1) for k, v in {**seconds, "total": time.perf_counter() - t_start}.items()}}


def _row(name: str, s: dict[str, Any]) -> str:
    return f"| {name} | {s['accuracy8']:.3f} | {s['accuracy7']:.3f} | {s['macro_f1_7']:.3f} | {s['ece7']:.3f} |"


def model_card(result: dict[str, Any]) -> str:
    """The network's card: what it is, data and licences, settings, figures (written by the stage)."""
    cfg = result["settings"]
    lines = ["# face-api.js expression network, fine-tuned on FER+", "",
             "Written by the DVC stage `finetune_faces` (src/video_emotion/stages/finetune_faces.py); the exact",
             "figures, settings and times are in `ferplus.json` beside this card; how the settings were chosen",
             "(FER+ Valid and the dev photos) and the figures on FER+ Test and the dev photos: docs/ferplus.md.", "",
             "- **Network**: face-api.js's face-expression network (MIT, `LICENSE`), 112x112 grey crops of the",
             f"  product's face path; its last {cfg['blocks']} dense block(s) and its classifier fine-tuned (then"
             f" mixed with the published weights, WiSE-FT, at {result['mix']:g}), the rest"
             " as published. Same tensor names and format as the original (float32): `backbones.pretrained_backbone`",
             "  and face-api.js read it. Outputs the product's 7 labels (an 8-way classifier with contempt was",
             "  trained; its 7 product columns are kept, i.e. the reading renormalised without contempt).",
             "- **Data**: FER+ (Barsoum et al. 2016; labels MIT, Microsoft) over the FER-2013 images (the FER-2013",
             "  challenge's research terms: research use). Train to fit, Valid to choose the epoch and fit the",
             "  temperature, Test scored once. No other data; the dev photos are never trained on.",
             "- **Training**: cross-entropy against the normalised votes over 8 emotions; mirror images: "
             f"{cfg['mirror']}; Adam {cfg['learning_rate']:g}, batch {cfg['batch_size']}, dropout {cfg['dropout']:g};",
             f"  best of {result['epochs_run']} epochs on Valid: {result['best_epoch']}; temperature "
             f"{result['temperature']:.3f} (fitted on Valid, NLL).",
             f"- **Time** (2 CPU cores, s): {json.dumps(result['seconds'])} (crops, readings: once, then cached).",
             f"- **Code**: commit {result.get('commit', 'unknown')}.", "",
             "| split, network | accuracy8 | accuracy7 | macro-F1 (7) | ECE (7, calibrated) |", "|---|---|---|---|---|"]
    for split, fig in result["figures"].items():
        lines += [_row(f"{split}, as published", fig["base"]), _row(f"{split}, fine-tuned", fig["finetuned"])]
    return "\n".join(lines) + "\n"
