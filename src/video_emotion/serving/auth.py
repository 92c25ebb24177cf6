"""API keys for the service: creation, hashed storage, constant-time checks, an ASGI middleware.

Keys come from `VIDEO_EMOTION_API_KEYS` (comma-separated plaintext, for containers and tests) and/or
a key file (`VIDEO_EMOTION_API_KEY_FILE`, default ~/.config/video-emotion/api_keys) that stores only
SHA-256 hashes, one `name:sha256:<hex>` per line. Keys are 256-bit random tokens, so an unsalted
hash is enough to make a leaked key file useless. Keys never appear in logs.

The running service re-reads the key file when it changes (a key added or revoked takes effect
without a restart) and refuses a key file that group or others may read or write (its hashes would
let anyone who can edit it add a key of their own): it logs why and uses the environment keys only.
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
OVER_LIMIT = "video_emotion.body_over_limit"  # set in the request's state when the cap trips mid-body


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_file_path() -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or DEFAULT_KEY_FILE).expanduser()


def env_hashes() -> list[bytes]:
    return [bytes.fromhex(hash_key(k.strip())) for k in os.environ.get(ENV_KEYS, "").split(",") if k.strip()]


def file_hashes(path: Path) -> list[bytes]:
    """Digests in a key file; [] (with an error logged) if group or others may access it."""
    if not path.is_file():
        return []
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.error("refusing the API key file %s: its mode %03o lets group or others read or change it; "
                  "run `chmod 600 %s` (its keys are not accepted until then)", path, mode, path)
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(":", 2)
        if len(parts) != 3 or parts[1] != "sha256" or len(parts[2]) != 64:
            raise ValueError(f"{path}:{n}: expected `name:sha256:<64 hex>`")
        try:
            out.append(bytes.fromhex(parts[2]))
        except ValueError:
            raise ValueError(f"{path}:{n}: expected `name:sha256:<64 hex>`") from None
    return out


def load_hashes() -> list[bytes]:
    """Digests of every accepted key (environment and key file)."""
    return env_hashes() + file_hashes(key_file_path())


class ApiKeys:
    """The accepted keys, with the key file re-read whenever it changes (checked by `stat`, which
    costs microseconds per request). A key file that turns unreadable or corrupt keeps the keys
    it had before, with an error in the log."""

    def __init__(self) -> None:
        self.path = key_file_path()
        self.env = env_hashes()
        self._signature = self._stat()
        self.file = file_hashes(self.path)  # a corrupt key file at start-up stops the service
        if not self.hashes:
            log.warning("no API key configured (%s or %s): every protected request will get 401; create one "
                        "with `video-emotion apikey create`", ENV_KEYS, self.path)

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode

    @property
    def hashes(self) -> list[bytes]:
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            try:
                self.file = file_hashes(self.path) if signature is not None else []
                log.info("API key file %s reloaded: %d key(s)", self.path, len(self.file))
            except (OSError, ValueError) as exc:
                log.error("API key file %s changed but cannot be read (%s); keeping the previous keys", self.path, exc)
        return self.env + self.file


def cors_enabled() -> bool:
    """Whether BentoML answers CORS preflights for this server (http.cors.enabled)."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        return bool(BentoMLContainer.http.cors.enabled.get())
    except Exception:  # not running under BentoML, or its configuration moved: no CORS
        return False


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
    and a request-size cap (413) enforced on Content-Length and on the bytes actually received.

    `OPTIONS` needs a key like any other method; only a CORS preflight (Origin and
    Access-Control-Request-Method) passes without one, and only where CORS is enabled at all.
    A body that grows past the cap without a Content-Length (chunked) gets 413 too: the app sees the
    client as disconnected and whatever it answers is replaced by the 413."""

    def __init__(self, app: Any, max_body_bytes: int = 200 << 20, public_prefixes: tuple[str, ...] = (),
                 cors: bool | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.public_prefixes = public_prefixes
        self.keys = ApiKeys()
        self.cors = cors_enabled() if cors is None else cors

    def _too_big(self) -> dict[str, str]:
        return {"error": f"request body over the {self.max_body_bytes >> 20} MiB limit"}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        public = path in PUBLIC_PATHS or any(path.startswith(p) for p in self.public_prefixes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        preflight = (self.cors and scope.get("method") == "OPTIONS" and "origin" in headers
                     and "access-control-request-method" in headers)
        if not (public or preflight) and not is_valid(headers.get("authorization"), self.keys.hashes):
            return await send_json(send, 401,
                                   {"error": "missing or invalid API key: send `Authorization: Bearer <key>`"},
                                   [(b"www-authenticate", b"Bearer")])
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                return await send_json(send, 400, {"error": "invalid Content-Length header"})
            if too_big:
                return await send_json(send, 413, self._too_big())
        received = 0
        overflow = started = False

        async def counting_receive() -> dict:
            nonlocal received, overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    overflow = True  # the app sees a client that went away, and stops reading
                    scope.setdefault("state", {})[OVER_LIMIT] = True  # ... and can tell why
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if not overflow:  # after an overflow the 413 below is the only answer
                started = True
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            await send_json(send, 413, self._too_big(), [(b"connection", b"close")])
