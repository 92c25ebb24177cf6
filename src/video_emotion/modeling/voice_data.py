"""RAVDESS speech for the voice head: the files, their classes and actors, the published folds, the
encoder readings (computed once per file and cached), and the figures the protocol reports.

A user brings the Zenodo download (`Audio_Speech_Actors_01-24.zip`, extracted: `Actor_NN/03-01-EE-II-SS-RR-AA.wav`);
only speech files (modality 03, vocal channel 01) are read. Each file's states come through the product's
own path: its audio decoded by ffmpeg at 16 kHz, its speech found by the same voice activity detector,
encoded by `text.voice_states.encode_spans`, so what the head learns from is what an analysis reads.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion.io_utils import atomic_path
from video_emotion.labels import LABELS
from video_emotion.modeling.calibration import ece
from video_emotion.modeling.metrics import classification_metrics
from video_emotion.modeling.voice import onto_labels

log = logging.getLogger("video_emotion.voice")

CLASSES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")  # RAVDESS codes 01-08
TO_LABELS = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
             "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}
# Actor-disjoint 5-fold protocol (Luna-Jimenez et al. 2022): the test actors of each fold.
FOLDS = ((2, 5, 14, 15, 16), (3, 6, 7, 13, 18), (10, 11, 12, 19, 20), (8, 17, 21, 23, 24), (1, 4, 9, 22))
_NAME = re.compile(r"^03-01-(0[1-8])-0[12]-0[12]-0[12]-(\d{2})\.wav$", re.IGNORECASE)


@dataclass(frozen=True)
class Utterance:
    path: Path
    cls: int      # index into CLASSES
    actor: int


def ravdess_speech(root: str | Path) -> list[Utterance]:
    """Every RAVDESS speech file under `root` (audio-only, speech), sorted; ValueError when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (the extracted RAVDESS speech download is expected)")
    items = []
    for p in sorted(root.rglob("*.wav")):
        m = _NAME.match(p.name)
        if m:
            items.append(Utterance(p, int(m.group(1)) - 1, int(m.group(2))))
    if not items:
        raise ValueError(f"{root}: no RAVDESS speech files (Actor_NN/03-01-EE-II-SS-RR-AA.wav) found")
    return items


def utterance_states(items: list[Utterance], encoder, cache_dir: str | Path | None = None,
                     progress: bool = True) -> list[np.ndarray]:
    """Each file's encoder states over its speech (float16 on disk under `cache_dir`, one .npy per file)."""
    from video_emotion.features.audio import load_audio
    from video_emotion.text.speech import speech_spans
    from video_emotion.text.voice_states import encode_spans

    cache = Path(cache_dir) if cache_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    out = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="voice readings", unit="file", disable=None)
    for it in items:
        dst = cache / f"{it.path.stem}.npy" if cache else None
        if dst is not None and dst.is_file():
            out.append(np.load(dst).astype(np.float32))
        else:
            samples = load_audio(it.path)
            spans = speech_spans(samples) or [{"start": 0, "end": len(samples)}]  # a file of speech: read it all
            states = encode_spans(encoder, samples, spans).states
            if dst is not None:
                with atomic_path(dst) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, states.astype(np.float16))
            out.append(states)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def to_labels(probs8: np.ndarray) -> np.ndarray:
    """Probabilities over the eight classes -> over the product's seven labels (calm joins neutral)."""
    return onto_labels(probs8, CLASSES, TO_LABELS)


def protocol_figures(probs8: np.ndarray, y8: np.ndarray) -> dict[str, Any]:
    """The figures the protocol reports: 8-class accuracy and UAR, the product's 7 labels (accuracy,
    macro-F1, per-class recall, confusion) and calibration (ECE over the 7 labels)."""
    m8 = classification_metrics(y8, probs8.argmax(1), list(CLASSES))
    y7 = np.array([LABELS.index(TO_LABELS[CLASSES[c]]) for c in y8])
    p7 = to_labels(probs8)
    m7 = classification_metrics(y7, p7.argmax(1), list(LABELS))
    return {"accuracy8": round(m8["accuracy"], 4), "uar8": round(m8["uar"], 4),
            "accuracy7": round(m7["accuracy"], 4), "macro_f1_7": round(m7["macro_f1"], 4),
            "uar7": round(m7["uar"], 4), "ece7": round(ece(p7, y7), 4),
            "recall8": {k: v["recall"] for k, v in m8["per_class"].items()},
            "recall7": {k: v["recall"] for k, v in m7["per_class"].items()},
            "confusion7": m7["confusion_matrix"], "files": int(len(y8))}


__all__ = ["CLASSES", "FOLDS", "TO_LABELS", "Utterance", "protocol_figures", "ravdess_speech", "to_labels",
           "utterance_states"]
