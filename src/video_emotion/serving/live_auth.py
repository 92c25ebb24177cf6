"""Who may open and keep a live session: the key of its first message, the sockets waiting for one, the
session slots, and the key checked again while the session runs.

Browsers cannot set an `Authorization` header on a WebSocket, and a key in the URL would end up in
access logs and browser history, so the first client message must be the JSON text `{"key": "..."}`
(optionally with `"lang"`). No valid key within the key wait (`AUTH_TIMEOUT_S`), or any other first message,
closes the socket with code 4401 and a reason. Each such refusal before the key counts toward the address's
back-off and is written to the audit log (`Gate.refuse`), as a wrong key is; an address may hold at most
`gate.WAITING_PER_ADDRESS` sockets waiting for their key, and one more is refused at once (4429).
The guard middleware (`auth.GuardMiddleware`) lets a WebSocket through only on the paths that do this check,
and leaves its gate (keys, limits, audit) in the scope. Keys never appear in a log: a session is logged by the
key's name. While a session runs its key is checked every `KEY_CHECK_S`: a key revoked (or a key file that
fails closed) ends the session with 4401 (`watch_key`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from video_emotion.serving.gate import GATE, Gate, admit

AUTH_TIMEOUT_S = 5.0
KEY_CHECK_S = 1.0  # a running session's key is checked this often: a revoked key ends it within about a second
CLOSE_UNAUTHORISED = 4401
CLOSE_BUSY = 4429
MAX_HELLO_BYTES = 4096
LANGS = ("en", "zh")


class Refused(Exception):
    """A session that must be closed: `code` (4xxx) and a short `reason` for the client. `before_key`: refused
    before any key was checked (no key, a bad first message, silence), which counts against the address."""

    def __init__(self, code: int, reason: str, before_key: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.before_key = code, reason, before_key


@dataclass(frozen=True)
class Hello:
    """A session's accepted first message: the key's name and the options asked for; the key itself only to
    check it again while the session runs (never shown, never logged)."""

    key_name: str
    lang: str = "en"
    key: str = field(default="", repr=False, compare=False)


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
    """(key, lang) of a first message, or `Refused` (4401, before the key) for anything else."""
    if message.get("type") == "websocket.disconnect":
        raise Refused(1000, "client left")
    text = message.get("text")
    if text is None:
        raise Refused(CLOSE_UNAUTHORISED, 'send {"key": "..."} as the first message', before_key=True)
    if len(text.encode("utf-8")) > MAX_HELLO_BYTES:
        raise Refused(CLOSE_UNAUTHORISED, "first message too long", before_key=True)
    try:
        hello = json.loads(text)
    except ValueError:
        raise Refused(CLOSE_UNAUTHORISED, 'the first message must be JSON {"key": "..."}', before_key=True) from None
    key = hello.get("key") if isinstance(hello, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise Refused(CLOSE_UNAUTHORISED, 'the first message must be JSON {"key": "..."}', before_key=True)
    lang = hello.get("lang", "en")
    if lang not in LANGS:
        raise Refused(CLOSE_UNAUTHORISED, f"lang must be {' or '.join(LANGS)}", before_key=True)
    return key.strip(), lang


async def authenticate(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       timeout_s: float = AUTH_TIMEOUT_S,
                       check: Callable[[dict[str, Any], str], str] = check_key) -> Hello:
    """Wait for the first message of an accepted socket and check its key; `Refused` otherwise."""
    try:
        message = await asyncio.wait_for(receive(), timeout_s)
    except TimeoutError:
        raise Refused(CLOSE_UNAUTHORISED, f"no key within {timeout_s:g} s", before_key=True) from None
    key, lang = parse_hello(message)
    return Hello(key_name=check(scope, key), lang=lang, key=key)


async def open_session(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       timeout_s: float = AUTH_TIMEOUT_S) -> tuple[Hello, Gate]:
    """The key of an accepted socket (`authenticate`) and the gate that admitted it, or `Refused`: at once for
    an address that is blocked or already holds `WAITING_PER_ADDRESS` sockets waiting for their key. Every
    refusal is in the audit log; those before the key count toward the address's back-off."""
    gate: Gate | None = scope.get("state", {}).get(GATE)
    if gate is None:
        raise Refused(CLOSE_UNAUTHORISED, "no API keys are configured")
    client, path = gate.client(scope), scope.get("path", "")
    if wait := gate.blocked(client):
        reason = f"too many failed API keys from this address; retry after {wait} s"
        gate.refuse(client, path, 429, reason, count=False)
        raise Refused(CLOSE_BUSY, reason)
    if not gate.waiting.enter(client):
        reason = f"too many sockets waiting for their API key from this address (at most {gate.waiting.per_address})"
        gate.refuse(client, path, 429, reason)
        raise Refused(CLOSE_BUSY, reason, before_key=True)
    try:
        return await authenticate(scope, receive, timeout_s), gate
    except Refused as exc:
        if exc.before_key:
            gate.refuse(client, path, 401, exc.reason)
        raise
    finally:
        gate.waiting.leave(client)


async def watch_key(gate: Gate, scope: dict[str, Any], hello: Hello, every_s: float = KEY_CHECK_S) -> str:
    """Wait until the session's key is no longer accepted (revoked, or its key file failed closed); write
    that to the audit log and return the reason to close the session with (4401)."""
    while gate.accepts(hello.key):
        await asyncio.sleep(every_s)
    reason = ("API key revoked: session ended" if gate.keys.file_ok else
              "API key no longer accepted (the key file cannot be used): session ended")
    gate.refuse(gate.client(scope), scope.get("path", ""), 401, reason, count=False, name=hello.key_name)
    return reason


class LiveSlots:
    """At most `n` live sessions at once, and at most `per_key` of them with one key (so that one key cannot hold
    every slot); taking a slot never waits (a full house, or a key at its limit, is refused)."""

    def __init__(self, n: int, per_key: int = 1) -> None:
        self.n, self.per_key, self.busy = n, per_key, 0
        self.by_key: dict[str, int] = {}

    def refusal(self, name: str = "") -> str | None:
        """Why a session of the key named `name` cannot start now; None when it can."""
        if self.busy >= self.n:
            return "busy"
        if self.by_key.get(name, 0) >= self.per_key:
            return (f"per-key limit: this API key already holds {self.per_key} live session(s) "
                    "(VIDEO_EMOTION_MAX_LIVE_PER_KEY)")
        return None

    def take(self, name: str = "") -> bool:
        if self.refusal(name) is not None:
            return False
        self.busy += 1
        self.by_key[name] = self.by_key.get(name, 0) + 1
        return True

    def free(self, name: str = "") -> None:
        self.busy -= 1
        left = self.by_key.get(name, 0) - 1
        if left > 0:
            self.by_key[name] = left
        else:
            self.by_key.pop(name, None)
