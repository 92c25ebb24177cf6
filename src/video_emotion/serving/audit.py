"""The audit log: one JSON line per keyed request and per refusal, in a private file rotated by size.

`VIDEO_EMOTION_AUDIT_LOG` names it (default: beside the key file, `<key file>.audit.jsonl`); it is
created with mode 0600 and rotated at `VIDEO_EMOTION_AUDIT_LOG_MAX_MB` (10) to `.1` ... `.5`. A line:

    {"time": "2026-12-03T08:15:02.113Z", "key": "alice", "client": "10.0.0.7", "method": "POST",
     "path": "/analyze", "status": 200, "bytes_in": 1048213, "seconds": 2.481, "request_id": "9f0c..."}

`key` is the key's name (`-` when no valid key was given), never the key; refusals add `reason`. The
path is the client's text and is written JSON-escaped (and cut at 200 characters); uploaded file names
are not written at all. Several server processes may share the file: each line is one `write` on an
append-only descriptor under an exclusive lock, and a process that finds the file rotated reopens it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("video_emotion.serving.audit")

ENV_AUDIT_LOG = "VIDEO_EMOTION_AUDIT_LOG"
ENV_MAX_MB = "VIDEO_EMOTION_AUDIT_LOG_MAX_MB"
BACKUPS = 5
MAX_PATH = 200


def audit_path(key_file: Path) -> Path:
    return Path(os.environ.get(ENV_AUDIT_LOG) or f"{key_file}.audit.jsonl").expanduser()


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AuditLog:
    """Appends audit records as JSON lines; a failure to write is logged (once), never raised:
    the audit must not take the service down."""

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes or int(float(os.environ.get(ENV_MAX_MB, "10")) * (1 << 20))
        self.backups = backups
        self._fd: int | None = None
        self._warned = False

    def _open(self) -> int:
        if self._fd is not None:
            try:  # rotated (or removed) by another process: reopen the path
                if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(self._fd, 0o600)
        return self._fd

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{i}")
            if older.exists():
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _lock(self) -> int:
        """The descriptor of the current file, locked (a process that rotated it meanwhile moved it away)."""
        for _ in range(5):
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        raise OSError(f"{self.path} keeps being moved away")

    def write(self, record: dict[str, Any]) -> None:
        record = {**record, "path": str(record.get("path", ""))[:MAX_PATH]}
        data = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        try:
            fd = self._lock()
            try:
                size = os.fstat(fd).st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    fd = self._lock()
                os.write(fd, data)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            if not self._warned:
                log.error("cannot write the audit log %s: %s", self.path, exc)
                self._warned = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def last_use(path: Path, backups: int = BACKUPS) -> dict[str, str]:
    """The time of each key name's latest request in the audit log and its rotated files."""
    seen: dict[str, str] = {}
    for f in [path, *(Path(f"{path}.{i}") for i in range(1, backups + 1))]:
        try:
            lines = f.read_text(encoding="ascii", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
                name, when = rec["key"], rec["time"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line says nothing about any key
            if isinstance(name, str) and name != "-" and isinstance(when, str) and when > seen.get(name, ""):
                seen[name] = when
    return seen
