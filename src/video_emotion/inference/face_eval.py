"""Real-face evaluation: how well a model reads real people, next to the pretrained network it starts from.

Every face goes through the model's own face path (`ModelBundle.face_path()`: the detector and crop it
was trained with) and the model itself:
- a photo is placed in a video frame (`features.stills`) and read as a still clip (`read_stills`): the
  face path finds and crops the largest face by a whole-frame search, as analysis does on every frame of
  a still clip, and the model reads a window of T copies of that crop. Analysing a lossless still clip of
  the same frame with `analyze_video` gives the same probabilities (tests/integration/test_real_faces.py);
  reading the frame directly skips writing and decoding a video per photo;
- a clip is analysed window by window (`iter_windows`, as `analyze_video` does); its reading is the
  time-weighted mean of its windows' probabilities (the summary's distribution, whose top is the
  dominant emotion).
The pretrained network alone reads the same crops (each crop's reading, mirror-averaged when the model
averages mirror images; a clip's reading is the mean over its frames with a face). A photo or clip
without a face has no reading and counts as wrong; the detection rate says how often that happened.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.features.align import flip_average
from video_emotion.features.faces import FacePath
from video_emotion.inference.bundle import ModelBundle
from video_emotion.inference.windows import iter_windows
from video_emotion.modeling.calibration import ece
from video_emotion.modeling.metrics import class_scores, confusion_counts, macro_f1


class Pretrained:
    """The pretrained network alone (`modeling.backbones`): (n, S, S) uint8 crops -> (n, 7) probabilities."""

    def __init__(self, path: str | Path, flip: bool = True) -> None:
        from video_emotion.modeling.backbones import pretrained_backbone

        self.model = pretrained_backbone(path)
        self.flip = flip

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        from video_emotion.modeling.backbones import probabilities

        predict = lambda b: probabilities(self.model, b)  # noqa: E731
        if len(crops) == 0 or not self.flip:
            return predict(crops)
        return flip_average(predict, np.asarray(crops), width_axis=-1)


def uses_flip(bundle: ModelBundle) -> bool:
    """Whether the model reads each frame as the mean over it and its mirror image."""
    import json

    settings = json.loads((bundle.folder / "preprocessing.json").read_text(encoding="utf-8"))
    return bool(settings.get("model", {}).get("flip_average", False))


def _predict_windows(bundle: ModelBundle, X: np.ndarray, face: np.ndarray) -> np.ndarray:
    arrays = {"frames": X, "mask": face.astype(np.float32)}
    if "audio" in bundle.modalities:  # a face without a voice: late fusion keeps the face's reading
        mels, frames = bundle.input_shapes.get("audio", (64, bundle.n_audio_frames))
        arrays.update(audio=np.zeros((len(X), mels, frames), np.float32), has_audio=np.zeros((len(X), 1), np.float32))
    return bundle.predict_inputs(arrays)


def read_stills(bundle: ModelBundle, frames: list[np.ndarray], pretrained: Callable[[np.ndarray], np.ndarray] | None,
                faces: FacePath | None = None) -> dict[str, np.ndarray]:
    """Each frame held still: the model's and the pretrained network's probabilities (NaN rows where no
    face was found), whether a face was found, and the crops."""
    faces = faces or bundle.face_path()
    n, T, S = len(frames), bundle.n_frames, bundle.preprocess.image_size
    crops, found = np.zeros((n, S, S), np.uint8), np.zeros(n, bool)
    for i, frame in enumerate(frames):
        crops[i], face = faces.read(frame)
        found[i] = face is not None
    model_p = np.full((n, len(bundle.labels)), np.nan)
    pre_p = np.full((n, len(bundle.labels)), np.nan)
    idx = np.flatnonzero(found)
    for lo in range(0, idx.size, 64):
        part = idx[lo:lo + 64]
        model_p[part] = _predict_windows(bundle, np.repeat(crops[part][:, None], T, axis=1),
                                         np.ones((part.size, T), bool))
    if pretrained is not None and idx.size:
        pre_p[idx] = pretrained(crops[idx])
    return {"model": model_p, "pretrained": pre_p, "found": found, "crops": crops}


def read_clip(bundle: ModelBundle, path: str | Path, pretrained: Callable[[np.ndarray], np.ndarray] | None,
              sample_fps: float | None = None) -> dict[str, Any]:
    """A clip's reading by the model (time-weighted mean over windows with a face) and by the pretrained
    network (mean over frames with a face), and the share of sampled frames with a face."""
    windows = list(iter_windows(path, bundle, sample_fps))
    labels = len(bundle.labels)
    ok = [w for w in windows if w.face.any()]
    out: dict[str, Any] = {"model": np.full(labels, np.nan), "pretrained": np.full(labels, np.nan),
                           "face_rate": float(np.mean([w.face.mean() for w in windows])) if windows else 0.0}
    if not ok:
        return out
    probs = _predict_windows(bundle, np.stack([w.crops for w in ok]), np.stack([w.face for w in ok]))
    dur = np.array([max(1e-6, w.end_s - w.start_s) for w in ok])
    out["model"] = (dur[:, None] * probs).sum(0) / dur.sum()
    if pretrained is not None:
        crops = np.concatenate([w.crops[w.face] for w in ok])
        out["pretrained"] = pretrained(crops).mean(0)
    return out


def scores(y: np.ndarray, pred: np.ndarray, labels: list[str], probs: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes present, per-class recall, and the confusion matrix whose
    last column counts faces that were not found (`pred == -1`: no reading, counted wrong); with `probs`,
    the expected calibration error of the readings given (10 bins; NaN rows, faces not found, left out)."""
    counts = confusion_counts(y, pred, len(labels))
    _, recall, f1, support = class_scores(counts)
    read = ~np.isnan(probs).any(1) if probs is not None else np.zeros(len(y), bool)
    return {"n": int(len(y)), "accuracy": round(float(np.mean(pred == y)) if len(y) else 0.0, 4),
            "macro_f1": round(macro_f1(f1, support), 4),
            "ece": round(ece(probs[read], y[read]), 4) if read.any() else None,
            "recall": {lab: round(float(recall[c]), 4) for c, lab in enumerate(labels) if support[c] > 0},
            "confusion_matrix": counts.tolist()}


