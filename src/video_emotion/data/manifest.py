"""The manifest: one row per clip, the contract between ingest and every later stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["path", "label", "actor", "split", "duration_s", "fps", "width", "height", "n_frames",
           "has_audio", "audio_path", "sha256", "source", "encrypted"]
SPLITS = ("train", "val", "test")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV with stable dtypes; raises ValueError naming missing columns."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: manifest not found")
    try:
        df = pd.read_csv(path, dtype={"actor": str, "path": str, "audio_path": str, "sha256": str,
                                      "label": str, "split": str}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV manifest ({exc})") from exc
    return df


def resolve(manifest_path: str | Path, rel: str) -> Path:
    """Clip paths in a manifest are relative to the manifest's folder (or absolute)."""
    p = Path(rel)
    return p if p.is_absolute() else (Path(manifest_path).parent / p)


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
