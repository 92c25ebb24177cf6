"""Key rotation: re-encrypt every encrypted file under a new key, crash-safely."""

from __future__ import annotations

import os
from pathlib import Path

from video_emotion.security.format import decrypt_bytes, encrypt_bytes, key_of_file
from video_emotion.security.keyring import (
    ENV_KEY,
    SecureStoreError,
    load_keyring,
    new_key,
    save_keyring,
)


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
    old_keys = [kid for kid in ring.keys if kid != ring.current]  # left by an unfinished rotation
    if not old_keys:  # a fresh rotation: add a new current key, keep the old one readable
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