def log_loss(y: np.ndarray, probs: np.ndarray, floor: float = 1e-7) -> float | None:
    """Mean negative log-probability of the true class (lower is better: right and confidently so). A face not
    found (a row of NaN) counts as the uniform reading, log(classes): no reading, no information."""
    if not len(y):
        return None
    found = ~np.isnan(probs).any(1)
    p_true = np.full(len(y), 1.0 / probs.shape[1])
    p_true[found] = np.clip(probs[found][np.arange(found.sum()), y[found]], floor, 1.0)
    return float(-np.log(p_true).mean())


def report(y: np.ndarray, model_p: np.ndarray, pre_p: np.ndarray, detected: np.ndarray, datasets: np.ndarray,
           labels: list[str]) -> dict[str, Any]:
    """Per dataset (when named) and overall: the model's and the pretrained network's scores, detection rate."""
    pred = lambda p: np.where(np.isnan(p).any(1), -1, np.nan_to_num(p).argmax(1))  # noqa: E731
    pm, pp = pred(model_p), pred(pre_p)
    groups = {str(d): datasets == d for d in dict.fromkeys(datasets.tolist()) if d and d != "overall"}
    groups["overall"] = np.ones(len(y), bool)
    return {name: {"n": int(m.sum()), "detection_rate": round(float(detected[m].mean()), 4),
                   "model": scores(y[m], pm[m], labels, model_p[m]),
                   "pretrained": scores(y[m], pp[m], labels, pre_p[m]), "log_loss": log_loss(y[m], model_p[m])}
            for name, m in groups.items()}


