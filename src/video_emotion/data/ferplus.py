"""FER+ (Barsoum et al. 2016): the FER-2013 faces with ten crowd votes each, read from a folder the user brings.

Two layouts are read, both with the images under `data/FER2013{Train,Valid,Test}/` (or `FER2013*/` at the top):
- `manifest.csv` (`path,label,split,votes`: what the project's extract script writes; `votes` are the ten
  counts separated by spaces), or
- the FER+ repository's own per-split `label.csv` (`image,box,v1,...,v10`, no header).
The ten votes are over neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown and
not-a-face. Here the eight emotions are put in the project's order: the canonical seven (`labels.LABELS`)
then contempt, so that the first seven columns are what the product reads.

The majority label is the emotion with strictly the most votes (ties, and a majority of unknown or
not-a-face: no label, -1), the FER+ protocol's test label. Training reads the vote distribution over the
eight emotions (Barsoum et al.'s best scheme), for every face whose top vote is an emotion.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_emotion.labels import LABELS

VOTE_NAMES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
              "unknown", "NF")
CANONICAL = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
             "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
CLASSES8 = (*LABELS, "contempt")  # the product's seven, then contempt
CONTEMPT = len(LABELS)
SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
# column of each of the ten votes in CLASSES8 order (unknown, not-a-face: 8, 9)
_ORDER = [CLASSES8.index(CANONICAL[n]) for n in VOTE_NAMES[:8]] + [8, 9]


@dataclass(frozen=True)
class FerSplit:
    """One split: image paths, raw votes (n, 10: CLASSES8 order, then unknown and not-a-face), majority label."""

    split: str
    paths: list[Path]
    votes: np.ndarray

    @property
    def label(self) -> np.ndarray:
        """Majority label in CLASSES8 order, -1 where there is none (tie, unknown, not-a-face)."""
        return majority(self.votes)

    @property
    def trainable(self) -> np.ndarray:
        """Faces whose top vote is an emotion (ties included): their vote distribution is a target."""
        top = self.votes.max(1, keepdims=True)
        return (self.votes[:, :8] == top).any(1) & (top[:, 0] > 0)

    def distribution(self) -> np.ndarray:
        """(n, 8) the votes over the eight emotions, normalised (rows without an emotion vote: zeros)."""
        v = self.votes[:, :8].astype(np.float32)
        s = v.sum(1, keepdims=True)
        return np.divide(v, s, out=np.zeros_like(v), where=s > 0)


def majority(votes: np.ndarray) -> np.ndarray:
    """The emotion with strictly the most of the ten votes, else -1."""
    votes = np.asarray(votes)
    top = votes.max(1)
    unique = (votes == top[:, None]).sum(1) == 1
    arg = votes.argmax(1)
    return np.where(unique & (arg < 8) & (top > 0), arg, -1)


def _images_dir(root: Path, split: str) -> Path:
    for base in (root / "data", root):
        if (base / SPLITS[split]).is_dir():
            return base / SPLITS[split]
    raise FileNotFoundError(f"{root}: no {SPLITS[split]}/ folder (nor data/{SPLITS[split]}/): not a FER+ folder")


def load_split(root: str | Path, split: str) -> FerSplit:
    """The split `train`, `valid` or `test` of the FER+ folder `root` (see the module docstring)."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"FER+ split must be one of {tuple(SPLITS)}, got {split!r}")
    paths, votes = [], []
    if (root / "manifest.csv").is_file():
        with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["split"] == split:
                    paths.append(root / row["path"])
                    votes.append([int(v) for v in row["votes"].split()])
    else:
        folder = _images_dir(root, split)
        with open(folder / "label.csv", newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if row and (folder / row[0]).is_file():
                    paths.append(folder / row[0])
                    votes.append([int(float(v)) for v in row[2:12]])
    if not paths:
        raise ValueError(f"{root}: no FER+ {split} images listed")
    v = np.asarray(votes, np.int32)
    if v.ndim != 2 or v.shape[1] != 10:
        raise ValueError(f"{root}: FER+ rows need ten votes each, got shape {v.shape}")
    return FerSplit(split, paths, v[:, np.argsort(_ORDER)])
