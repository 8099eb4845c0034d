"""The store protocols: single-use values with a time to live, and the state of sessions."""

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


#: ``SessionStore.current`` of a session that was logged out.
ENDED = "-"


@runtime_checkable
class SessionStore(Protocol):
    """One entry per session that was refreshed or ended: which of its tokens is current.

    A session nobody refreshed or ended has no entry (its one token is current). ``advance``
    moves the session from one token id to the next atomically, so of N concurrent refreshes of
    one token exactly one wins; ``end`` marks it logged out, whatever its current token. Entries
    live until the session's absolute end, so the store holds at most one entry per live session,
    however many times a session is refreshed. A store that cannot be reached raises (503).
    """

    async def current(self, sid: str) -> str | None:
        """The session's current token id, ``ENDED`` once logged out, None if never changed."""
        ...

    async def advance(self, sid: str, jti: str, new_jti: str, ttl: float) -> bool:
        """Make ``new_jti`` current if ``jti`` is (or the session has no entry); else False."""
        ...

    async def end(self, sid: str, ttl: float) -> None:
        """Mark the session logged out for ``ttl`` seconds (its remaining absolute lifetime)."""
        ...


__all__ = ["ENDED", "NonceStore", "SessionStore"]
