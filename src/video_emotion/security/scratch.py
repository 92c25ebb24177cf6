"""Plaintext that must exist as a file for a moment, kept in private memory-backed storage.

Where the system has no writable /dev/shm (macOS, some containers) the plaintext has to touch a
disk: it then goes into a fresh owner-only (0700) folder, removed with the file, and a warning says
so every time, so that nobody believes the test split never touched a disk when it did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from video_emotion.security.format import decrypt_stream
from video_emotion.security.keyring import KeyRing

log = logging.getLogger("video_emotion.security.scratch")


def _memory_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _scratch_root() -> str | None:
    """Memory-backed storage, or None (the disk's temp folder) after a loud warning."""
    memory = _memory_dir()
    if memory is None:
        log.warning("no memory-backed storage (/dev/shm): decrypted plaintext is written to disk under %s, in a "
                    "private 0700 folder that is removed after use", tempfile.gettempdir())
    return memory


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private (0700) scratch folder, in memory-backed storage where the system has it (see the
    module notes), for plaintext that must exist as a file for a moment."""
    with tempfile.TemporaryDirectory(prefix="video-emotion-", dir=_scratch_root()) as d:
        os.chmod(d, 0o700)
        yield Path(d)


@contextlib.contextmanager
def plaintext_path(path: str | Path, ring: KeyRing, name: str, suffix: str = "") -> Iterator[Path]:
    """A decrypted copy for readers that need a file name (OpenCV): owner-only (0600) inside a
    private scratch folder, deleted with it on exit whatever happens."""
    with scratch_dir() as folder:
        tmp = folder / f"plain{suffix}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for block in decrypt_stream(path, ring, name):
                    out.write(block)
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)
