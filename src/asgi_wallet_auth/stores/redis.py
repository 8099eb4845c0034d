"""A nonce store on Redis (``redis.asyncio``): one store for many workers and hosts.

Install with ``pip install 'asgi-wallet-auth[redis]'``. Importing ``asgi_wallet_auth`` never imports
this module.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .base import ENDED

# Atomic get-and-delete for servers older than 6.2, which lack GETDEL.
_TAKE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""


class RedisNonceStore:
    """Single-use values in Redis, shared by every worker and host that uses the same server.

    ``put`` is one ``SET key value NX PX ttl`` (the value and its lifetime in one command, never
    overwriting a live key); ``take`` is one ``GETDEL`` (or, with ``take_command="lua"`` or on a
    server that lacks it, one Lua script), so of N concurrent takes exactly one gets the value.
    Keys are ``prefix + key``.

    Any Redis failure (unreachable, timeout, lost reply) propagates as an exception, which the
    login routes answer with 503: never a secret that was not stored, never a token, and no
    fallback to per-process memory. redis-py reconnects by itself, so service resumes when Redis
    does. Run Redis with ``maxmemory-policy noeviction`` (its default): an evicted replay marker
    or revocation would re-open what it closed.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aioredis.Redis | None = None,
        prefix: str = "wallet-auth:",
        timeout: float = 2.0,
        take_command: Literal["auto", "getdel", "lua"] = "auto",
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError(
                "RedisNonceStore needs exactly one of url='redis://host:6379/0' "
                "or client=Redis(...)"
            )
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string such as 'wallet-auth:'")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
        if take_command not in ("auto", "getdel", "lua"):
            raise ValueError("take_command must be 'auto', 'getdel' or 'lua'")
        if client is None:
            assert url is not None
            try:
                client = aioredis.Redis.from_url(
                    url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    decode_responses=False,
                )
            except ValueError as exc:
                raise ValueError(f"url is not a Redis URL (redis://host:port/db): {exc}") from None
        self.client = client
        self.prefix = prefix
        self._use_getdel = take_command != "lua"
        self._may_fall_back = take_command == "auto"
        self._script = client.register_script(_TAKE_SCRIPT)

    async def put(self, key: str, value: str, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds; False (and no change) if it exists."""
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        stored = await self.client.set(
            self.prefix + key, value, nx=True, px=max(1, math.ceil(ttl * 1000))
        )
        return bool(stored)

    async def take(self, key: str) -> str | None:
        """Remove and return the live value under ``key``, or None if absent or expired."""
        name = self.prefix + key
        value: Any
        if self._use_getdel:
            try:
                value = await self.client.getdel(name)
            except ResponseError as exc:
                if not self._may_fall_back or "unknown command" not in str(exc).lower():
                    raise
                self._use_getdel = False  # a server older than 6.2: use the script from now on
                value = await self._script(keys=[name])
        else:
            value = await self._script(keys=[name])
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    async def exists(self, key: str) -> bool:
        """Whether a live value is stored under ``key`` (nothing is consumed)."""
        return bool(await self.client.exists(self.prefix + key))

    async def ping(self) -> bool:
        """True when the server answers; raises when it cannot be reached."""
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


# Compare-and-set of a session's current token id: a missing key counts as "the first token".
_ADVANCE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisSessionStore:
    """Session states in Redis, shared by every worker and host (``SessionStore``).

    ``advance`` is one Lua script (compare and set, atomic on the server), ``end`` one ``SET``
    with its lifetime, ``current`` one ``GET``. Keys are ``prefix + sid``. Failures propagate (503).
    """

    def __init__(self, client: aioredis.Redis, *, prefix: str = "wallet-auth:session:") -> None:
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string such as 'wallet-auth:session:'")
        self.client = client
        self.prefix = prefix
        self._advance = client.register_script(_ADVANCE_SCRIPT)

    async def current(self, sid: str) -> str | None:
        """The session's current token id, ``ENDED`` once logged out, None if never changed."""
        value = await self.client.get(self.prefix + sid)
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    async def advance(self, sid: str, jti: str, new_jti: str, ttl: float) -> bool:
        """Make ``new_jti`` current if ``jti`` is (or the session has no entry); else False."""
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        px = max(1, math.ceil(ttl * 1000))
        return bool(await self._advance(keys=[self.prefix + sid], args=[jti, new_jti, px]))

    async def end(self, sid: str, ttl: float) -> None:
        """Mark the session logged out for ``ttl`` seconds (its remaining absolute lifetime)."""
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        await self.client.set(self.prefix + sid, ENDED, px=max(1, math.ceil(ttl * 1000)))


__all__ = ["RedisNonceStore", "RedisSessionStore"]
