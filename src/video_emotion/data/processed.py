"""Processed splits: the per-split arrays that preprocess writes and training/evaluation read.

`{split}.npz` holds X (N, T, S, S) uint8 face crops, face (N, T) flags, y, actor, path, sha256 and,
with audio, A (N, mels, frames) and has_audio; an encrypted split exists only as `{split}.npz.enc`
and is decrypted in memory.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from video_emotion import security


class SplitError(ValueError):
    """A processed split that is missing or cannot be read (one clear line)."""


def split_name(folder: Path, split: str) -> str:
    """Logical name an encrypted split file is bound to, e.g. `processed/test.npz`."""
    return f"{Path(folder).name}/{split}.npz"


def is_encrypted(processed_dir: Path, split: str) -> bool:
    return (Path(processed_dir) / f"{split}.npz{security.SUFFIX}").is_file()


def save_split(folder: Path, split: str, arrays: dict[str, np.ndarray], ring: security.KeyRing | None,
               encrypt: bool) -> Path:
    """`{split}.npz`, or `{split}.npz.enc` (never plaintext on disk) for an encrypted split."""
    if not encrypt:
        np.savez(folder / f"{split}.npz", **arrays)
        return folder / f"{split}.npz"
    if ring is None:
        raise SplitError(f"split {split!r} must be encrypted but no data key was given")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    target = folder / f"{split}.npz{security.SUFFIX}"
    security.encrypt_bytes(buf.getvalue(), target, ring, name=split_name(folder, split))
    return target


def load_split(processed_dir: Path, split: str, ring: security.KeyRing | None = None) -> dict[str, np.ndarray]:
    """A processed split; an encrypted one (`.npz.enc`) is decrypted in memory only."""
    path = Path(processed_dir) / f"{split}.npz"
    enc = path.with_name(path.name + security.SUFFIX)
    if enc.is_file():
        if ring is None:
            raise SplitError(f"{enc}: the {split} split is encrypted; a data key is needed")
        source = io.BytesIO(security.decrypt_bytes(enc, ring, split_name(Path(processed_dir), split)))
    elif path.is_file():
        source = path
    else:
        raise SplitError(f"{path}: processed split not found; run the preprocess stage")
    with np.load(source, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def usable(d: dict[str, np.ndarray], modalities: list[str] = ("video",)) -> np.ndarray:
    """Clips that can teach or test the model: a face in at least one frame (video models), or an
    audio track (audio-only models)."""
    if "video" in modalities:
        return d["face"].any(axis=1)
    return d["has_audio"].astype(bool) if "has_audio" in d else np.zeros(len(d["y"]), bool)


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
