"""In-memory request limits: failed keys per client address (with a growing back-off), requests per key, and
sockets waiting for their key per client address.

An address is counted by `address_key`: an IPv4 address as it is, an IPv6 client by its /64 (one subscriber's
network: a host picks any of its 2^64 addresses at will, so counting single IPv6 addresses would let one client
dodge every per-address limit). The tables are bounded: entries expire, and past `max_entries` the least
recently seen entry is dropped, so a flood of distinct addresses costs at most `max_entries` small entries.
Time comes in as an argument (monotonic seconds) so that tests need no sleeping. Not thread-safe: the service
calls them from its one event loop.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field


def address_key(addr: str) -> str:
    """What a client address is counted as: an IPv6 address by its /64 network (an IPv4 address mapped into
    IPv6 as that IPv4 address), anything else (IPv4, or not an address) as it is."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return addr


@dataclass
class _Address:
    failures: deque[float] = field(default_factory=deque)  # times of the recent failed keys
    blocked_until: float = 0.0
    strikes: int = 0  # blocks so far: each one lasts twice as long as the one before
    last: float = 0.0


class FailedKeys:
    """After `max_failures` failed keys within `window_s` from one address, that address is refused for a
    back-off of `base_s`, doubling with each further block up to `max_s`. An address that stays quiet for
    `forget_s` after its last block (or failure) starts afresh."""

    def __init__(self, max_failures: int = 10, window_s: float = 60.0, base_s: float = 60.0, max_s: float = 3600.0,
                 forget_s: float = 3600.0, max_entries: int = 10_000) -> None:
        self.max_failures, self.window_s, self.base_s, self.max_s = max_failures, window_s, base_s, max_s
        self.forget_s, self.max_entries = forget_s, max_entries
        self._table: OrderedDict[str, _Address] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def _expire(self, now: float) -> None:
        while self._table:  # ordered by last activity: only the front can be stale
            addr, entry = next(iter(self._table.items()))
            if max(entry.last, entry.blocked_until) + self.forget_s > now and len(self._table) <= self.max_entries:
                break
            del self._table[addr]

    def wait(self, addr: str, now: float) -> int:
        """Seconds the address (by `address_key`) must still wait (0: not blocked)."""
        self._expire(now)
        entry = self._table.get(address_key(addr))
        return math.ceil(entry.blocked_until - now) if entry and entry.blocked_until > now else 0

    def failure(self, addr: str, now: float) -> int:
        """Count a failed key of the address (by `address_key`); the back-off in seconds if this failure starts
        a block, else 0."""
        addr = address_key(addr)
        entry = self._table.pop(addr, None) or _Address()
        self._table[addr] = entry  # most recently seen at the end
        entry.last = now
        while entry.failures and entry.failures[0] <= now - self.window_s:
            entry.failures.popleft()
        entry.failures.append(now)
        self._expire(now)
        if len(entry.failures) < self.max_failures:
            return 0
        backoff = min(self.max_s, self.base_s * 2 ** entry.strikes)
        entry.strikes += 1
        entry.failures.clear()
        entry.blocked_until = now + backoff
        return math.ceil(backoff)


class PerKey:
    """At most `per_minute` requests per key name in any 60 s (a sliding window; 0: no limit)."""

    def __init__(self, per_minute: int = 60, max_entries: int = 10_000) -> None:
        self.per_minute, self.max_entries = per_minute, max_entries
        self._table: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def hit(self, name: str, now: float) -> int:
        """Count a request of `name`: 0 if within the limit, else the seconds until one is allowed again
        (a refused request is not counted)."""
        if self.per_minute <= 0:
            return 0
        times = self._table.pop(name, None) or deque()
        self._table[name] = times
        while times and times[0] <= now - 60.0:
            times.popleft()
        while self._table:
            first, old = next(iter(self._table.items()))
            if len(self._table) <= self.max_entries and (old and old[-1] > now - 60.0 or first == name):
                break
            del self._table[first]
        if len(times) >= self.per_minute:
            return max(1, math.ceil(times[0] + 60.0 - now))
        times.append(now)
        return 0


class Waiting:
    """Sockets from one address (by `address_key`) that wait for their key: at most `per_address` at once. Only
    open sockets are held, each entered once and left once, so the table is as small as the open sockets."""

    def __init__(self, per_address: int = 4) -> None:
        self.per_address = per_address
        self._open: dict[str, int] = {}

    def enter(self, addr: str) -> bool:
        """Count one more waiting socket of the address; False (nothing counted) when it has `per_address` already."""
        addr = address_key(addr)
        if self._open.get(addr, 0) >= self.per_address:
            return False
        self._open[addr] = self._open.get(addr, 0) + 1
        return True

    def leave(self, addr: str) -> None:
        addr = address_key(addr)
        left = self._open.get(addr, 0) - 1
        if left > 0:
            self._open[addr] = left
        else:
            self._open.pop(addr, None)

    def count(self, addr: str) -> int:
        return self._open.get(address_key(addr), 0)
