"""Stage `preprocess`: clips -> fixed-length sequences of grey face crops, one array file per split.

Uses the same `video` functions as serving. Every sampled frame carries a `face` flag: frames where
no face box applies hold a centre-crop fallback and are masked in training, never read as an
expression; clips where no frame has a face are kept out of training and counted in the summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from video_emotion.config import PreprocessConfig
from video_emotion.corpora.manifest import SPLITS, read_manifest, resolve
from video_emotion.io_utils import atomic_path, write_json
from video_emotion.labels import LABELS
from video_emotion.stages.common import StageError, load, parser, run_main
from video_emotion.video import FaceDetector, VideoError, clip_faces

log = logging.getLogger("video_emotion.preprocess")


def process_clips(paths: list[Path], cfg: PreprocessConfig, desc: str = "clips") -> dict[str, Any]:
    """Face-crop sequences for a list of clips: X (N,T,S,S) uint8, face (N,T) bool, errors."""
    detector = FaceDetector(cfg.min_face_frac)
    n, t, s = len(paths), cfg.n_frames, cfg.image_size
    X = np.zeros((n, t, s, s), np.uint8)
    face = np.zeros((n, t), bool)
    detected = np.zeros((n, t), bool)
    errors: list[str] = []
    ok = np.ones(n, bool)
    for i, path in enumerate(tqdm(paths, desc=desc, unit="clip", disable=None)):
        try:
            ff, _ = clip_faces(path, cfg, detector)
        except VideoError as exc:
            errors.append(str(exc))
            ok[i] = False
            continue
        k = len(ff.indices)
        X[i, :k] = ff.crops
        face[i, :k] = ff.face
        detected[i, :k] = ff.detected
    return {"X": X, "face": face, "detected": detected, "ok": ok, "errors": errors}


def run(cfg: PreprocessConfig, manifest_path: Path, out_dir: Path) -> dict[str, Any]:
    """Write `{split}.npz` and `preprocessing.json` under `out_dir` atomically; return a summary."""
    df = read_manifest(manifest_path)
    summary: dict[str, Any] = {"n_frames": cfg.n_frames, "image_size": cfg.image_size, "splits": {}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for split in SPLITS:
            part = df[df["split"] == split].reset_index(drop=True)
            paths = [resolve(manifest_path, p) for p in part["path"]]
            res = process_clips(paths, cfg, desc=f"preprocess {split}")
            if res["errors"]:
                raise StageError(f"{len(res['errors'])} clip(s) of the {split} split could not be read, "
                                 f"e.g. {res['errors'][0]}; fix or remove them and re-run ingest")
            y = np.array([LABELS.index(lab) for lab in part["label"]], np.int64)
            faces_per_clip = res["face"].sum(1)
            np.savez(tmp / f"{split}.npz", X=res["X"], face=res["face"], detected=res["detected"], y=y,
                     actor=part["actor"].to_numpy(str), path=part["path"].to_numpy(str),
                     sha256=part["sha256"].to_numpy(str))
            summary["splits"][split] = {
                "clips": int(len(part)),
                "clips_without_face": int((faces_per_clip == 0).sum()),
                "frame_face_rate": round(float(res["face"].mean()) if len(part) else 0.0, 4),
                "frame_detection_rate": round(float(res["detected"].mean()) if len(part) else 0.0, 4),
            }
            log.info("%s: %d clips, face on %.1f%% of frames (detector fired on %.1f%%), %d clips without a face",
                     split, len(part), 100 * summary["splits"][split]["frame_face_rate"],
                     100 * summary["splits"][split]["frame_detection_rate"],
                     summary["splits"][split]["clips_without_face"])
        # The temporal span one sequence covers: serving slides windows of this length.
        window_s = float(df["duration_s"].median()) if len(df) else 2.0
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
        run(params.preprocess, Path(args.manifest), Path(args.out_dir))

    return run_main("preprocess", body)


if __name__ == "__main__":
    raise SystemExit(main())
