"""Bring a corpus into the raw folder and write the manifest with actor-disjoint splits.

Clips of the splits named in `secure.encrypted_splits` (the test split by default) are written only
as ciphertext: each is encoded in private memory-backed scratch space, measured, hashed, encrypted
into the output and the plaintext deleted at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from video_emotion import security as secure_store
from video_emotion.config import IngestConfig
from video_emotion.data import synthetic
from video_emotion.data.manifest import COLUMNS, TRANSCRIPT_SUFFIX, actor_disjoint_splits
from video_emotion.features.video import VideoError, probe
from video_emotion.io_utils import atomic_path, sha256_file

log = logging.getLogger("video_emotion.ingest")


class CorpusError(ValueError):
    """A corpus that cannot be ingested (missing folder, nothing usable, no key for encryption)."""


def ingest(cfg: IngestConfig, raw_dir: Path, manifest_path: Path, encrypted_splits: list[str] = (),
        ring: secure_store.KeyRing | None = None, progress: bool = True, corpora: Path | None = None) -> dict:
    """Write the corpus and its manifest atomically; return an ingest summary.

    `corpora` is the folder DVC watches for the stage (`paths.corpora`): a real corpus must lie in it,
    or adding a clip would leave `dvc repro` "up to date".
    """
    if encrypted_splits and ring is None:
        raise CorpusError(f"splits {list(encrypted_splits)} must be encrypted but no data key was given")
    if cfg.source != "synthetic":
        return run_corpus(cfg, Path(raw_dir), Path(manifest_path), encrypted_splits, ring, corpora)
    return _ingest_synthetic(cfg, Path(raw_dir), Path(manifest_path), encrypted_splits, ring, progress)


def _ingest_synthetic(cfg: IngestConfig, raw_dir: Path, manifest_path: Path, encrypted_splits: list[str],
                      ring: secure_store.KeyRing | None, progress: bool) -> dict:
    """The embedded corpus, generated into the raw folder (an encrypted split's clips through private scratch)."""
    split_of = actor_disjoint_splits(synthetic.actor_ids(cfg.n_actors), cfg.val_actors, cfg.test_actors, cfg.seed)
    rel_root = Path(os.path.relpath(raw_dir.resolve(), manifest_path.parent.resolve()))
    rows, rejected = [], []
    with atomic_path(raw_dir) as tmp_raw, secure_store.scratch_dir() as scratch:
        tmp_raw.mkdir(parents=True)

        def root_for(actor: str) -> Path:
            return scratch if split_of[actor] in encrypted_splits else tmp_raw

        for root, rec in synthetic.iter_generate(
                tmp_raw, n_actors=cfg.n_actors, clips_per_label=cfg.clips_per_label, fps=cfg.fps,
                duration_s=cfg.duration_s, width=cfg.width, height=cfg.height, audio=cfg.audio, seed=cfg.seed,
                progress=progress, root_for=root_for):
            split = split_of[rec["actor"]]
            try:
                info = probe(root / rec["path"], count=True)
            except VideoError as exc:
                rejected.append(str(exc))
                continue
            row = _generated_row(rec, root, info, split, rel_root, cfg.source, split in encrypted_splits)
            if row["encrypted"]:
                _encrypt_generated(row, rec, root, tmp_raw, ring)
            rows.append(row)
        df = pd.DataFrame(rows, columns=COLUMNS)
        if len(df) == 0:
            raise CorpusError(f"no readable clip was produced ({len(rejected)} rejected, e.g. {rejected[:1]})")
    # The clips are published first, then the manifest that points at them.
    with atomic_path(manifest_path) as tmp_manifest:
        df.to_csv(tmp_manifest, index=False)
    return _generated_summary(df, rejected, cfg.source)


def _generated_row(rec: dict, root: Path, info, split: str, rel_root: Path, source: str, encrypted: bool) -> dict:
    """The manifest row of a generated clip (`rec` from `synthetic.iter_generate`, written under `root`)."""
    return {"path": (rel_root / rec["path"]).as_posix(), "label": rec["label"], "actor": rec["actor"],
            "split": split, "duration_s": round(info.duration_s, 4), "fps": round(info.fps, 4),
            "width": info.width, "height": info.height, "n_frames": info.n_frames,
            "has_audio": bool(rec["audio_path"]),
            "audio_path": (rel_root / rec["audio_path"]).as_posix() if rec["audio_path"] else "",
            "sha256": sha256_file(root / rec["path"]), "source": source, "encrypted": encrypted,
            "transcript": ""}


def _encrypt_generated(row: dict, rec: dict, root: Path, tmp_raw: Path, ring: secure_store.KeyRing) -> None:
    """Encrypt a generated clip (and its WAV) from scratch into the raw folder, delete the plaintext and point
    the manifest row at the ciphertext."""
    for key in ("path", "audio_path"):
        if row[key]:
            src = root / rec[key]
            dst = tmp_raw / f"{rec[key]}{secure_store.SUFFIX}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            secure_store.encrypt_file(src, dst, ring, name=row[key])
            src.unlink()
            row[key] += secure_store.SUFFIX


def _generated_summary(df: pd.DataFrame, rejected: list[str], source: str) -> dict:
    summary = {
        "source": source, "clips": len(df), "rejected": len(rejected),
        "rejected_examples": rejected[:5], "actors": int(df["actor"].nunique()),
        "encrypted_clips": int(df["encrypted"].sum()),
        "per_split": {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")},
        "per_label": {k: int(v) for k, v in df["label"].value_counts().sort_index().items()},
    }
    log.info("%d clips from %d actors (train/val/test %s), %d encrypted at rest, %d rejected",
             summary["clips"], summary["actors"], summary["per_split"], summary["encrypted_clips"],
             summary["rejected"])
    if rejected:
        log.warning("rejected clips, e.g.: %s", "; ".join(rejected[:5]))
    return summary


def scan_corpus(cfg: IngestConfig):
    """The adapter for `ingest.source` over `ingest.root`."""
    from video_emotion.data import cremad, own, ravdess

    root = Path(cfg.root).expanduser()
    if not root.exists():
        raise CorpusError(f"ingest.root {root} does not exist (see docs/pipeline.md on obtaining {cfg.source})")
    if cfg.source == "ravdess":
        return ravdess.scan(root, calm=cfg.ravdess_calm)
    if cfg.source == "cremad":
        return cremad.scan(root)
    if cfg.source == "csv":
        return own.scan_csv(root)
    return own.scan_folders(root)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _inner(source: str, src: Path, base: Path) -> Path:
    """Where an encrypted copy of `src` goes inside the raw folder: its path under the corpus root, or
    for a file outside it (a CSV may name clips anywhere) its absolute path re-rooted, never `..`."""
    rel = Path(os.path.relpath(src, base))
    return Path(source) / (Path("_outside", *src.parts[1:]) if ".." in rel.parts else rel)


def run_corpus(cfg: IngestConfig, raw_dir: Path, manifest_path: Path, encrypted_splits: list[str],
               ring: secure_store.KeyRing | None, corpora: Path | None = None) -> dict:
    """A real corpus: clips stay where they are (track them with `dvc add`) except those of the
    encrypted splits, which are written encrypted under `raw_dir`. Every file that cannot be used
    is reported with its reason, in the log and in `raw_dir/ingest_report.json`; so are the second
    copies of a recording (one record per recording)."""
    import json

    if corpora is not None and not _inside(Path(cfg.root).expanduser(), Path(corpora)):
        raise CorpusError(f"ingest.root {cfg.root} is not inside paths.corpora ({corpora}), the folder DVC "
                          "watches for ingest: move the corpus there or point paths.corpora at a folder holding it")
    scan = scan_corpus(cfg)
    rows = _readable(scan, corpora)
    if not rows:
        raise CorpusError(f"no usable clip under {cfg.root}: {scan.summary()['rejected_examples']}")
    given = [r.get("split") or "" for r in rows]
    if all(given):
        split_of = None
    else:
        split_of = actor_disjoint_splits([r["actor"] for r in rows], cfg.val_actors, cfg.test_actors, cfg.seed)
    out_rows = []
    with atomic_path(raw_dir) as tmp_raw:
        tmp_raw.mkdir(parents=True)
        rel_root = Path(os.path.relpath(raw_dir.resolve(), manifest_path.parent.resolve()))
        base = Path(cfg.root).expanduser().resolve()
        base = base.parent if base.is_file() else base
        for r in rows:
            split = r.get("split") or split_of[r["actor"]]
            if split in encrypted_splits:
                where = _encrypt_record(r, cfg.source, base, tmp_raw, rel_root, ring)
            else:
                where = _record_in_place(r, manifest_path.parent.resolve())
            info = r["info"]
            out_rows.append({**where, "label": r["label"], "actor": r["actor"], "split": split,
                             "duration_s": round(info.duration_s, 4), "fps": round(info.fps, 4), "width": info.width,
                             "height": info.height, "n_frames": info.n_frames, "has_audio": r["has_audio"],
                             "sha256": r["sha256"], "source": cfg.source, "encrypted": split in encrypted_splits})
        report = {**scan.summary(examples=50), "rejected_all": [{"path": p, "reason": why} for p, why in scan.rejected],
                  "duplicates_all": [{"path": p, "same_recording_as": kept} for p, kept in scan.duplicates]}
        (tmp_raw / "ingest_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        df = pd.DataFrame(out_rows, columns=COLUMNS)
    with atomic_path(manifest_path) as tmp_manifest:
        df.to_csv(tmp_manifest, index=False)
    return _corpus_summary(df, scan, cfg.source)


def _readable(scan, corpora: Path | None) -> list[dict]:
    """The scanned records whose video (and audio) can be read, measured and hashed; the others rejected
    with their reason."""
    from video_emotion.features.audio import AudioError, has_audio

    rows = []
    for rec in scan.records:
        if corpora is not None and not _inside(Path(rec["path"]), Path(corpora)):
            scan.reject(rec["path"], f"outside paths.corpora ({corpora}): DVC would not see it change")
            continue
        audio = rec.get("audio_path")
        try:
            info = probe(rec["path"], count=True)
            if audio is not None and Path(audio) == Path(rec["path"]) and not has_audio(rec["path"]):
                audio = None  # the clip's own track, and it has none
        except VideoError as exc:
            scan.reject(rec["path"], f"unreadable video ({exc})")
            continue
        except AudioError as exc:
            scan.reject(rec["path"], f"unreadable media ({exc})")
            continue
        rows.append({**rec, "audio_path": audio, "info": info, "sha256": sha256_file(rec["path"]),
                     "has_audio": audio is not None})
    return rows


def _record_in_place(r: dict, manifest_dir: Path) -> dict:
    """Manifest paths of a clip that stays where it is (relative to the manifest)."""
    audio = Path(r["audio_path"]).resolve() if r.get("audio_path") else None
    return {"path": Path(os.path.relpath(Path(r["path"]).resolve(), manifest_dir)).as_posix(),
            "audio_path": Path(os.path.relpath(audio, manifest_dir)).as_posix() if audio is not None else "",
            "transcript": r.get("transcript") or ""}


def _encrypt_record(r: dict, source: str, base: Path, tmp_raw: Path, rel_root: Path,
                    ring: secure_store.KeyRing) -> dict:
    """Encrypt a clip of an encrypted split (its separate audio and its transcript too) into the raw folder;
    its manifest paths, which name the ciphertext."""
    src = Path(r["path"]).resolve()
    audio = Path(r["audio_path"]).resolve() if r.get("audio_path") else None
    inner = _inner(source, src, base)
    path = (rel_root / inner).as_posix()
    (tmp_raw / inner).parent.mkdir(parents=True, exist_ok=True)
    secure_store.encrypt_file(src, tmp_raw / f"{inner}{secure_store.SUFFIX}", ring, name=path)
    audio_rel = ""
    if audio is not None and audio != src:
        audio_inner = _inner(source, audio, base)
        audio_rel = (rel_root / audio_inner).as_posix()
        (tmp_raw / audio_inner).parent.mkdir(parents=True, exist_ok=True)
        secure_store.encrypt_file(audio, tmp_raw / f"{audio_inner}{secure_store.SUFFIX}", ring, name=audio_rel)
        audio_rel += secure_store.SUFFIX
    elif audio is not None:
        audio_rel = path + secure_store.SUFFIX
    transcript = ""
    if r.get("transcript"):  # people's words in an encrypted split are ciphertext too
        t_inner = f"{inner}{TRANSCRIPT_SUFFIX}"
        transcript = (rel_root / t_inner).as_posix()
        secure_store.encrypt_bytes(r["transcript"].encode("utf-8"), tmp_raw / f"{t_inner}{secure_store.SUFFIX}",
                                   ring, name=transcript)
        transcript += secure_store.SUFFIX
    return {"path": Path(path + secure_store.SUFFIX).as_posix(),
            "audio_path": Path(audio_rel).as_posix() if audio_rel else "", "transcript": transcript}


def _corpus_summary(df: pd.DataFrame, scan, source: str) -> dict:
    summary = {**scan.summary(), "clips": len(df), "actors": int(df["actor"].nunique()),
               "encrypted_clips": int(df["encrypted"].sum()),
               "per_split": {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")},
               "per_label": {k: int(v) for k, v in df["label"].value_counts().sort_index().items()}}
    log.info("%s: %d clips from %d actors (train/val/test %s), %d encrypted at rest; %d file(s) not used, "
             "%d second copies of a recording left out", source, summary["clips"], summary["actors"],
             summary["per_split"], summary["encrypted_clips"], summary["rejected"], summary["duplicates"])
    for example in summary["rejected_examples"]:
        log.warning("not used: %s", example)
    return summary
