"""Stage `ingest`: bring a corpus into data/raw and write the manifest with actor-disjoint splits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from video_emotion.config import IngestConfig
from video_emotion.corpora import synthetic
from video_emotion.corpora.manifest import COLUMNS, actor_disjoint_splits
from video_emotion.io_utils import atomic_path, sha256_file
from video_emotion.stages.common import StageError, load, parser, run_main
from video_emotion.video import VideoError, probe

log = logging.getLogger("video_emotion.ingest")


def run(cfg: IngestConfig, raw_dir: Path, manifest_path: Path, progress: bool = True) -> dict:
    """Write the corpus and its manifest atomically; return an ingest summary."""
    if cfg.source != "synthetic":
        raise StageError(f"ingest.source {cfg.source!r} is not supported yet; available: synthetic")
    raw_dir, manifest_path = Path(raw_dir), Path(manifest_path)
    with atomic_path(raw_dir) as tmp_raw:
        tmp_raw.mkdir(parents=True)
        records = synthetic.generate(tmp_raw, n_actors=cfg.n_actors, clips_per_label=cfg.clips_per_label,
                                     fps=cfg.fps, duration_s=cfg.duration_s, width=cfg.width,
                                     height=cfg.height, audio=cfg.audio, seed=cfg.seed, progress=progress)
        rows, rejected = _describe(records, tmp_raw, raw_dir, manifest_path)
        split_of = actor_disjoint_splits([r["actor"] for r in rows], cfg.val_actors, cfg.test_actors, cfg.seed)
        for r in rows:
            r["split"] = split_of[r["actor"]]
        df = pd.DataFrame(rows, columns=COLUMNS)
    # The clips are published first, then the manifest that points at them.
    with atomic_path(manifest_path) as tmp_manifest:
        df.to_csv(tmp_manifest, index=False)
    summary = {
        "source": cfg.source, "clips": len(df), "rejected": len(rejected),
        "rejected_examples": rejected[:5], "actors": int(df["actor"].nunique()),
        "per_split": {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")},
        "per_label": {k: int(v) for k, v in df["label"].value_counts().sort_index().items()},
    }
    log.info("%d clips from %d actors (train/val/test %s), %d rejected",
             summary["clips"], summary["actors"], summary["per_split"], summary["rejected"])
    return summary


def _describe(records: list[dict], tmp_root: Path, final_root: Path, manifest_path: Path) -> tuple[list[dict], list[str]]:
    rows, rejected = [], []
    rel_root = Path(_relpath(final_root, manifest_path.parent))
    for rec in records:
        clip = tmp_root / rec["path"]
        try:
            info = probe(clip, count=True)
        except VideoError as exc:
            rejected.append(str(exc))
            continue
        audio = rec.get("audio_path") or ""
        rows.append({
            "path": (rel_root / rec["path"]).as_posix(), "label": rec["label"], "actor": rec["actor"],
            "split": "", "duration_s": round(info.duration_s, 4), "fps": round(info.fps, 4),
            "width": info.width, "height": info.height, "n_frames": info.n_frames,
            "has_audio": bool(audio), "audio_path": (rel_root / audio).as_posix() if audio else "",
            "sha256": sha256_file(clip), "source": "synthetic",
        })
    return rows, rejected


def _relpath(target: Path, start: Path) -> str:
    return os.path.relpath(target.resolve(), start.resolve())


def main(argv: list[str] | None = None) -> int:
    p = parser("Generate or collect the corpus and write the clip manifest (stage `ingest`).")
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--manifest", required=True)
    args = p.parse_args(argv)

    def body() -> None:
        params = load(args)
        run(params.ingest, Path(args.raw_dir), Path(args.manifest))

    return run_main("ingest", body)


if __name__ == "__main__":
    raise SystemExit(main())
