"""Own data: a CSV manifest (`path,label[,actor][,split][,transcript]`) or one folder per label.

A clip's audio is its own track (ingest checks that it has one); the CSV's transcript goes into the
manifest."""

from __future__ import annotations

import csv
from pathlib import Path

from video_emotion.data.common import CorpusScan
from video_emotion.features.video import VIDEO_SUFFIXES
from video_emotion.labels import LABELS

# Common spellings of the canonical labels in other corpora and tools.
ALIASES = {"anger": "angry", "mad": "angry", "disgusted": "disgust", "fearful": "fear", "afraid": "fear",
           "scared": "fear", "happiness": "happy", "joy": "happy", "sadness": "sad", "surprised": "surprise",
           "calm": "neutral", "neutrality": "neutral"}
SPLITS = {"train", "val", "test"}


def canonical(label: str) -> str | None:
    key = label.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in LABELS else None


def scan_csv(csv_path: str | Path) -> CorpusScan:
    csv_path = Path(csv_path)
    out = CorpusScan(source="csv")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            if not {"path", "label"} <= cols:
                raise ValueError(f"{csv_path}: needs the columns path,label (optional actor, split, transcript); "
                                 f"has {sorted(cols)}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV ({exc})") from None
    for n, row in enumerate(rows, start=2):
        rel = (row.get("path") or "").strip()
        path = (csv_path.parent / rel) if rel and not Path(rel).is_absolute() else Path(rel)
        label = canonical(row.get("label") or "")
        split = (row.get("split") or "").strip().lower()
        if not rel:
            out.reject(f"{csv_path}:{n}", "empty path")
        elif label is None:
            out.reject(path, f"label {row.get('label')!r} (line {n}) is not one of {', '.join(LABELS)}")
        elif split and split not in SPLITS:
            out.reject(path, f"split {split!r} (line {n}) is not train, val or test")
        elif not path.is_file():
            out.reject(path, f"file not found (line {n})")
        else:
            actor = (row.get("actor") or "").strip() or f"clip:{path.stem}"
            out.records.append({"path": path, "label": label, "actor": actor, "modality": "video",
                                "audio_path": path, "split": split, "transcript": (row.get("transcript") or "").strip(),
                                "source_label": row.get("label", "")})
    return out


def scan_folders(root: str | Path) -> CorpusScan:
    """`root/<label>/[<actor>/]clip.ext`: the folder under the label, if any, names the actor."""
    root = Path(root)
    out = CorpusScan(source="folders")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        label = canonical(rel.parts[0]) if len(rel.parts) > 1 else None
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            out.reject(path, "not a video file")
        elif label is None:
            out.reject(path, f"top folder {rel.parts[0]!r} is not a label ({', '.join(LABELS)})")
        else:
            actor = rel.parts[1] if len(rel.parts) > 2 else f"clip:{path.stem}"
            out.records.append({"path": path, "label": label, "actor": actor, "modality": "video",
                                "audio_path": path, "source_label": rel.parts[0]})
    return out
