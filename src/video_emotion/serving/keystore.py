"""The keys the running service accepts, by name: environment keys and the key file's active keys.

Keys come from `VIDEO_EMOTION_API_KEYS` (comma-separated plaintext, for containers and tests; named
`env-1`, `env-2`, ... in the order given) and/or the key file (`VIDEO_EMOTION_API_KEY_FILE`, default
~/.config/video-emotion/api_keys, format in keyfile.py). The key file is re-read whenever it changes
(checked by `stat` on each request, microseconds), so a key created or revoked takes effect on the
next request. It fails closed: a key file that turns unreadable, corrupt or open to group and others
after a change refuses every key it holds (the environment keys still work) until it is fixed, and the
log says why. Keys never appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from video_emotion.serving.keyfile import KeyFileError, KeyRecord, hash_key, read_records

log = logging.getLogger("video_emotion.serving.auth")

ENV_KEYS = "VIDEO_EMOTION_API_KEYS"
ENV_KEY_FILE = "VIDEO_EMOTION_API_KEY_FILE"
DEFAULT_KEY_FILE = "~/.config/video-emotion/api_keys"
MIN_KEY_CHARS = 16


def key_file_path() -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or DEFAULT_KEY_FILE).expanduser()


def env_keys(warn: bool = False) -> list[tuple[str, bytes]]:
    """(name, digest) of each environment key; with `warn`, short ones are logged as weak (by name)."""
    keys = [k.strip() for k in os.environ.get(ENV_KEYS, "").split(",") if k.strip()]
    out = []
    for i, key in enumerate(keys, 1):
        if warn and len(key) < MIN_KEY_CHARS:
            log.warning("weak API key: env-%d in %s has %d characters (fewer than %d) and can be guessed; use "
                        "`video-emotion apikey create` keys (256 bits) instead", i, ENV_KEYS, len(key), MIN_KEY_CHARS)
        out.append((f"env-{i}", hash_key(key)))
    return out


def token_of(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None for no header or another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def match(token: str | None, keys: list[tuple[str, bytes]]) -> str | None:
    """The name of the key `token` is, compared in constant time against every stored digest."""
    if not token:
        return None
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    found = None
    for name, h in keys:  # no early exit: timing does not depend on which key matched
        if hmac.compare_digest(digest, h):
            found = name
    return found


class ApiKeys:
    """The accepted keys, with the key file re-read whenever its `stat` changes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or key_file_path()
        self.env = env_keys(warn=True)
        self._signature = self._stat()
        self.file: list[tuple[str, bytes]] = []
        self.file_ok = True
        self._load()
        if not self.keys:
            log.warning("no API key configured (%s or %s): every protected request will get 401; create one "
                        "with `video-emotion apikey create --name NAME`", ENV_KEYS, self.path)

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode

    def _load(self) -> None:
        """Read the key file; on any problem refuse all of its keys (fail closed) and say why."""
        try:
            records: list[KeyRecord] = read_records(self.path) if self._signature is not None else []
        except (OSError, KeyFileError, UnicodeDecodeError) as exc:
            self.file, self.file_ok = [], False
            log.error("API key file %s cannot be used (%s): every key in it is refused until it is fixed",
                      self.path, exc)
            return
        self.file = [(r.name, r.digest) for r in records if r.active]
        self.file_ok = True

    @property
    def keys(self) -> list[tuple[str, bytes]]:
        """(name, digest) of every accepted key, the key file re-read first if it changed."""
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            self._load()
            if self.file_ok:
                log.info("API key file %s reloaded: %d active key(s)", self.path, len(self.file))
        return self.env + self.file

    hashes = keys  # the older name (callers pass it to `auth.is_valid`)

    def match(self, token: str | None) -> str | None:
        return match(token, self.keys)


def key_table(path: Path) -> str:
    """`apikey list`: every key of the key file by name, state, creation, revocation and last use (from the
    audit log); never a key or a hash."""
    from video_emotion.serving.audit import audit_path, last_use

    records = read_records(path)
    if not records:
        return f"no keys in {path}: create one with `video-emotion apikey create --name NAME`"
    used = last_use(audit_path(path))
    rows = [("NAME", "STATE", "CREATED", "REVOKED", "LAST USE")]
    rows += [(r.name, "active" if r.active else "revoked", r.created or "-", r.revoked or "-",
              used.get(r.name, "never")) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), row[4]]) for row in rows)
