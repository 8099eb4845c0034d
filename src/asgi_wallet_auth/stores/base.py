"""The ``NonceStore`` protocol: single-use values with a time to live."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class NonceStore(Protocol):
    """Where login secrets (and other single-use values) wait to be redeemed.

    Both operations must be atomic: ``put`` never overwrites a live key, and of any number of
    concurrent ``take`` calls for one key exactly one gets the value. A store that cannot be reached
    raises (any exception); the caller turns that into a 503 and issues nothing.
    """

    async def put(self, key: str, value: str, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds; False (and no change) if it exists."""
        ...

    async def take(self, key: str) -> str | None:
        """Remove and return the live value under ``key``, or None if absent or expired."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether a live value is stored under ``key``; consumes nothing (revocation checks)."""
        ...


__all__ = ["NonceStore"]
