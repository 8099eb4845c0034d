"""Opt-in rate limits on secret issuance and failed logins, keyed by the requester.

Limits count what a *client* does, never what is done to an address: an attacker who sends
failed logins for a victim's wallet only exhausts their own allowance, and the victim, asking from
another client, is not locked out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cachetools import TLRUCache
from starlette.types import Scope

from .core import LimitKind, guarded
from .errors import AuthenticationFailed, InvalidRequest, RateLimited


@runtime_checkable
class RateLimiter(Protocol):
    """Counters in fixed time windows; memory for one process, Redis for many."""

    async def hit(self, key: str, window: float) -> int:
        """Add one to ``key``'s counter in the current window; return the new count."""
        ...

    async def count(self, key: str, window: float) -> int:
        """``key``'s count in the current window, without adding to it."""
        ...


def _window_end(_key: str, value: tuple[int, float], _now: float) -> float:
    return value[1]


class MemoryRateLimiter:
    """Fixed-window counters in a bounded cache (one process).

    At ``maxsize`` live counters the least recently used are dropped, which can only let a client
    through early, never lock one out; with many processes use ``RedisRateLimiter``.
    """

    def __init__(self, *, maxsize: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._clock = clock
        self._cache: TLRUCache[str, tuple[int, float]] = TLRUCache(
            maxsize=maxsize, ttu=_window_end, timer=clock
        )

    def _slot(self, key: str, window: float) -> tuple[str, float]:
        index = int(self._clock() // window)
        return f"{key}:{index}", (index + 1) * window

    async def hit(self, key: str, window: float) -> int:
        """Add one to ``key``'s counter in the current window; return the new count."""
        slot, end = self._slot(key, window)
        count = self._cache.get(slot, (0, end))[0] + 1
        self._cache[slot] = (count, end)
        return count

    async def count(self, key: str, window: float) -> int:
        """``key``'s count in the current window, without adding to it."""
        slot, _ = self._slot(key, window)
        return self._cache.get(slot, (0, 0.0))[0]


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


def client_host(scope: Scope) -> str:
    """The peer address the server saw (behind a proxy, configure the server's proxy headers)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Limits per client and window: secrets issued, and failed logins.

    ``client_key`` maps a request to the client it counts against (default: the peer address;
    behind a trusted proxy, let the server rewrite it from the proxy headers, e.g. uvicorn's
    ``--proxy-headers --forwarded-allow-ips``).
    """

    secrets: int = 30
    failed_logins: int = 10
    window: float = 60.0
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    client_key: Callable[[Scope], str] = client_host

    def __post_init__(self) -> None:
        for name in ("secrets", "failed_logins"):
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

    async def call(
        self, kind: LimitKind, scope: Scope, now: float, handler: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``handler`` within the limits: count a secret, or refuse past the failed attempts.

        Failed attempts are counted per requester, never per address: nobody can lock out a
        wallet they do not control. Over a limit, the request is refused before any work.
        """
        client = self.client_key(scope)
        refused = RateLimited(headers={"retry-after": str(self.retry_after(now))})
        if kind == "secret":
            if await guarded(self.limiter.hit(f"secret:{client}", self.window)) > self.secrets:
                raise refused
            await handler()
            return
        if await guarded(self.limiter.count(f"fail:{client}", self.window)) >= self.failed_logins:
            raise refused
        try:
            await handler()
        except (AuthenticationFailed, InvalidRequest):
            await guarded(self.limiter.hit(f"fail:{client}", self.window))
            raise

    def retry_after(self, now: float) -> int:
        """Whole seconds until the current window ends."""
        return max(1, int(self.window - now % self.window + 0.999))


__all__ = [
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimiter",
    "RedisRateLimiter",
    "client_host",
]
