"""An in-process nonce store in one compact dict: the default for one worker."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable

from .base import ENDED

# Most entries are login secrets whose value is the marker "1": for those the dict keeps only the
# expiry time, and a (value, expiry) pair for anything else.
_MARKER = "1"
_Entry = float | tuple[str, float]


def _expiry(entry: _Entry) -> float:
    return entry if isinstance(entry, float) else entry[1]


class StoreFull(RuntimeError):
    """A non-evicting store has no room: the request is refused with 503, nothing is dropped."""


class MemoryNonceStore:
    """Single-use values with per-key lifetimes, bounded, in one process.

    Keys are kept as 16-byte BLAKE2b digests and marker values as bare expiry times, in one
    insertion-ordered dict: about 120 bytes per outstanding secret at a million of them, where a
    ``cachetools.TLRUCache`` with the text keys needs over 400 (``benchmarks/run.py`` measures it).
    A value is live while the clock is before its expiry. Expired entries are dropped when read
    and in bulk when the store fills up.

    At ``maxsize`` live entries the store evicts the oldest tenth (``evict=True``, the default):
    a login whose secret was evicted fails closed (the secret is unknown), so the bound protects
    memory without ever letting a value be redeemed twice. That suits values whose absence means
    "refuse" (login secrets), not markers whose presence means "refuse" (replay markers, revoked
    token ids): with ``evict=False`` the store never drops a live entry, and when full ``put``
    raises ``StoreFull`` (a 503 to the client) instead.

    Operations never await between reading and writing the dict, which makes them atomic on the
    event loop. Not shared between processes: with several workers use ``RedisNonceStore``.
    """

    def __init__(
        self,
        *,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        evict: bool = True,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError("MemoryNonceStore maxsize must be at least 1; pass maxsize=100_000")
        self._maxsize = maxsize
        self._clock = clock
        self._evict = evict
        self._cache: dict[bytes, _Entry] = {}
        # A full non-evicting store rescans at most once a second, so a flood cannot make every
        # put an O(n) scan.
        self._next_purge = float("-inf")

    @property
    def evicts(self) -> bool:
        """Whether a full store drops its oldest entries (True) or refuses new ones (False)."""
        return self._evict

    @property
    def maxsize(self) -> int:
        """How many live entries the store keeps."""
        return self._maxsize

    @staticmethod
    def _digest(key: str) -> bytes:
        # 2**-128 collision odds for far less memory than the text of the key.
        return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _make_room(self, now: float) -> None:
        cache = self._cache
        if self._evict or now >= self._next_purge:
            self._cache = cache = {k: e for k, e in cache.items() if _expiry(e) > now}
            self._next_purge = now + 1.0
        if len(cache) < self._maxsize:
            return
        if not self._evict:
            raise StoreFull("nonce store is full and may not evict")
        # Drop the oldest tenth at once: eviction stays amortised O(1) per put.
        drop = max(1, self._maxsize // 10)
        self._cache = dict(itertools.islice(cache.items(), drop, None))

    async def put(self, key: str, value: str, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds; False (and no change) if it exists."""
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        digest = self._digest(key)
        now = self._clock()
        entry = self._cache.get(digest)
        if entry is not None:
            if _expiry(entry) > now:
                return False
            del self._cache[digest]
        if len(self._cache) >= self._maxsize:
            self._make_room(now)
        expires = float(now + ttl)
        self._cache[digest] = expires if value == _MARKER else (value, expires)
        return True

    async def take(self, key: str) -> str | None:
        """Remove and return the live value under ``key``, or None if absent or expired."""
        entry = self._cache.pop(self._digest(key), None)
        if entry is None or _expiry(entry) <= self._clock():
            return None
        return _MARKER if isinstance(entry, float) else entry[0]

    async def exists(self, key: str) -> bool:
        """Whether a live value is stored under ``key`` (nothing is consumed)."""
        entry = self._cache.get(self._digest(key))
        return entry is not None and _expiry(entry) > self._clock()

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for entry in self._cache.values() if _expiry(entry) > now)


class MemorySessionStore:
    """Session states in one dict (one process): the default session store for one worker.

    Never evicts a live entry (a dropped "logged out" would bring a session back): at
    ``maxsize`` live sessions ``advance`` and ``end`` raise ``StoreFull`` (503). Operations never
    await, which makes each atomic on the event loop.
    """

    def __init__(
        self, *, maxsize: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError("MemorySessionStore maxsize must be at least 1; pass maxsize=100_000")
        self._maxsize = maxsize
        self._clock = clock
        self._states: dict[str, tuple[str, float]] = {}
        self._next_purge = float("-inf")

    def _live(self, sid: str, now: float) -> str | None:
        entry = self._states.get(sid)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._states[sid]
            return None
        return entry[0]

    def _set(self, sid: str, value: str, ttl: float, now: float) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        states = self._states
        if sid not in states and len(states) >= self._maxsize:
            if now >= self._next_purge:  # a full store rescans at most once a second
                self._states = states = {k: e for k, e in states.items() if e[1] > now}
                self._next_purge = now + 1.0
            if len(states) >= self._maxsize:
                raise StoreFull("session store is full and may not evict")
        states[sid] = (value, now + ttl)

    async def current(self, sid: str) -> str | None:
        """The session's current token id, ``ENDED`` once logged out, None if never changed."""
        return self._live(sid, self._clock())

    async def advance(self, sid: str, jti: str, new_jti: str, ttl: float) -> bool:
        """Make ``new_jti`` current if ``jti`` is (or the session has no entry); else False."""
        now = self._clock()
        state = self._live(sid, now)
        if state is not None and state != jti:
            return False
        self._set(sid, new_jti, ttl, now)
        return True

    async def end(self, sid: str, ttl: float) -> None:
        """Mark the session logged out for ``ttl`` seconds (its remaining absolute lifetime)."""
        now = self._clock()
        self._set(sid, ENDED, ttl, now)

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for entry in self._states.values() if entry[1] > now)


__all__ = ["MemoryNonceStore", "MemorySessionStore", "StoreFull"]
