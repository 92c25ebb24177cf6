"""Encryption at rest for the test split: AES-256-GCM, chunked, authenticated, name-bound.

File format (version 1)::

    magic "VEENC1" | key_id (8 bytes) | chunk_size (u32) | nonce_prefix (8 bytes)
    then chunks: u32 ciphertext length | ciphertext+tag

Chunk i is sealed with nonce = nonce_prefix || u32(i) and associated data = header || logical
name || u32(i) || final-flag, so that a flipped byte, a dropped or reordered chunk, a truncated file
(no chunk flagged final) and a file swapped for another (different logical name) all fail to
authenticate. Files stream through in chunks: a large clip is never held twice in memory.

Keys: `VIDEO_EMOTION_DATA_KEY` (base64 of 32 bytes) or a key-ring file (JSON, 0600, outside the
repository by default) holding the current key and, during a rotation, the previous one. A file's
header names its key id, so a rotation interrupted half-way leaves every file readable.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"VEENC1"
HEADER = struct.Struct(">6s8sI8s")
CHUNK = 1 << 20
SUFFIX = ".enc"
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
    fd, tmp = tempfile.mkstemp(prefix=".key.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_key() -> bytes:
    return secrets.token_bytes(32)


def _aad(header: bytes, name: str, index: int, final: bool) -> bytes:
    return header + name.encode("utf-8") + struct.pack(">I?", index, final)


def encrypt_stream(src: io.BufferedIOBase, dst: io.BufferedIOBase, key: bytes, name: str, chunk: int = CHUNK) -> None:
    """Encrypt everything readable from `src` into `dst` under the logical `name`."""
    prefix = secrets.token_bytes(8)
    header = HEADER.pack(MAGIC, key_id(key), chunk, prefix)
    aes = AESGCM(key)
    dst.write(header)
    index = 0
    block = src.read(chunk)
    while True:
        nxt = src.read(chunk) if block else b""
        final = not nxt
        sealed = aes.encrypt(prefix + struct.pack(">I", index), block, _aad(header, name, index, final))
        dst.write(struct.pack(">I", len(sealed)))
        dst.write(sealed)
        if final:
            return
        block, index = nxt, index + 1


def decrypt_stream(path: str | Path, ring: KeyRing, name: str) -> Iterator[bytes]:
    """Yield the plaintext chunks of an encrypted file; raise SecureStoreError naming the file."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SecureStoreError(f"{path}: cannot open ({exc.strerror})") from None
    with fh:
        header = fh.read(HEADER.size)
        if len(header) < HEADER.size:
            raise SecureStoreError(f"{path}: truncated (no complete header)")
        magic, kid, chunk, prefix = HEADER.unpack(header)
        if magic != MAGIC:
            raise SecureStoreError(f"{path}: not a video-emotion encrypted file (bad magic)")
        if kid not in ring.keys:
            raise SecureStoreError(f"{path}: encrypted with key id {kid.hex()}, which is not the configured key "
                                   f"({ring.current.hex() or 'none'} from {ring.source}): wrong key")
        aes = AESGCM(ring.keys[kid])
        index = 0
        while True:
            raw_len = fh.read(4)
            if len(raw_len) < 4:
                raise SecureStoreError(f"{path}: truncated (ends after chunk {index} without its final chunk)")
            (n,) = struct.unpack(">I", raw_len)
            if n > chunk + 16:
                raise SecureStoreError(f"{path}: corrupt chunk length at chunk {index}")
            sealed = fh.read(n)
            if len(sealed) < n:
                raise SecureStoreError(f"{path}: truncated inside chunk {index}")
            nonce = prefix + struct.pack(">I", index)
            plain = None
            for final in (False, True):
                try:
                    plain = aes.decrypt(nonce, sealed, _aad(header, name, index, final))
                    break
                except InvalidTag:
                    continue
            if plain is None:
                raise SecureStoreError(f"{path}: authentication failed at chunk {index} (tampered, corrupted, "
                                       f"or not the file {name!r}: swapped)")
            yield plain
            if final:
                if fh.read(1):
                    raise SecureStoreError(f"{path}: trailing bytes after the final chunk")
                return
            index += 1


def _encrypt_to(src: io.BufferedIOBase, dst: str | Path, ring: KeyRing, name: str) -> None:
    """Encrypt a stream to `dst` atomically and durably: a crash leaves either the old `dst` or the
    new one (rotation relies on this), never a torn file."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as d:
            encrypt_stream(src, d, ring.current_key, name)
            d.flush()
            os.fsync(d.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encrypt_file(src: str | Path, dst: str | Path, ring: KeyRing, name: str) -> None:
    """Encrypt the file `src` to `dst`, streaming (see `_encrypt_to`)."""
    with open(src, "rb") as s:
        _encrypt_to(s, dst, ring, name)


def encrypt_bytes(data: bytes, dst: str | Path, ring: KeyRing, name: str) -> None:
    """Encrypt in-memory `data` to `dst` (see `_encrypt_to`)."""
    _encrypt_to(io.BytesIO(data), dst, ring, name)


def decrypt_bytes(path: str | Path, ring: KeyRing, name: str) -> bytes:
    buf = bytearray()
    for block in decrypt_stream(path, ring, name):
        buf += block
    return bytes(buf)


def key_of_file(path: str | Path) -> bytes:
    with open(path, "rb") as fh:
        header = fh.read(HEADER.size)
    if len(header) < HEADER.size or header[:6] != MAGIC:
        raise SecureStoreError(f"{path}: not a video-emotion encrypted file")
    return HEADER.unpack(header)[1]


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


def rotate(files: list[tuple[Path, str]], key_file: str | Path) -> dict[str, int]:
    """Re-encrypt `files` ((path, logical name) pairs) under a new key, crash-safely.

    1. the new key is added to the ring as current (old key kept) and the ring is saved;
    2. each file is re-encrypted to a temp file and swapped in atomically;
    3. only when all files are done is the old key dropped from the ring.
    A crash at any point leaves every file readable with a key in the saved ring; running rotate
    again finishes the job (files already under the new key are skipped).
    """
    if os.environ.get(ENV_KEY):
        raise SecureStoreError(f"keys come from ${ENV_KEY}; rotate with a key file (unset it first)")
    ring = load_keyring(key_file)
    pending_new = [kid for kid in ring.keys if kid != ring.current]
    if not pending_new:  # a fresh rotation: add a new current key, keep the old one readable
        ring.add(new_key(), make_current=True)
        save_keyring(ring, key_file)
    done = skipped = 0
    for path, name in files:
        if key_of_file(path) == ring.current:
            skipped += 1
            continue
        plain = decrypt_bytes(path, ring, name)
        encrypt_bytes(plain, path, ring, name)
        done += 1
    ring.keys = {ring.current: ring.current_key}
    save_keyring(ring, key_file)
    return {"reencrypted": done, "already_current": skipped}
