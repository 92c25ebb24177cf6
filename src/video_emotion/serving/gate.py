"""Who may make a request: the key's name or a refusal, after validity, per-address and per-key limits.

`Gate.admit(key, client, ...)` is the one decision for HTTP requests (through `GuardMiddleware`) and for
any other entry point such as a WebSocket session (which calls it once, so a session counts as one
request): `admit(scope, key)` finds the gate the guard put in the ASGI scope. In order:

1. validity: the key is looked up (constant time) before anything is counted; an invalid key never
   uses a key's budget, and a valid one that was revoked or whose key file broke is simply invalid (401);
2. per client address: after `FAILED_KEYS` (10) wrong keys within a minute, every request from that
   address gets 429 with Retry-After for a back-off that doubles with each block (60 s, 120 s, ... 1 h);
   a valid key from a blocked address is refused too, or the back-off would tell a guesser which guess
   was right. Only presented keys count as failures: an HTTP request without a key gets 401 and counts nothing
   (a WebSocket refused before its key, for no key, a bad first message or silence, does count: `refuse`);
   an IPv6 client is counted by its /64 (`limits.address_key`);
3. per key: `VIDEO_EMOTION_RATE_LIMIT` requests per minute per key name (default 60; 0: no limit),
   429 with Retry-After past it.

The client address is the socket peer; `X-Forwarded-For` is believed only from the proxies listed in
`VIDEO_EMOTION_TRUSTED_PROXIES` (addresses or networks, comma-separated). Every refusal is written to
the audit log here; admitted HTTP requests are written by the guard when they end.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from typing import Any

from video_emotion.serving.audit import AuditLog, audit_path, stamp
from video_emotion.serving.keystore import ApiKeys
from video_emotion.serving.limits import FailedKeys, PerKey, Waiting

GATE = "video_emotion.gate"  # the scope state entry where the guard leaves its gate
ENV_RATE_LIMIT = "VIDEO_EMOTION_RATE_LIMIT"
ENV_TRUSTED_PROXIES = "VIDEO_EMOTION_TRUSTED_PROXIES"
FAILED_KEYS = 10
WAITING_PER_ADDRESS = 4  # WebSockets of one address waiting for their key at once


@dataclass(frozen=True)
class Admission:
    """The answer for one request: `name` of the key when admitted, else `status` (401 or 429), a
    `reason` that is safe to show the client, and `retry_after` seconds for a 429."""

    name: str | None
    status: int = 200
    reason: str = ""
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.name is not None and self.status == 200


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks of a comma-separated list of addresses and CIDR blocks; a bad entry is a clear error."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{ENV_TRUSTED_PROXIES}: {item!r} is not an IP address or network") from None
    return out


class Gate:
    """The accepted keys, the limits and the audit log of one server process."""

    def __init__(self, keys: ApiKeys | None = None, per_minute: int | None = None,
                 trusted_proxies: str | None = None, audit: AuditLog | None = None) -> None:
        self.keys = keys or ApiKeys()
        limit = os.environ.get(ENV_RATE_LIMIT, "60") if per_minute is None else per_minute
        self.per_key = PerKey(int(limit))
        self.addresses = FailedKeys(max_failures=FAILED_KEYS)
        self.waiting = Waiting(WAITING_PER_ADDRESS)
        proxies = os.environ.get(ENV_TRUSTED_PROXIES, "") if trusted_proxies is None else trusted_proxies
        self.proxies = parse_networks(proxies)
        self.audit = audit or AuditLog(audit_path(self.keys.path))

    def client(self, scope: dict[str, Any]) -> str:
        """The client's address: the socket peer, or X-Forwarded-For's last entry that is not a trusted
        proxy when the peer is one."""
        peer = (scope.get("client") or ("-", 0))[0]
        if not self.proxies or not self._trusted(peer):
            return peer
        forwarded = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"x-forwarded-for"]
        hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop[:64]
        return peer

    def _trusted(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)

    def admit(self, key: str | None, client: str, method: str = "GET", path: str = "",
              request_id: str = "", audit: bool = False) -> Admission:
        """The key's name, or a refusal (written to the audit log). `key` is the key itself (None: none
        given); with `audit`, an admission is written too (status 101 for a WebSocket session)."""
        now = time.monotonic()
        name = self.keys.match(key)
        wait = self.addresses.wait(client, now)
        if wait:
            adm = Admission(None, 429, "too many failed API keys from this address", wait)
        elif name is None:
            blocked = self.addresses.failure(client, now) if key else 0
            adm = Admission(None, 401, "missing or invalid API key" if not blocked else
                            "invalid API key; further requests from this address are refused for a while")
        elif wait := self.per_key.hit(name, now):
            adm = Admission(None, 429, f"rate limit of {self.per_key.per_minute} requests per minute", wait)
        else:
            adm = Admission(name)
        if audit or not adm.ok:
            self.record(name or "-", client, method, path, 101 if adm.ok and method == "WS" else adm.status,
                        request_id=request_id, reason=adm.reason)
        return adm

    def blocked(self, client: str) -> int:
        """Seconds the client's address must still wait after too many failed keys (0: not blocked)."""
        return self.addresses.wait(client, time.monotonic())

    def refuse(self, client: str, path: str, status: int, reason: str, count: bool = True, name: str = "-") -> None:
        """A refusal no `admit` decided (a WebSocket refused before its key, or a session ended or refused after
        it), written to the audit log as `WS`; with `count`, also a failure toward the address's back-off."""
        if count:
            self.addresses.failure(client, time.monotonic())
        self.record(name, client, "WS", path, status, reason=reason)

    def accepts(self, key: str) -> bool:
        """Whether `key` is still accepted (the key file re-read if it changed): false once it is revoked or its
        key file fails closed."""
        return self.keys.match(key) is not None

    def record(self, name: str, client: str, method: str, path: str, status: int, bytes_in: int = 0,
               seconds: float = 0.0, request_id: str = "", reason: str = "") -> None:
        """One audit line (never the key: `name` is the key's name or `-`)."""
        line = {"time": stamp(time.time()), "key": name, "client": client, "method": method, "path": path,
                "status": status, "bytes_in": bytes_in, "seconds": round(seconds, 3), "request_id": request_id}
        if reason:
            line["reason"] = reason
        self.audit.write(line)


def admit(scope: dict[str, Any], key: str | None, method: str = "WS", request_id: str = "") -> Admission:
    """`Gate.admit` for the request or session `scope` (client address and path from it), with the gate
    the guard middleware left in the scope; an admitted session is written to the audit log (status 101).
    Without a guard in front there is nothing to check against, so nobody is admitted."""
    gate = scope.get("state", {}).get(GATE)
    if gate is None:
        return Admission(None, 401, "no API keys are configured")
    return gate.admit(key, gate.client(scope), method, scope.get("path", ""), request_id, audit=True)
