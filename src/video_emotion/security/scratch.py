"""Plaintext that must exist as a file for a moment, kept in private memory-backed storage."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from video_emotion.security.format import decrypt_stream
from video_emotion.security.keyring import KeyRing


def _memory_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def plaintext_path(path: str | Path, ring: KeyRing, name: str, suffix: str = "") -> Iterator[Path]:
    """A decrypted copy for readers that need a file name (OpenCV), in memory-backed storage
    (/dev/shm) where the system has it, owner-only, deleted on exit whatever happens."""
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=_memory_dir())
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            for block in decrypt_stream(path, ring, name):
                out.write(block)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private scratch folder in memory-backed storage where possible (for plaintext that must
    exist as a file for a moment, e.g. a clip being encoded before it is encrypted)."""
    with tempfile.TemporaryDirectory(prefix="video-emotion-", dir=_memory_dir()) as d:
        os.chmod(d, 0o700)
        yield Path(d)
