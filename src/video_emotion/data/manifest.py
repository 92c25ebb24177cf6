"""The manifest: one row per clip, the contract between ingest and every later stage.

`transcript` (added later; a manifest without it reads as all empty) holds what the clip's person
says, from the own-data CSV. For a clip of an encrypted split it holds instead the path of an
encrypted text file (`<clip>.transcript.txt.enc`): people's words in the test split are kept as
ciphertext like their faces and voices. `transcript_of` reads either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["path", "label", "actor", "split", "duration_s", "fps", "width", "height", "n_frames",
           "has_audio", "audio_path", "sha256", "source", "encrypted", "transcript"]
TRANSCRIPT_SUFFIX = ".transcript.txt"  # + the encrypted suffix: the transcript of an encrypted clip
SPLITS = ("train", "val", "test")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV with stable dtypes; raises ValueError naming missing columns."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    try:
        df = pd.read_csv(path, dtype={"actor": str, "path": str, "audio_path": str, "sha256": str,
                                      "label": str, "split": str, "transcript": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV manifest ({exc})") from exc
    if "transcript" not in df.columns:  # a manifest written before the column existed
        df["transcript"] = ""
    return df


def resolve(manifest_path: str | Path, rel: str) -> Path:
    """Clip paths in a manifest are relative to the manifest's folder (or absolute)."""
    p = Path(rel)
    return p if p.is_absolute() else (Path(manifest_path).parent / p)


def transcript_of(manifest_path: str | Path, row, ring=None) -> str:
    """A manifest row's transcript ("" when it has none); an encrypted one is decrypted with `ring`."""
    from video_emotion import security

    cell = str(row.get("transcript") or "")
    if not (str(row.get("encrypted")).lower() == "true" and cell.endswith(TRANSCRIPT_SUFFIX + security.SUFFIX)):
        return cell
    if ring is None:
        raise security.SecureStoreError(f"{cell}: the transcript is encrypted, but no data key was given")
    return security.decrypt_bytes(resolve(manifest_path, cell), ring, logical_name(cell)).decode("utf-8")


def logical_name(manifest_rel_path: str) -> str:
    """The name an encrypted clip is bound to: its manifest path without the `.enc` suffix."""
    return manifest_rel_path[:-4] if manifest_rel_path.endswith(".enc") else manifest_rel_path


def actor_disjoint_splits(actors: list[str], n_val: int, n_test: int, seed: int) -> dict[str, str]:
    """Assign every actor to exactly one split, deterministically in `seed`."""
    uniq = sorted(set(actors))
    if len(uniq) < n_val + n_test + 1:
        raise ValueError(f"{len(uniq)} actors cannot fill {n_val} val + {n_test} test actors and a train split")
    order = np.random.default_rng(seed).permutation(len(uniq))
    out = {}
    for rank, i in enumerate(order):
        out[uniq[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def actor_folds(actors: list[str], k: int, seed: int) -> dict[str, int]:
    """Every actor in exactly one of `k` folds (sizes differ by at most one), deterministic in `seed`."""
    uniq = sorted(set(actors))
    if len(uniq) < k:
        raise ValueError(f"{len(uniq)} actors cannot fill {k} actor-independent folds")
    order = np.random.default_rng(seed).permutation(len(uniq))
    return {uniq[i]: rank % k for rank, i in enumerate(order)}
