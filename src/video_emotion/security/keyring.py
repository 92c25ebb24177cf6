"""Data keys: `VIDEO_EMOTION_DATA_KEY` (base64 of 32 bytes) or a key-ring file (JSON, 0600, outside
the repository by default) holding the current key and, during a rotation, the previous one. A file's
header names its key id, so a rotation interrupted half-way leaves every file readable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from video_emotion.io_utils import write_private

ENV_KEY = "VIDEO_EMOTION_DATA_KEY"


class SecureStoreError(ValueError):
    """A key or ciphertext problem, with a one-line message naming the file."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"video-emotion key id" + key).digest()[:8]


@dataclass
class KeyRing:
    """Keys by id; `current` encrypts, any key whose id a file names decrypts."""

    keys: dict[bytes, bytes] = field(default_factory=dict)
    current: bytes = b""
    source: str = ""

    def add(self, key: bytes, make_current: bool = True) -> bytes:
        if len(key) != 32:
            raise SecureStoreError(f"{self.source}: a data key must be 32 bytes (AES-256), got {len(key)}")
        kid = key_id(key)
        self.keys[kid] = key
        if make_current:
            self.current = kid
        return kid

    @property
    def current_key(self) -> bytes:
        if not self.current:
            raise SecureStoreError(f"{self.source}: no current data key")
        return self.keys[self.current]


def _decode(b64: str, where: str) -> bytes:
    try:
        return base64.b64decode(b64.strip(), validate=True)
    except (ValueError, TypeError) as exc:
        raise SecureStoreError(f"{where}: not valid base64 ({exc})") from None


def load_keyring(key_file: str | Path | None) -> KeyRing:
    """The key from the environment if set, else the key-ring file; a clear error if neither."""
    env = os.environ.get(ENV_KEY)
    if env:
        ring = KeyRing(source=f"${ENV_KEY}")
        ring.add(_decode(env, f"${ENV_KEY}"))
        return ring
    if key_file is None:
        raise SecureStoreError(f"no data key: set {ENV_KEY} or run `video-emotion keys init`")
    path = Path(key_file).expanduser()
    if not path.is_file():
        raise SecureStoreError(f"no data key at {path}: run `video-emotion keys init` (or set {ENV_KEY})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        ring = KeyRing(source=str(path))
        for k in raw["keys"]:
            ring.add(_decode(k, str(path)), make_current=False)
        ring.current = bytes.fromhex(raw["current"])
        if ring.current not in ring.keys:
            raise SecureStoreError(f"{path}: current key id {raw['current']} is not in the ring")
        return ring
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise SecureStoreError(f"{path}: not a video-emotion key file ({exc})") from None


def save_keyring(ring: KeyRing, key_file: str | Path) -> None:
    """Write the ring atomically with owner-only permissions."""
    path = Path(key_file).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps({"current": ring.current.hex(),
                       "keys": [base64.b64encode(k).decode() for k in ring.keys.values()]})
    write_private(path, data)


def new_key() -> bytes:
    return secrets.token_bytes(32)


def init_key_file(key_file: str | Path, force: bool = False) -> bytes:
    """Create a key ring with one new key; refuse to replace an existing one unless `force`."""
    path = Path(key_file).expanduser()
    if path.is_file() and not force:
        raise SecureStoreError(f"{path} already exists (use --force to replace it: data encrypted with the old "
                               "key becomes unreadable)")
    ring = KeyRing(source=str(path))
    kid = ring.add(new_key())
    save_keyring(ring, path)
    return kid


def key_action(action: str, key_file: str | Path, force: bool = False) -> str | None:
    """`keys init|ensure|status` of the CLI: what was done, in one sentence (None: nothing to say)."""
    path = Path(key_file).expanduser()
    if action == "status":
        ring = load_keyring(path)
        unfinished = f" ({len(ring.keys) - 1} previous key(s): a rotation is unfinished)" if len(ring.keys) > 1 else ""
        return f"data key id {ring.current.hex()} from {ring.source}{unfinished}"
    if os.environ.get(ENV_KEY):
        return f"data key comes from ${ENV_KEY}; nothing to create"
    if action == "ensure" and path.is_file():
        return None
    kid = init_key_file(path, force=force)
    return (f"created a new data key (id {kid.hex()}) in {path} (permissions 0600). It encrypts the test split at "
            "rest; keep it out of the repository and back it up.")
