"""API keys for the service: creation, hashed storage, constant-time checks, an ASGI middleware.

Keys come from `VIDEO_EMOTION_API_KEYS` (comma-separated plaintext, for containers and tests) and/or
a key file (`VIDEO_EMOTION_API_KEY_FILE`, default ~/.config/video-emotion/api_keys) that stores only
SHA-256 hashes, one `name:sha256:<hex>` per line. Keys are 256-bit random tokens, so an unsalted
hash is enough to make a leaked key file useless. Keys never appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger("video_emotion.serving.auth")

ENV_KEYS = "VIDEO_EMOTION_API_KEYS"
ENV_KEY_FILE = "VIDEO_EMOTION_API_KEY_FILE"
DEFAULT_KEY_FILE = "~/.config/video-emotion/api_keys"
PREFIX = "ve_"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_file_path() -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or DEFAULT_KEY_FILE).expanduser()


def load_hashes() -> list[bytes]:
    """Digests of every accepted key (environment and key file)."""
    out = [bytes.fromhex(hash_key(k.strip())) for k in os.environ.get(ENV_KEYS, "").split(",") if k.strip()]
    path = key_file_path()
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(":", 2)
            if len(parts) != 3 or parts[1] != "sha256" or len(parts[2]) != 64:
                raise ValueError(f"{path}:{n}: expected `name:sha256:<64 hex>`")
            out.append(bytes.fromhex(parts[2]))
    return out


def create_key(name: str, path: Path | None = None) -> str:
    """A new random key; its hash is appended to the key file (0600). Returns the key (shown once)."""
    if ":" in name or "\n" in name:
        raise ValueError("a key name cannot contain ':' or a newline")
    key = PREFIX + secrets.token_urlsafe(32)
    path = path or key_file_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(f"{name}:sha256:{hash_key(key)}\n")
    os.chmod(path, 0o600)
    return key


def is_valid(authorization: str | None, hashes: list[bytes]) -> bool:
    """Constant-time check of an `Authorization: Bearer <key>` header against every stored hash."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
    ok = False
    for h in hashes:  # no early exit: timing does not depend on which key matched
        ok |= hmac.compare_digest(digest, h)
    return ok


async def send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


class GuardMiddleware:
    """Pure ASGI middleware: API-key check on every path but the health probes and `public` ones,
    and a request-size cap (413) enforced on Content-Length and on the bytes actually received."""

    def __init__(self, app: Any, max_body_bytes: int = 200 << 20, public_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.public_prefixes = public_prefixes
        self.hashes = load_hashes()
        if not self.hashes:
            log.warning("no API key configured (%s or %s): every protected request will get 401; create one "
                        "with `video-emotion apikey create`", ENV_KEYS, key_file_path())

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        public = path in PUBLIC_PATHS or any(path.startswith(p) for p in self.public_prefixes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not public and scope.get("method") != "OPTIONS" and not is_valid(headers.get("authorization"), self.hashes):
            return await send_json(send, 401, {"error": "missing or invalid API key: send `Authorization: Bearer <key>`"},
                                   [(b"www-authenticate", b"Bearer")])
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                return await send_json(send, 400, {"error": "invalid Content-Length header"})
            if too_big:
                return await send_json(send, 413, {"error": f"request body over the {self.max_body_bytes >> 20} MiB limit"})
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_json(send, 413, {"error": f"request body over the {self.max_body_bytes >> 20} MiB limit"})


class _TooLarge(Exception):
    pass