def flat_metrics(rep: dict[str, Any], prefix: str = "realfaces") -> dict[str, float]:
    """`realfaces_accuracy`, `realfaces_macro_f1`, `realfaces_pretrained_macro_f1`, `realfaces_detection_rate`,
    `realfaces_log_loss`, `realfaces_recall_<label>` (overall), and `realfaces_<dataset>_...` per dataset: DVC and
    MLflow metrics."""
    out: dict[str, float] = {}
    for name, r in rep.items():
        p = prefix if name == "overall" else f"{prefix}_{name}"
        out.update({f"{p}_accuracy": r["model"]["accuracy"], f"{p}_macro_f1": r["model"]["macro_f1"],

                    f"{p}_pretrained_accuracy": r["pretrained"]["accuracy"],
                    f"{p}_pretrained_macro_f1": r["pretrained"]["macro_f1"],
                    f"{p}_detection_rate": r["detection_rate"], f"{p}_n": float(r["n"])})
        out.update({f"{p}{who}_ece": r[system]["ece"] for who, system in (("", "model"), ("_pretrained", "pretrained"))
                    if r[system]["ece"] is not None})
        if r.get("log_loss") is not None:
            out[f"{p}_log_loss"] = round(r["log_loss"], 6)
        if name == "overall":
            out.update({f"{p}_recall_{k}": v for k, v in r["model"]["recall"].items()})
    return out


def format_table(rep: dict[str, Any], labels: list[str], model_name: str) -> str:
    """The report as a Markdown table: one row per dataset and system."""
    short = [lab[:2].capitalize() for lab in labels]
    head = "| set | n | faces found | system | accuracy | macro-F1 | ECE | " + " | ".join(short) + " |"
    lines = [head, "|" + "---|" * (7 + len(labels))]
    for name, r in rep.items():
        for system, s in ((model_name, r["model"]), ("pretrained network alone", r["pretrained"])):
            rec = " | ".join(f"{s['recall'][lab]:.2f}" if lab in s["recall"] else "-" for lab in labels)
            lines.append(f"| {name} | {r['n']} | {r['detection_rate']:.3f} | {system} | {s['accuracy']:.3f} | "
                         f"{s['macro_f1']:.3f} | {'-' if s['ece'] is None else format(s['ece'], '.3f')} | {rec} |")
    return "\n".join(lines)


def evaluate_folder(bundle: ModelBundle, folder: str | Path, pretrained: str | Path | None,
                    progress: bool = False) -> dict[str, Any]:
    """A labelled folder of real faces (`data.labelled_faces`) read by the model and by the pretrained network
    alone: {"report": per dataset and overall (`report`), "digest": the set's digest, "n": items}."""
    from tqdm import tqdm

    from video_emotion.data.labelled_faces import list_faces, set_digest
    from video_emotion.features.stills import place_in_frame, read_image

    items = list_faces(folder)
    labels = list(bundle.labels)
    net = Pretrained(pretrained, uses_flip(bundle)) if pretrained else None
    faces = bundle.face_path()
    n = len(items)
    model_p, pre_p, found = np.full((n, len(labels)), np.nan), np.full((n, len(labels)), np.nan), np.zeros(n, bool)
    photos = [i for i, it in enumerate(items) if not it.is_video]
    bar = tqdm(total=n, desc="real faces", unit="face", disable=not progress or None)
    for lo in range(0, len(photos), 64):
        part = photos[lo:lo + 64]
        r = read_stills(bundle, [place_in_frame(read_image(items[i].path))[0] for i in part], net, faces)
        model_p[part], pre_p[part], found[part] = r["model"], r["pretrained"], r["found"]
        bar.update(len(part))
    for i in (i for i, it in enumerate(items) if it.is_video):
        r = read_clip(bundle, items[i].path, net)
        model_p[i], pre_p[i], found[i] = r["model"], r["pretrained"], r["face_rate"] > 0
        bar.update(1)
    bar.close()
    y = np.array([labels.index(it.label) for it in items])
    rep = report(y, model_p, pre_p, found, np.array([it.dataset for it in items]), labels)
    return {"report": rep, "digest": set_digest(items), "n": n}
