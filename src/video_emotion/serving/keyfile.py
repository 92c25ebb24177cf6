"""The API key file: named keys stored as SHA-256 hashes, with their creation and revocation times.

One key per line, `name:sha256:<64 hex>`, optionally followed by `created=<ISO time>` and
`revoked=<ISO time>` (files written before these fields existed still load: their keys have no
creation time). A revoked key stays in the file, marked, so that `apikey list` keeps the history.
Keys are 256-bit random tokens, so an unsalted hash is enough to make a leaked key file useless.
Changes (create, revoke) take a lock and replace the file atomically with mode 0600, so that a
running service never reads half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from video_emotion.io_utils import write_private

PREFIX = "ve_"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FIELDS = ("created", "revoked")


class KeyFileError(ValueError):
    """A key file that cannot be used, with the file (and line) in the message."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KeyRecord:
    """One key of the file: its name, the SHA-256 of the key, when it was created and revoked."""

    name: str
    digest: bytes
    created: str | None = None
    revoked: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def line(self) -> str:
        extra = "".join(f" {f}={getattr(self, f)}" for f in FIELDS if getattr(self, f))
        return f"{self.name}:sha256:{self.digest.hex()}{extra}"


def parse_line(line: str, where: str) -> KeyRecord:
    name, sep, rest = line.partition(":sha256:")
    words = rest.split()
    bad = KeyFileError(f"{where}: expected `name:sha256:<64 hex> [created=...] [revoked=...]`")
    if not sep or not name or ":" in name or not words or len(words[0]) != 64:
        raise bad
    try:
        digest = bytes.fromhex(words[0])
    except ValueError:
        raise bad from None
    fields = dict(w.partition("=")[::2] for w in words[1:])
    if set(fields) - set(FIELDS) or not all(fields.values()):
        raise bad
    return KeyRecord(name, digest, fields.get("created"), fields.get("revoked"))


def parse(text: str, where: str) -> list[KeyRecord]:
    """Every key of a key file's text; `KeyFileError` on the first line that is not a key."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(parse_line(line, f"{where}:{n}"))
    return out


def mode_problem(path: Path) -> str | None:
    """Why a key file must not be trusted (group or others may read or change it), or None."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return (f"its mode {mode:03o} lets group or others read or change it; run `chmod 600 {path}` "
                "(its keys are not accepted until then)")
    return None


def read_records(path: Path) -> list[KeyRecord]:
    """The keys of a key file ([] if there is none); `KeyFileError` if it is open to others or corrupt,
    `OSError` if it cannot be read."""
    if not path.is_file():
        return []
    problem = mode_problem(path)
    if problem:
        raise KeyFileError(f"refusing the API key file {path}: {problem}")
    return parse(path.read_text(encoding="utf-8"), str(path))


def write_records(path: Path, records: list[KeyRecord]) -> None:
    """Replace the key file atomically (a reader sees the old or the new file, never half of one), 0600."""
    write_private(path, "".join(r.line() + "\n" for r in records))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the key file's folder while reading, changing and writing the file, so
    that two commands run at once cannot lose each other's change."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def hash_key(key: str) -> bytes:
    import hashlib

    return hashlib.sha256(key.encode("utf-8")).digest()


def create_key(name: str, path: Path) -> str:
    """A new random key under `name` (which must not name an active key); only its hash is stored.
    Returns the key, to be shown once."""
    if not NAME_RE.fullmatch(name):
        raise KeyFileError(f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    key = PREFIX + secrets.token_urlsafe(32)
    with locked(path):
        records = read_records(path)
        if any(r.name == name and r.active for r in records):
            raise KeyFileError(f"an active key named {name!r} already exists in {path}; revoke it first "
                               "or choose another name")
        write_records(path, [*records, KeyRecord(name, hash_key(key), created=now_iso())])
    return key


def revoke_key(name: str, path: Path) -> int:
    """Mark every active key named `name` revoked (they stay listed); how many were revoked."""
    with locked(path):
        records = read_records(path)
        when = now_iso()
        changed = [replace(r, revoked=when) if r.name == name and r.active else r for r in records]
        count = sum(a is not b for a, b in zip(records, changed, strict=True))
        if not count:
            known = "revoked already" if any(r.name == name for r in records) else "no such key"
            raise KeyFileError(f"cannot revoke {name!r} in {path}: {known}")
        write_records(path, changed)
    return count
