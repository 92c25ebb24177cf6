"""Stage `preprocess`: clips -> fixed-length sequences of grey face crops, one array file per split.

Uses the same face path as serving. Every sampled frame carries a `face` flag: frames where no face
box applies hold a centre-crop fallback and are masked in training, never read as an expression;
clips where no frame has a face are kept out of training and counted in the summary.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from video_emotion import security
from video_emotion.config import PreprocessConfig
from video_emotion.data.manifest import SPLITS, logical_name, read_manifest, resolve
from video_emotion.data.processed import data_hash, save_split
from video_emotion.features.clips import process_audio
from video_emotion.features.faces import save_face_models
from video_emotion.io_utils import atomic_path, write_json
from video_emotion.labels import LABELS
from video_emotion.scale.preprocess import clip_cropper, engine_session
from video_emotion.stages.runner import Context, Stage, StageError, param_path

log = logging.getLogger("video_emotion.preprocess")

STAGE = Stage("preprocess", "Sample frames, detect and crop faces into per-split arrays (stage `preprocess`).",
              reads={"manifest": param_path("manifest"), "face_models": param_path("face_models")},
              writes={"out_dir": param_path("processed_dir")})


def run(cfg: PreprocessConfig, manifest_path: Path, out_dir: Path, encrypted_splits: list[str] = (),
        ring: security.KeyRing | None = None, face_models: Path | None = None) -> dict[str, Any]:
    """Write `{split}.npz[.enc]`, `preprocessing.json` and the face detector used (`face_detector/`, which
    training puts into the model bundle) under `out_dir` atomically; return a summary."""
    df = read_manifest(manifest_path)
    encrypted = df["encrypted"].astype(str).str.lower().eq("true") if "encrypted" in df.columns \
        else np.zeros(len(df), bool)
    summary: dict[str, Any] = {"n_frames": cfg.n_frames, "image_size": cfg.image_size, "splits": {}}
    # The temporal span one sequence covers: serving slides windows of this length.
    window_s = float(df["duration_s"].median()) if len(df) else 2.0
    with atomic_path(out_dir) as tmp, engine_session(cfg.engine):
        tmp.mkdir(parents=True)
        save_face_models(cfg, face_models, tmp)
        for split in SPLITS:
            sel = (df["split"] == split).to_numpy()
            part = df[sel].reset_index(drop=True)
            paths = [resolve(manifest_path, p) for p in part["path"]]
            names = [logical_name(p) if e else None
                     for p, e in zip(part["path"], np.asarray(encrypted)[sel], strict=False)]
            res = clip_cropper(cfg.engine)(paths, cfg, desc=f"preprocess {split}", names=names, ring=ring,
                                           face_models=face_models)
            if res["errors"]:
                raise StageError(f"{len(res['errors'])} clip(s) of the {split} split could not be read, "
                                 f"e.g. {res['errors'][0]}; fix or remove them and re-run ingest")
            y = np.array([LABELS.index(lab) for lab in part["label"]], np.int64)
            extra = _audio_arrays(part, manifest_path, ring, window_s, split) if cfg.audio else {}
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
        del settings["engine"]  # how the arrays were made, not what they are: outputs are engine-free
        write_json(tmp / "preprocessing.json", settings)
        write_json(tmp / "summary.json", summary)
    summary["data_hash"] = data_hash(out_dir)
    return summary


def _audio_arrays(part, manifest_path: Path, ring: security.KeyRing | None, window_s: float,
                  split: str) -> dict[str, np.ndarray]:
    """The split's log-mel spectrograms (`A`) and which clips have audio (`has_audio`)."""
    from video_emotion.features.audio import n_audio_frames

    has_col = part["has_audio"].astype(str).str.lower().eq("true") if "has_audio" in part else None
    audio_paths, audio_names = [], []
    for j, row in part.iterrows():
        rel = row.get("audio_path") or ""
        if not rel or (has_col is not None and not has_col.iloc[j]):
            audio_paths.append(None)
            audio_names.append(None)
            continue
        audio_paths.append(resolve(manifest_path, rel))
        audio_names.append(logical_name(rel) if rel.endswith(security.SUFFIX) else None)
    spectrograms, has_audio = process_audio(audio_paths, audio_names, ring, n_audio_frames(window_s),
                                            desc=f"audio {split}")
    return {"A": spectrograms, "has_audio": has_audio}


def body(ctx: Context) -> None:
    splits = ctx.encrypted_splits
    run(ctx.params.preprocess, ctx.path("manifest"), ctx.path("out_dir"), splits, ctx.ring_if(bool(splits)),
        ctx.path("face_models"))


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
