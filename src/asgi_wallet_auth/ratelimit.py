"""Opt-in rate limits on secret issuance and failed logins, keyed by the requester.

Limits count what a *client* does, never what is done to an address: an attacker who sends
failed logins for a victim's wallet only exhausts their own allowance, and the victim, asking from
another client, is not locked out.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from starlette.types import Scope

from .core import LimitKind, guarded, logger
from .errors import AuthenticationFailed, InvalidRequest, RateLimited, StoreUnavailable

_HEADER_RE = re.compile(r"[a-z0-9-]+")


@runtime_checkable
class RateLimiter(Protocol):
    """Counters in fixed time windows; memory for one process, Redis for many."""

    async def hit(self, key: str, window: float) -> int:
        """Add one to ``key``'s counter in the current window; return the new count."""
        ...

    async def count(self, key: str, window: float) -> int:
        """``key``'s count in the current window, without adding to it."""
        ...

    async def undo(self, key: str, window: float) -> None:
        """Take back one ``hit`` of the current window (a counted attempt that succeeded)."""
        ...


class MemoryRateLimiter:
    """Fixed-window counters in one dict (one process).

    At ``maxsize`` live counters the expired ones are dropped, then the oldest, which can only
    let a client through early, never lock one out; with many processes use ``RedisRateLimiter``.
    """

    def __init__(self, *, maxsize: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._clock = clock
        # slot -> (count, end of its window); insertion-ordered, so the first is the oldest.
        self._counts: dict[str, tuple[int, float]] = {}

    def _slot(self, key: str, window: float) -> tuple[str, float, float]:
        now = self._clock()
        index = int(now // window)
        return f"{key}:{index}", (index + 1) * window, now

    def _make_room(self, now: float) -> None:
        counts = {k: v for k, v in self._counts.items() if v[1] > now}
        if len(counts) >= self._maxsize:  # all live: the oldest tenth goes
            drop = max(1, self._maxsize // 10)
            counts = dict(list(counts.items())[drop:])
        self._counts = counts

    async def hit(self, key: str, window: float) -> int:
        """Add one to ``key``'s counter in the current window; return the new count."""
        slot, end, now = self._slot(key, window)
        counts = self._counts
        entry = counts.get(slot)
        if entry is None:
            if len(counts) >= self._maxsize:
                self._make_room(now)
                counts = self._counts
            count = 1
        else:
            count = entry[0] + 1
        counts[slot] = (count, end)
        return count

    async def count(self, key: str, window: float) -> int:
        """``key``'s count in the current window, without adding to it."""
        slot, _, _ = self._slot(key, window)
        entry = self._counts.get(slot)
        return 0 if entry is None else entry[0]

    async def undo(self, key: str, window: float) -> None:
        """Take back one ``hit`` of the current window (a counted attempt that succeeded)."""
        slot, end, _ = self._slot(key, window)
        entry = self._counts.get(slot)
        if entry is not None and entry[0] > 0:
            self._counts[slot] = (entry[0] - 1, end)

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for _, end in self._counts.values() if end > now)


class RedisRateLimiter:
    """Fixed-window counters in Redis (``INCR`` then ``PEXPIRE``), shared by every worker."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "wallet-auth:rate:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._clock = clock

    def _slot(self, key: str, window: float) -> str:
        return f"{self.prefix}{key}:{int(self._clock() // window)}"

    async def hit(self, key: str, window: float) -> int:
        """Add one to ``key``'s counter in the current window; return the new count."""
        slot = self._slot(key, window)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(slot)
        pipe.pexpire(slot, int(window * 1000) + 1000)
        count, _ = await pipe.execute()
        return int(count)

    async def count(self, key: str, window: float) -> int:
        """``key``'s count in the current window, without adding to it."""
        value = await self.client.get(self._slot(key, window))
        return 0 if value is None else int(value)

    async def undo(self, key: str, window: float) -> None:
        """Take back one ``hit`` of the current window (``DECR``: atomic on the server)."""
        await self.client.decr(self._slot(key, window))


class ClientUnknown(StoreUnavailable):
    """Rate limiting cannot tell this request's client apart from others (503, logged)."""


def requester_key(host: str) -> str:
    """The bucket of one peer address: an IPv4 address, or the /64 of an IPv6 one.

    One IPv6 subscriber holds a whole /64 (often far more): keying by the full address would let
    one client count as 2**64 clients. An IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    if ":" not in host:
        return host  # IPv4 (or a name): the address is the bucket, no parsing needed
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        return host  # not an address (a test client's name, a unix socket path): as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_host(scope: Scope) -> str:
    """The peer address the server saw, as a ``requester_key``; ``ClientUnknown`` without one.

    Behind a unix socket there is no peer address, and keying every request as one client would
    let one attacker's failures lock everybody out: configure ``RateLimit(proxy_header=...)``
    (the header your proxy sets) or the server's own proxy-header support instead.
    """
    client = scope.get("client")
    if not client or not client[0]:
        logger.error(
            "rate limiting cannot identify the client (no peer address, e.g. a unix socket): "
            "set RateLimit(proxy_header='x-real-ip') or the server's proxy headers"
        )
        raise ClientUnknown()
    return requester_key(str(client[0]))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Limits per client and window: secrets issued, and failed logins.

    ``client_key`` maps a request to the client it counts against (default: the peer address,
    IPv6 by its /64; a request without one is refused with 503 rather than pooled with every
    other). Behind a trusted proxy, let the server rewrite the peer address from the proxy headers
    (uvicorn's ``--proxy-headers --forwarded-allow-ips``), or name the header the proxy sets in
    ``proxy_header`` (its last value is used: the one the nearest proxy wrote). Set
    ``proxy_header`` only when every request comes through that proxy: clients can send it too.
    ``sessions`` limits ``/refresh`` and ``/logout`` calls per client and window.
    """

    secrets: int = 30
    failed_logins: int = 10
    window: float = 60.0
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    client_key: Callable[[Scope], str] = client_host
    sessions: int = 60
    proxy_header: str | None = None

    def __post_init__(self) -> None:
        if self.proxy_header is not None:
            if not isinstance(self.proxy_header, str) or not _HEADER_RE.fullmatch(
                self.proxy_header
            ):
                raise ValueError(
                    "proxy_header must be a lowercase header name, e.g. proxy_header='x-real-ip'"
                )
            if self.client_key is not client_host:
                raise ValueError("pass either client_key or proxy_header, not both")
        for name in ("secrets", "failed_logins", "sessions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if (
            isinstance(self.window, bool)
            or not isinstance(self.window, (int, float))
            or not (0 < self.window <= 86_400)
        ):
            raise ValueError("window must be a number of seconds in (0, 86400]")
        if not isinstance(self.limiter, RateLimiter):
            raise ValueError("limiter must implement the RateLimiter protocol")

    def requester(self, scope: Scope) -> str:
        """The key this request counts against."""
        if self.proxy_header is None:
            return self.client_key(scope)
        values = [
            v for k, v in scope["headers"] if k.lower() == self.proxy_header.encode("latin-1")
        ]
        host = values[-1].decode("latin-1").rsplit(",", 1)[-1].strip() if values else ""
        if not host:
            logger.error("rate limiting: the proxy header %r is missing", self.proxy_header)
            raise ClientUnknown()
        return requester_key(host)

    async def call(
        self, kind: LimitKind, scope: Scope, now: float, handler: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``handler`` within the limits of its kind, counting first.

        Every counter is incremented before the work and compared after the increment, so N
        concurrent requests can never all pass a check made before any of them was counted.
        Failed attempts are counted per requester, never per address (nobody can lock out a
        wallet they do not control); an attempt that succeeds is taken back.
        """
        client = self.requester(scope)
        limit = {"secret": self.secrets, "attempt": self.failed_logins}.get(kind, self.sessions)
        key = f"{kind}:{client}"
        if await guarded(self.limiter.hit(key, self.window)) > limit:
            raise RateLimited(headers={"retry-after": str(self.retry_after(now))})
        if kind != "attempt":
            await handler()
            return
        try:
            await handler()
        except (AuthenticationFailed, InvalidRequest):
            raise
        except BaseException:
            # Not the client's failure (a 503, a refusal by the app's hook, a cancellation).
            await guarded(self.limiter.undo(key, self.window))
            raise
        await guarded(self.limiter.undo(key, self.window))

    def retry_after(self, now: float) -> int:
        """Whole seconds until the current window ends."""
        return max(1, int(self.window - now % self.window + 0.999))


__all__ = [
    "ClientUnknown",
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimiter",
    "RedisRateLimiter",
    "client_host",
    "requester_key",
]
