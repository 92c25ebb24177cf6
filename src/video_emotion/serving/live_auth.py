"""The key of a WebSocket session: checked from its first message, before any frame is read.

Browsers cannot set an `Authorization` header on a WebSocket, and a key in the URL would end up in
access logs and browser history, so the first client message must be the JSON text `{"key": "..."}`
(optionally with `"lang"`). No valid key within `AUTH_TIMEOUT_S`, or any other first message, closes
the socket with code 4401 and a reason. The guard middleware (`auth.GuardMiddleware`) lets a
WebSocket through only on the paths that do this check, and leaves its gate (keys, limits, audit) in the scope.
Keys never appear in a log: a session is logged by the key's name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from video_emotion.serving.gate import admit

AUTH_TIMEOUT_S = 5.0
CLOSE_UNAUTHORISED = 4401
CLOSE_BUSY = 4429
MAX_HELLO_BYTES = 4096
LANGS = ("en", "zh")


class Refused(Exception):
    """A session that must be closed: `code` (4xxx) and a short `reason` for the client."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Hello:
    """A session's accepted first message: the key's name (never the key) and the options asked for."""

    key_name: str
    lang: str = "en"


def check_key(scope: dict[str, Any], key: str) -> str:
    """The name of the key a session uses, or `Refused`. Called once per session, so that a session counts
    as one request wherever keys are counted (its frames do not).

    The key store's `gate.admit` applies validity, the per-address back-off and the per-key rate limit
    and writes the session's audit line (status 101)."""
    adm = admit(scope, key, method="WS")
    if not adm.ok:  # invalid key: 4401; an address or key over its limit: 4429, with the reason
        raise Refused(CLOSE_UNAUTHORISED if adm.status == 401 else CLOSE_BUSY, adm.reason)
    return adm.name


def parse_hello(message: dict[str, Any]) -> tuple[str, str]:
    """(key, lang) of a first message, or `Refused` (4401) for anything else."""
    if message.get("type") == "websocket.disconnect":
        raise Refused(1000, "client left")
    text = message.get("text")
    if text is None:
        raise Refused(CLOSE_UNAUTHORISED, 'send {"key": "..."} as the first message')
    if len(text.encode("utf-8")) > MAX_HELLO_BYTES:
        raise Refused(CLOSE_UNAUTHORISED, "first message too long")
    try:
        hello = json.loads(text)
    except ValueError:
        raise Refused(CLOSE_UNAUTHORISED, 'the first message must be JSON {"key": "..."}') from None
    key = hello.get("key") if isinstance(hello, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise Refused(CLOSE_UNAUTHORISED, 'the first message must be JSON {"key": "..."}')
    lang = hello.get("lang", "en")
    if lang not in LANGS:
        raise Refused(CLOSE_UNAUTHORISED, f"lang must be {' or '.join(LANGS)}")
    return key.strip(), lang


async def authenticate(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       timeout_s: float = AUTH_TIMEOUT_S,
                       check: Callable[[dict[str, Any], str], str] = check_key) -> Hello:
    """Wait for the first message of an accepted socket and check its key; `Refused` otherwise."""
    try:
        message = await asyncio.wait_for(receive(), timeout_s)
    except TimeoutError:
        raise Refused(CLOSE_UNAUTHORISED, f"no key within {timeout_s:g} s") from None
    key, lang = parse_hello(message)
    return Hello(key_name=check(scope, key), lang=lang)
