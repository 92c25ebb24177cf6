"""Security: the encrypted at-rest format, the data key ring, key rotation and plaintext scratch.

The lowest floor of the package (it imports nothing else of it): the test split (people's faces and
voices in real corpora) exists on disk only as AES-256-GCM ciphertext; everything above reads it
through these functions.
"""

from video_emotion.security.format import (
                                           CHUNK,
                                           HEADER,
                                           MAGIC,
                                           MAX_CHUNK,
                                           SUFFIX,
                                           decrypt_bytes,
                                           decrypt_stream,
                                           encrypt_bytes,
                                           encrypt_file,
                                           encrypt_stream,
                                           key_of_file,
)
from video_emotion.security.keyring import (
                                           ENV_KEY,
                                           KeyRing,
                                           SecureStoreError,
                                           init_key_file,
                                           key_action,
                                           key_id,
                                           load_keyring,
                                           new_key,
                                           save_keyring,
)
from video_emotion.security.rotation import rotate
from video_emotion.security.scratch import plaintext_path, scratch_dir

__all__ = ["CHUNK", "ENV_KEY", "HEADER", "MAGIC", "MAX_CHUNK", "SUFFIX", "KeyRing", "SecureStoreError", "decrypt_bytes",
           "decrypt_stream", "encrypt_bytes", "encrypt_file", "encrypt_stream", "init_key_file", "key_action", "key_id",
           "key_of_file",
           "load_keyring", "new_key", "plaintext_path", "rotate", "save_keyring", "scratch_dir"]
