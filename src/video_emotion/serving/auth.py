"""API keys in front of the service: an ASGI guard that admits, limits, caps and audits every request.

Keys: keystore.py (what is accepted, reloaded on change, failing closed) and keyfile.py (the file, named
keys, creation and revocation). Limits and the audit: gate.py, limits.py, audit.py. This module holds
the guard middleware and the small helpers older callers import from here (`create_key`,
`is_valid`, `load_hashes`). A WebSocket endpoint checks its key with `admit(scope, key)`: the guard
leaves its gate in every WebSocket scope.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from video_emotion.serving.gate import GATE, Admission, Gate, admit
from video_emotion.serving.keyfile import PREFIX, read_records
from video_emotion.serving.keyfile import create_key as _create
from video_emotion.serving.keystore import DEFAULT_KEY_FILE, ENV_KEY_FILE, ENV_KEYS, env_keys, key_file_path, match
from video_emotion.serving.keystore import token_of as token_of

__all__ = ["DEFAULT_KEY_FILE", "ENV_KEYS", "ENV_KEY_FILE", "GATE", "KEY_NAME", "OVER_LIMIT", "PREFIX", "REQUEST_ID",
           "Admission", "Gate", "GuardMiddleware", "admit", "create_key", "is_valid", "load_hashes"]

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz")
OVER_LIMIT = "video_emotion.body_over_limit"  # set in the request's state when the cap trips mid-body
REQUEST_ID = "video_emotion.request_id"  # the request's id, in its state: the app answers with it
KEY_NAME = "video_emotion.key_name"  # the name of the key that was admitted, in the request's state


def create_key(name: str, path: Path | None = None) -> str:
    """A new key named `name` in the key file (default: the configured one); returns the key, shown once."""
    return _create(name, path or key_file_path())


def load_hashes() -> list[tuple[str, bytes]]:
    """(name, digest) of every accepted key; raises if the key file is open to others or corrupt."""
    return env_keys() + [(r.name, r.digest) for r in read_records(key_file_path()) if r.active]


def is_valid(authorization: str | None, keys: list[tuple[str, bytes]]) -> bool:
    """Whether an `Authorization: Bearer <key>` header holds one of `keys` (constant-time comparison)."""
    return match(token_of(authorization), keys) is not None


def cors_enabled() -> bool:
    """Whether BentoML answers CORS preflights for this server (http.cors.enabled)."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        return bool(BentoMLContainer.http.cors.enabled.get())
    except Exception:  # not running under BentoML, or its configuration moved: no CORS
        return False


async def send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


async def refuse(send: Any, adm: Admission, request_id: str) -> None:
    """The answer to a refused request: 401 with `WWW-Authenticate`, or 429 with `Retry-After`."""
    headers = [(b"x-request-id", request_id.encode())]
    if adm.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
        reason = f"{adm.reason}: send `Authorization: Bearer <key>`"
    else:
        headers.append((b"retry-after", str(adm.retry_after or 1).encode()))
        reason = f"{adm.reason}; retry after {adm.retry_after} s"
    await send_json(send, adm.status, {"error": reason, "request_id": request_id}, headers)


class GuardMiddleware:
    """Pure ASGI middleware: the gate (key, per-address and per-key limits, audit) on every path but the
    health probes and `public` ones, and a request-size cap (413) enforced on Content-Length and on the
    bytes actually received.

    `OPTIONS` needs a key like any other method; only a CORS preflight (Origin and
    Access-Control-Request-Method) passes without one, and only where CORS is enabled at all.
    A body that grows past the cap without a Content-Length (chunked) gets 413 too: the app sees the
    client as disconnected and whatever it answers is replaced by the 413. Every answer carries an
    `X-Request-ID` (the app's own if it sets one), the id the audit log writes."""

    def __init__(self, app: Any, max_body_bytes: int = 200 << 20, public_prefixes: tuple[str, ...] = (),
                 cors: bool | None = None, gate: Gate | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.public_prefixes = public_prefixes
        self.gate = gate or Gate()
        self.keys = self.gate.keys
        self.cors = cors_enabled() if cors is None else cors

    def _too_big(self) -> dict[str, str]:
        return {"error": f"request body over the {self.max_body_bytes >> 20} MiB limit"}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # its endpoint checks the key of its first message with `admit`
            scope.setdefault("state", {})[GATE] = self.gate
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "")
        public = path in PUBLIC_PATHS or any(path.startswith(p) for p in self.public_prefixes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        preflight = (self.cors and method == "OPTIONS" and "origin" in headers
                     and "access-control-request-method" in headers)
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})[REQUEST_ID] = rid
        seen = {"status": 500, "bytes": 0, "request_id": rid}
        if public or preflight:
            return await self._capped(scope, receive, send, headers, seen)
        client = self.gate.client(scope)
        adm = self.gate.admit(token_of(headers.get("authorization")), client, method, path, rid)
        if not adm.ok:
            return await refuse(send, adm, rid)
        scope["state"][KEY_NAME] = adm.name
        start = time.monotonic()
        try:
            await self._capped(scope, receive, send, headers, seen)
        finally:
            self.gate.record(adm.name, client, method, path, seen["status"], seen["bytes"], time.monotonic() - start,
                             seen["request_id"])

    async def _capped(self, scope: dict, receive: Any, send: Any, headers: dict[str, str], seen: dict) -> None:
        """Run the app with the body cap; `seen` gets the status answered, the bytes received and the id."""
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                seen["status"] = 400
                return await send_json(send, 400, {"error": "invalid Content-Length header"})
            if too_big:
                seen["status"] = 413
                return await send_json(send, 413, self._too_big())
        overflow = started = False

        async def counting_receive() -> dict:
            nonlocal overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body_bytes:
                    overflow = True  # the app sees a client that went away, and stops reading
                    scope.setdefault("state", {})[OVER_LIMIT] = True  # ... and can tell why
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if overflow:  # after an overflow the 413 below is the only answer
                return
            if message["type"] == "http.response.start":
                message = _with_request_id(message, seen)
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not started:
            seen["status"] = 413
            await send_json(send, 413, self._too_big(), [(b"connection", b"close")])


def _with_request_id(message: dict, seen: dict) -> dict:
    """The response start with an `X-Request-ID` (the app's, if it set one); its status and id noted in `seen`."""
    seen["status"] = message.get("status", 500)
    headers = list(message.get("headers", []))
    own = next((v for k, v in headers if k.lower() == b"x-request-id"), None)
    if own is None:
        headers.append((b"x-request-id", seen["request_id"].encode()))
        return {**message, "headers": headers}
    seen["request_id"] = own.decode("latin-1")
    return message
