"""A labelled folder of real faces (photos and clips) for evaluation: what is in it and with which label.

Two layouts:
- a CSV `labels.csv` with the columns `file,label` (optional `dataset`, `subject`); files are found
  under `images/` or beside the CSV (as in the realfaces-dev set);
- one folder per label, `DIR/<label>/[...]/file` (the first folder under a label names the dataset
  when there is one more level: `DIR/<label>/<dataset>/file`).
Labels are the canonical ones or common spellings (anger, happiness, ...). A file that is neither an
image nor a video, or whose label is unknown, is an error naming it: the set is evaluation data, so
nothing is dropped silently. The folder's content digest names the set (selection compares versions
only on the same set).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from video_emotion.data.own import canonical
from video_emotion.features.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
CSV_NAME = "labels.csv"


@dataclass(frozen=True)
class LabelledFace:
    path: Path
    label: str
    dataset: str = ""
    subject: str = ""

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


def _kind_ok(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def _label(raw: str, where: str) -> str:
    label = canonical(raw)
    if label is None:
        raise ValueError(f"{where}: unknown label {raw!r}")
    return label


def _from_csv(csv_path: Path) -> list[LabelledFace]:
    base = csv_path.parent / "images" if (csv_path.parent / "images").is_dir() else csv_path.parent
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not {"file", "label"} <= set(reader.fieldnames or []):
            raise ValueError(f"{csv_path}: needs the columns file,label (optional dataset, subject)")
        rows = list(reader)
    out = []
    for i, r in enumerate(rows, start=2):
        path = base / r["file"]
        if not path.is_file() and (csv_path.parent / r["file"]).is_file():
            path = csv_path.parent / r["file"]
        if not path.is_file():
            raise ValueError(f"{csv_path}:{i}: {r['file']} not found under {base}")
        if not _kind_ok(path):
            raise ValueError(f"{csv_path}:{i}: {r['file']} is neither an image nor a video")
        out.append(LabelledFace(path, _label(r["label"], f"{csv_path}:{i}"), (r.get("dataset") or "").strip(),
                                (r.get("subject") or "").strip()))
    return out


def _from_folders(folder: Path) -> list[LabelledFace]:
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = _label(sub.name, str(sub))
        for path in sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if not _kind_ok(path):
                raise ValueError(f"{path}: neither an image nor a video")
            rel = path.relative_to(sub).parts
            out.append(LabelledFace(path, label, rel[0] if len(rel) > 1 else ""))
    return out


def list_faces(folder: str | Path) -> list[LabelledFace]:
    """Every labelled photo and clip of `folder` (see the module docstring), in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    items = _from_csv(folder / CSV_NAME) if (folder / CSV_NAME).is_file() else _from_folders(folder)
    if not items:
        raise ValueError(f"{folder}: no labelled faces (a {CSV_NAME} with file,label or one folder per label)")
    return items


def set_digest(items: list[LabelledFace]) -> str:
    """sha256 over every item's label, dataset and content: the same files with the same labels, the same digest."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda it: (it.label, it.dataset, it.path.name)):
        h.update(f"{it.label}\0{it.dataset}\0{it.path.name}\0".encode())
        h.update(hashlib.sha256(it.path.read_bytes()).digest())
    return h.hexdigest()
