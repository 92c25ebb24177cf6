"""The encrypted file format: AES-256-GCM, chunked, authenticated, name-bound.

File format (version 1)::

    magic "VEENC1" | key_id (8 bytes) | chunk_size (u32) | nonce_prefix (8 bytes)
    then chunks: u32 ciphertext length | ciphertext+tag

Chunk i is sealed with nonce = nonce_prefix || u32(i) and associated data = header || logical
name || u32(i) || final-flag, so that a flipped byte, a dropped or reordered chunk, a truncated file
(no chunk flagged final) and a file swapped for another (different logical name) all fail to
authenticate. Files stream through in chunks: a large clip is never held twice in memory.

The header is only authenticated with the first chunk, so nothing read from it is trusted before:
a chunk size outside [1, MAX_CHUNK] is refused at once (a tampered size would otherwise make the
reader allocate up to 4 GiB for a "chunk" before any check could fail).
"""

from __future__ import annotations

import io
import os
import secrets
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from video_emotion.security.keyring import KeyRing, SecureStoreError, key_id

MAGIC = b"VEENC1"
HEADER = struct.Struct(">6s8sI8s")
CHUNK = 1 << 20
MAX_CHUNK = 16 << 20  # writers use CHUNK; anything larger in a header is corruption or tampering
SUFFIX = ".enc"


def _aad(header: bytes, name: str, index: int, final: bool) -> bytes:
    return header + name.encode("utf-8") + struct.pack(">I?", index, final)


def encrypt_stream(src: io.BufferedIOBase, dst: io.BufferedIOBase, key: bytes, name: str, chunk: int = CHUNK) -> None:
    """Encrypt everything readable from `src` into `dst` under the logical `name`."""
    if not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk size must be in [1, {MAX_CHUNK}], got {chunk}")
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
        if not 1 <= chunk <= MAX_CHUNK:
            raise SecureStoreError(f"{path}: corrupt header (chunk size {chunk} outside 1..{MAX_CHUNK}; "
                                   "tampered or damaged)")
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
