"""The encrypted files of a project, and an audit for test data that leaked into plaintext.

Key rotation needs every file the pipeline encrypted (clips in the manifest, processed splits); the
audit scans the whole project tree (DVC cache and MLflow artifacts included) for a test clip or test
frames in the clear.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from video_emotion import security
from video_emotion.data.manifest import logical_name, read_manifest, resolve
from video_emotion.data.processed import split_name
from video_emotion.io_utils import sha256_file


def encrypted_files(manifest: Path, processed_dir: Path) -> list[tuple[Path, str]]:
    """(path, logical name) of every encrypted clip, audio file, transcript and processed split."""
    files: list[tuple[Path, str]] = []
    if manifest.is_file():
        df = read_manifest(manifest)
        for col in ("path", "audio_path", "transcript"):
            for rel in df[col]:
                if isinstance(rel, str) and rel.endswith(security.SUFFIX):
                    files.append((resolve(manifest, rel), logical_name(rel)))
    for enc in sorted(Path(processed_dir).glob(f"*.npz{security.SUFFIX}")):
        files.append((enc, split_name(processed_dir, enc.name[: -len(".npz" + security.SUFFIX)])))
    return files


def _magic(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4)


def find_plaintext(root: Path, manifest: Path, encrypted_splits: list[str]) -> tuple[list[str], int, int]:
    """(findings, files scanned, encrypted-split clips known): a finding names a file holding a test
    clip (same sha256) or test frames (an array file listing a test clip's sha256) in plaintext."""
    df = read_manifest(manifest)
    secret = set(df.loc[df["split"].isin(encrypted_splits), "sha256"])
    found, scanned = [], 0
    for f in Path(root).rglob("*"):
        if not f.is_file() or ".venv" in f.parts or ".git" in f.parts:
            continue
        scanned += 1
        if f.stat().st_size > 64 and sha256_file(f) in secret:
            found.append(f"{f}: a test clip in plaintext")
        elif f.suffix == ".npz" or _magic(f) == b"PK\x03\x04":
            try:
                with np.load(f, allow_pickle=False) as d:
                    if "sha256" in d.files and set(d["sha256"].tolist()) & secret:
                        found.append(f"{f}: test frames in plaintext")
            except Exception:
                continue
    return found, scanned, len(secret)


def rotate_project(params, dvc_commit: bool = True) -> str:
    """Re-encrypt every encrypted file of the project under a new key; record it in dvc.lock."""
    out = security.rotate(encrypted_files(params.path("manifest"), params.path("processed_dir")),
                          Path(params.secure.key_file).expanduser())
    ring = security.load_keyring(Path(params.secure.key_file).expanduser())
    message = (f"rotated to key id {ring.current.hex()}: {out['reencrypted']} file(s) re-encrypted, "
               f"{out['already_current']} already under the new key")
    if dvc_commit and (params.root / "dvc.lock").is_file():
        import subprocess

        subprocess.run(["dvc", "commit", "--force", "--quiet", "ingest", "preprocess"], cwd=params.root, check=False)
        message += "\nrecorded the new ciphertext in dvc.lock (dvc commit ingest preprocess)"
    return message
