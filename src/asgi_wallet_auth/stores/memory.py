"""An in-process nonce store on ``cachetools``: the default for one worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TLRUCache


def _expires_at(_key: str, value: tuple[str, float], _now: float) -> float:
    return value[1]


class StoreFull(RuntimeError):
    """A non-evicting store has no room: the request is refused with 503, nothing is dropped."""


class MemoryNonceStore:
    """Single-use values in a bounded ``cachetools.TLRUCache`` (a TTL cache with per-key lifetimes).

    Each key lives for the ``ttl`` given to ``put``. At ``maxsize`` live entries the least recently
    used are evicted: a login whose secret was evicted fails closed (the secret is unknown), so the
    bound protects memory without ever letting a value be redeemed twice. Eviction suits values
    whose absence means "refuse" (login secrets); it does not suit markers whose presence means
    "refuse" (replay markers, revoked token ids), which must not be dropped early.

    With ``evict=False`` the store never drops a live entry: when it is full, ``put`` raises
    ``StoreFull`` (a 503 to the client) instead. Use that for replay markers.

    Operations never await between reading and writing the cache, which makes them atomic on the
    event loop. Not shared between processes: with several workers use ``RedisNonceStore``.
    """

    def __init__(
        self,
        *,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        evict: bool = True,
    ) -> None:
        if maxsize < 1:
            raise ValueError("MemoryNonceStore maxsize must be at least 1; pass maxsize=100_000")
        self._clock = clock
        self._evict = evict
        self._cache: TLRUCache[str, tuple[str, float]] = TLRUCache(
            maxsize=maxsize, ttu=_expires_at, timer=clock
        )

    @property
    def evicts(self) -> bool:
        """Whether a full store drops its oldest entries (True) or refuses new ones (False)."""
        return self._evict

    @property
    def maxsize(self) -> int:
        """How many live entries the store keeps before evicting the oldest."""
        return int(self._cache.maxsize)

    async def put(self, key: str, value: str, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds; False (and no change) if it exists."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        cache = self._cache
        if key in cache:  # `in` honours expiry, so an expired key may be reused
            return False
        if not self._evict and len(cache) >= cache.maxsize:
            cache.expire()
            if len(cache) >= cache.maxsize:
                raise StoreFull("nonce store is full and may not evict")
        cache[key] = (value, self._clock() + ttl)
        return True

    async def take(self, key: str) -> str | None:
        """Remove and return the live value under ``key``, or None if absent or expired."""
        item = self._cache.pop(key, None)
        return None if item is None else item[0]

    async def exists(self, key: str) -> bool:
        """Whether a live value is stored under ``key`` (nothing is consumed)."""
        return key in self._cache

    def __len__(self) -> int:
        self._cache.expire()
        return len(self._cache)


__all__ = ["MemoryNonceStore", "StoreFull"]
