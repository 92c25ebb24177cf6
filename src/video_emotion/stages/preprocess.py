"""Stage `preprocess`: clips -> fixed-length sequences of grey face crops, one array file per split.

Uses the same `video` functions as serving. Every sampled frame carries a `face` flag: frames where
no face box applies hold a centre-crop fallback and are masked in training, never read as an
expression; clips where no frame has a face are kept out of training and counted in the summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from video_emotion.config import PreprocessConfig
from video_emotion import secure_store
from video_emotion.corpora.manifest import SPLITS, logical_name, read_manifest, resolve
from video_emotion.io_utils import atomic_path, write_json
from video_emotion.labels import LABELS
from video_emotion.stages.common import StageError, load, parser, run_main
from video_emotion.video import FaceDetector, VideoError, clip_faces

log = logging.getLogger("video_emotion.preprocess")


def process_clips(paths: list[Path], cfg: PreprocessConfig, desc: str = "clips",
                  names: list[str | None] | None = None, ring: secure_store.KeyRing | None = None) -> dict[str, Any]:
    """Face-crop sequences for a list of clips: X (N,T,S,S) uint8, face (N,T) bool, errors.

    Clips with a logical name in `names` are encrypted: each is decrypted to memory-backed scratch
    space only for as long as it is being read.
    """
    detector = FaceDetector(cfg.min_face_frac)
    n, t, s = len(paths), cfg.n_frames, cfg.image_size
    X = np.zeros((n, t, s, s), np.uint8)
    face = np.zeros((n, t), bool)
    detected = np.zeros((n, t), bool)
    errors: list[str] = []
    for i, path in enumerate(tqdm(paths, desc=desc, unit="clip", disable=None)):
        name = names[i] if names else None
        try:
            if name is not None:
                if ring is None:
                    raise secure_store.SecureStoreError(f"{path}: encrypted, but no data key was given")
                opened = secure_store.plaintext_path(path, ring, name, suffix=Path(name).suffix)
            else:
                opened = contextlib.nullcontext(path)
            with opened as readable:
                ff, _ = clip_faces(readable, cfg, detector)
        except VideoError as exc:
            errors.append(str(exc))
            continue
        k = len(ff.indices)
        X[i, :k] = ff.crops
        face[i, :k] = ff.face
        detected[i, :k] = ff.detected
    return {"X": X, "face": face, "detected": detected, "errors": errors}


def process_audio(paths: list[Path | None], names: list[str | None], ring, n_frames: int,
                  desc: str = "audio") -> tuple[np.ndarray, np.ndarray]:
    """Log-mel (N, N_MELS, n_frames) float16 and a has-audio flag per clip; encrypted sources are
    decrypted to memory-backed scratch only while ffmpeg reads them."""
    from video_emotion.audio import N_MELS, load_audio, log_mel

    A = np.zeros((len(paths), N_MELS, n_frames), np.float16)
    has = np.zeros(len(paths), bool)
    for i, (path, name) in enumerate(tqdm(list(zip(paths, names)), desc=desc, unit="clip", disable=None)):
        if path is None:
            continue
        opened = (secure_store.plaintext_path(path, ring, name, suffix=Path(name).suffix) if name
                  else contextlib.nullcontext(path))
        try:
            with opened as readable:
                samples = load_audio(readable, max_s=n_frames / 100 + 0.1)
        except ValueError:
            continue  # no audio stream: flagged, never invented
        if samples.size and np.abs(samples).max() > 1e-4:
            A[i] = log_mel(samples, n_frames)
            has[i] = True
    return A, has


def save_split(folder: Path, split: str, arrays: dict[str, np.ndarray], ring: secure_store.KeyRing | None,
               encrypt: bool) -> Path:
    """`{split}.npz`, or `{split}.npz.enc` (never plaintext on disk) for an encrypted split."""
    if not encrypt:
        np.savez(folder / f"{split}.npz", **arrays)
        return folder / f"{split}.npz"
    if ring is None:
        raise StageError(f"split {split!r} must be encrypted but no data key was given")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    target = folder / f"{split}.npz{secure_store.SUFFIX}"
    secure_store.encrypt_bytes(buf.getvalue(), target, ring, name=split_name(folder, split))
    return target


def split_name(folder: Path, split: str) -> str:
    """Logical name an encrypted split file is bound to, e.g. `processed/test.npz`."""
    return f"{Path(folder).name}/{split}.npz"


def run(cfg: PreprocessConfig, manifest_path: Path, out_dir: Path, encrypted_splits: list[str] = (),
        ring: secure_store.KeyRing | None = None) -> dict[str, Any]:
    """Write `{split}.npz[.enc]` and `preprocessing.json` under `out_dir` atomically; return a summary."""
    df = read_manifest(manifest_path)
    encrypted = df["encrypted"].astype(str).str.lower().eq("true") if "encrypted" in df.columns \
        else np.zeros(len(df), bool)
    summary: dict[str, Any] = {"n_frames": cfg.n_frames, "image_size": cfg.image_size, "splits": {}}
    # The temporal span one sequence covers: serving slides windows of this length.
    window_s = float(df["duration_s"].median()) if len(df) else 2.0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for split in SPLITS:
            sel = (df["split"] == split).to_numpy()
            part = df[sel].reset_index(drop=True)
            paths = [resolve(manifest_path, p) for p in part["path"]]
            names = [logical_name(p) if e else None for p, e in zip(part["path"], np.asarray(encrypted)[sel])]
            res = process_clips(paths, cfg, desc=f"preprocess {split}", names=names, ring=ring)
            if res["errors"]:
                raise StageError(f"{len(res['errors'])} clip(s) of the {split} split could not be read, "
                                 f"e.g. {res['errors'][0]}; fix or remove them and re-run ingest")
            y = np.array([LABELS.index(lab) for lab in part["label"]], np.int64)
            extra = {}
            if cfg.audio:
                from video_emotion.audio import n_audio_frames

                has_col = part["has_audio"].astype(str).str.lower().eq("true") if "has_audio" in part else None
                a_paths, a_names = [], []
                for j, row in part.iterrows():
                    rel = row.get("audio_path") or ""
                    if not rel or (has_col is not None and not has_col.iloc[j]):
                        a_paths.append(None)
                        a_names.append(None)
                        continue
                    a_paths.append(resolve(manifest_path, rel))
                    a_names.append(logical_name(rel) if rel.endswith(secure_store.SUFFIX) else None)
                A, has_audio = process_audio(a_paths, a_names, ring, n_audio_frames(window_s), desc=f"audio {split}")
                extra = {"A": A, "has_audio": has_audio}
            faces_per_clip = res["face"].sum(1)
            arrays = {"X": res["X"], "face": res["face"], "detected": res["detected"], "y": y,
                      "actor": part["actor"].to_numpy(str), "path": part["path"].to_numpy(str),
                      "sha256": part["sha256"].to_numpy(str), **extra}
            save_split(tmp, split, arrays, ring, encrypt=split in encrypted_splits)
            del arrays
            summary["splits"][split] = {
                "clips": int(len(part)),
                "clips_without_face": int((faces_per_clip == 0).sum()),
                "frame_face_rate": round(float(res["face"].mean()) if len(part) else 0.0, 4),
                "frame_detection_rate": round(float(res["detected"].mean()) if len(part) else 0.0, 4),
                "clips_with_audio": int(extra["has_audio"].sum()) if extra else 0,
            }
            log.info("%s: %d clips, face on %.1f%% of frames (detector fired on %.1f%%), %d clips without a face",
                     split, len(part), 100 * summary["splits"][split]["frame_face_rate"],
                     100 * summary["splits"][split]["frame_detection_rate"],
                     summary["splits"][split]["clips_without_face"])
        settings = {"labels": list(LABELS), **dataclasses.asdict(cfg), "window_s": round(window_s, 4)}
        write_json(tmp / "preprocessing.json", settings)
        write_json(tmp / "summary.json", summary)
    summary["data_hash"] = data_hash(out_dir)
    return summary


def data_hash(out_dir: Path) -> str:
    """A short content hash of the processed arrays, logged with every training run."""
    h = hashlib.sha256()
    for f in sorted(Path(out_dir).glob("*")):
        if f.is_file():
            h.update(f.name.encode())
            with f.open("rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    p = parser("Sample frames, detect and crop faces into per-split arrays (stage `preprocess`).")
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-dir", required=True)
    args = p.parse_args(argv)

    def body() -> None:
        params = load(args)
        splits = list(params.secure.encrypted_splits)
        ring = secure_store.load_keyring(params.secure.key_file) if splits else None
        run(params.preprocess, Path(args.manifest), Path(args.out_dir), splits, ring)

    return run_main("preprocess", body)


if __name__ == "__main__":
    raise SystemExit(main())
