"""Features of whole clips for training: face-crop sequences and audio log-mels per clip.

Uses the same face path as serving (`features.faces`). Encrypted clips are decrypted to
memory-backed scratch space only while they are read.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from video_emotion import security
from video_emotion.config import PreprocessConfig
from video_emotion.features.blazeface import DEFAULT_MODEL_DIR
from video_emotion.features.faces import FacePath
from video_emotion.features.video import VideoError


def process_clips(paths: list[Path], cfg: PreprocessConfig, desc: str = "clips",
                  names: list[str | None] | None = None, ring: security.KeyRing | None = None,
                  face_models: Path | None = None) -> dict[str, Any]:
    """Face-crop sequences for a list of clips: X (N,T,S,S) uint8, face (N,T) bool, errors.

    Clips with a logical name in `names` are encrypted: each is decrypted to memory-backed scratch
    space only for as long as it is being read. `face_models`: the BlazeFace models' folder
    (`paths.face_models`; the stage passes it, the default is the project's models/pretrained).
    """
    faces = FacePath(cfg, face_models or DEFAULT_MODEL_DIR)
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
                    raise security.SecureStoreError(f"{path}: encrypted, but no data key was given")
                opened = security.plaintext_path(path, ring, name, suffix=Path(name).suffix)
            else:
                opened = contextlib.nullcontext(path)
            with opened as readable:
                ff, _ = faces.clip(readable)
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
    from video_emotion.features.audio import N_MELS, load_audio, segment_features

    A = np.zeros((len(paths), N_MELS, n_frames), np.float16)
    has = np.zeros(len(paths), bool)
    for i, (path, name) in enumerate(tqdm(list(zip(paths, names, strict=False)), desc=desc, unit="clip", disable=None)):
        if path is None:
            continue
        opened = (security.plaintext_path(path, ring, name, suffix=Path(name).suffix) if name
                  else contextlib.nullcontext(path))
        try:
            with opened as readable:
                samples = load_audio(readable, max_s=n_frames / 100 + 0.1)
        except ValueError:
            continue  # no audio stream: flagged, never invented
        feats, has[i] = segment_features(samples, n_frames)
        A[i] = feats
    return A, has
