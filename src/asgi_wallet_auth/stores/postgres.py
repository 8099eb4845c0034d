"""A user store on PostgreSQL (asyncpg): one store of users for many workers and hosts.

Install with ``pip install 'asgi-wallet-auth[postgres]'``. Importing ``asgi_wallet_auth`` never
imports this module.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..users import UserChange, UserRecord, WalletBound, check_change
from .keyfields import (
    bound_wallets_from,
    bound_wallets_json,
    session_keys_from,
    session_keys_json,
)
from .postgres_schema import SCHEMA_VERSION, SchemaVersionError, migrate

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}\Z")
_COLUMNS = (
    "userid, address, did_type, first_login, last_login, device_keys, nickname, avatar_url, "
    "avatar, avatar_type, main_pubkey, session_keys::text, bound_wallets::text"
)
#: The SQLSTATE of ``<prefix>guard_wallet``: a wallet that is one user's and bound to another.
_WALLET_TAKEN = "WA001"


def _wallet_taken(exc: BaseException) -> bool:
    """Whether ``exc`` is the database refusing a wallet that another user holds."""
    state = getattr(exc, "sqlstate", None)
    return state == _WALLET_TAKEN or isinstance(exc, asyncpg.UniqueViolationError)


def _record(row: Sequence[Any]) -> UserRecord:
    userid, address, did_type, first, last, keys, nickname, avatar_url, avatar, avatar_type = (
        row[:10]
    )
    return UserRecord(
        userid,
        address,
        did_type,
        float(first),
        float(last),
        tuple(keys),
        nickname,
        avatar_url,
        None if avatar is None else bytes(avatar),
        avatar_type,
        row[10],
        session_keys_from(row[11]),
        bound_wallets_from(row[12]),
    )


def _params(record: UserRecord) -> tuple[Any, ...]:
    return (
        record.userid,
        record.address,
        record.did_type,
        float(record.first_login),
        float(record.last_login),
        list(record.device_keys),
        record.nickname,
        record.avatar_url,
        record.avatar,
        record.avatar_type,
    )


async def _keep_session(conn: Any) -> None:
    # The pool's reset hook (asyncpg 0.30+). The store sets no session state, listens to nothing
    # and holds no cursors or session locks, so asyncpg's default reset query (one more round trip
    # on every release) has nothing to undo; an open transaction is still rolled back by asyncpg.
    return None


class PostgresUserStore:
    """Users in PostgreSQL, shared by every worker and host that uses the same database.

    Give ``dsn`` (``postgresql://user:password@host:5432/db``) and the store opens a pool of up
    to ``pool_size`` connections; or give ``pool``, an ``asyncpg`` pool the application already
    has (it is used, never closed). Tables and functions are ``prefix + name`` (lower case
    letters, digits and ``_``), so the store can live in the application's own database.

    The store owns its schema: ``open()`` (or the first operation) creates it or applies pending
    migrations in one transaction, and refuses with ``SchemaVersionError`` a schema newer than
    this code. Each operation is one statement (``merge`` and ``save`` call server-side
    functions that lock the rows they read), so a returning wallet's login costs one round trip.

    A database that is down, or slower than ``timeout`` seconds, raises from the operation (the
    login routes answer 503 and write nothing); the pool reconnects by itself when it is back.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: asyncpg.Pool | None = None,
        pool_size: int = 10,
        prefix: str = "wallet_auth_",
        timeout: float = 5.0,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise ValueError(
                "PostgresUserStore needs exactly one of dsn='postgresql://user@host:5432/db' "
                "or pool=await asyncpg.create_pool(...)"
            )
        if dsn is not None and (
            not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://"))
        ):
            raise ValueError("dsn must be a URL such as 'postgresql://user@host:5432/db'")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a positive integer such as 10; got {pool_size!r}")
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValueError(
                "prefix must be lower case letters, digits and '_', starting with a letter or "
                f"'_', at most 40 characters, such as 'wallet_auth_'; got {prefix!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = pool
        self._owns_pool = pool is None
        self.pool_size = pool_size
        self.prefix = prefix
        self.timeout = float(timeout)
        self._ready = False
        self._opening: asyncio.Lock | None = None
        self._closed = False
        p = prefix
        self._sql_get = f"SELECT {_COLUMNS} FROM {p}users WHERE userid = $1"  # noqa: S608
        self._sql_by_address = f"SELECT {_COLUMNS} FROM {p}users WHERE address = $1"  # noqa: S608
        self._sql_merge = (
            f"SELECT {_COLUMNS} FROM {p}merge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"  # noqa: S608
        )
        self._sql_save = (
            f"SELECT {p}save_all($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
        self._sql_by_wallet = (
            f"SELECT {_COLUMNS} FROM {p}users WHERE address = $1 UNION ALL "  # noqa: S608
            f"SELECT {_COLUMNS} FROM {p}users WHERE userid = "
            f"(SELECT userid FROM {p}bindings WHERE address = $1) LIMIT 1"
        )
        self._sql_lock = f"SELECT {_COLUMNS} FROM {p}users WHERE userid = $1 FOR UPDATE"  # noqa: S608
        self._sql_update = (
            f"UPDATE {p}users SET first_login = $2, last_login = $3, device_keys = $4, "  # noqa: S608
            "nickname = $5, avatar_url = $6, avatar = $7, avatar_type = $8, main_pubkey = $9, "
            "session_keys = $10::jsonb, bound_wallets = $11::jsonb WHERE userid = $1"
        )
        self._sql_unbind = f"DELETE FROM {p}bindings WHERE userid = $1"  # noqa: S608
        self._sql_bind = f"INSERT INTO {p}bindings (address, userid) VALUES ($1, $2)"  # noqa: S608
        self._sql_count = f"SELECT count(*) FROM {p}users"  # noqa: S608

    @property
    def pool(self) -> asyncpg.Pool | None:
        """The connection pool: the one given, or the store's own once opened."""
        return self._pool

    @property
    def schema_version(self) -> int:
        """The schema version this code reads and writes."""
        return SCHEMA_VERSION

    async def open(self) -> None:
        """Create the pool and bring the schema up to date; call it at application startup.

        Raises ``SchemaVersionError`` with the reason when the database's schema is newer than
        this code, and the connection error when the database cannot be reached. Operations
        call it themselves until it has succeeded once.
        """
        if self._ready:
            return
        if self._closed:
            raise RuntimeError("PostgresUserStore is closed")
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # concurrent first requests open once
            if self._ready:
                return
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    command_timeout=self.timeout,
                    reset=_keep_session,
                )
            async with self._pool.acquire(timeout=self.timeout) as conn:
                await migrate(conn, self.prefix)
            self._ready = True

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        if not self._ready:
            await self.open()
        pool = self._pool
        assert pool is not None  # open() succeeded
        async with pool.acquire(timeout=self.timeout) as conn:
            return await conn.fetchrow(sql, *args, timeout=self.timeout)

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        row = await self._fetchrow(self._sql_get, userid)
        return None if row is None else _record(row)

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        row = await self._fetchrow(self._sql_by_address, address)
        return None if row is None else _record(row)

    async def save(self, record: UserRecord) -> None:
        """Make ``record`` the one record of its userid and of its address (an upsert).

        ``WalletBound`` when its address or a wallet it binds is another user's.
        """
        try:
            await self._fetchrow(
                self._sql_save,
                *_params(record),
                record.main_pubkey,
                session_keys_json(record),
                bound_wallets_json(record),
            )
        except asyncpg.PostgresError as exc:
            if _wallet_taken(exc):
                raise WalletBound("a wallet of this record belongs to another userid") from None
            raise

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        """Fold one device login into the stored user (see ``UserStore.merge``); one statement."""
        if isinstance(max_devices, bool) or not isinstance(max_devices, int) or max_devices < 1:
            raise ValueError(f"max_devices must be a positive integer; got {max_devices!r}")
        try:
            row = await self._fetchrow(self._sql_merge, *_params(login), max_devices)
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == _WALLET_TAKEN:
                return None  # a bound wallet logs in through its user, never on its own
            raise
        return None if row is None else _record(row)

    async def get_by_wallet(self, address: str) -> UserRecord | None:
        """The record whose own or bound wallet is ``address``, or None."""
        row = await self._fetchrow(self._sql_by_wallet, address)
        return None if row is None else _record(row)

    async def update(self, userid: str, change: UserChange) -> UserRecord | None:
        """Apply ``change`` to the row of ``userid`` under its row lock, in one transaction.

        A few round trips (lock, write, and the bound-wallet index when that changes): this
        serves key registrations, session logins and bindings, not every request.
        """
        if not self._ready:
            await self.open()
        pool = self._pool
        assert pool is not None  # open() succeeded
        async with pool.acquire(timeout=self.timeout) as conn:
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(self._sql_lock, userid, timeout=self.timeout)
                    if row is None:
                        return None
                    current = _record(row)
                    after = change(current)
                    if after is None:
                        return None
                    check_change(current, after)
                    await conn.execute(
                        self._sql_update,
                        userid,
                        *_params(after)[3:],
                        after.main_pubkey,
                        session_keys_json(after),
                        bound_wallets_json(after),
                        timeout=self.timeout,
                    )
                    if after.bound_wallets != current.bound_wallets:
                        await conn.execute(self._sql_unbind, userid, timeout=self.timeout)
                        for wallet in after.bound_wallets:
                            await conn.execute(
                                self._sql_bind, wallet.address, userid, timeout=self.timeout
                            )
                    return after
            except asyncpg.PostgresError as exc:
                if _wallet_taken(exc):
                    return None  # rolled back: nothing changed
                raise

    async def count(self) -> int:
        """How many users are stored."""
        row = await self._fetchrow(self._sql_count)
        return int(row[0])

    async def aclose(self) -> None:
        """Close the store's own pool (a pool given at construction is left open)."""
        self._closed = True
        self._ready = False
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            await pool.close()


__all__ = ["PostgresUserStore", "SchemaVersionError"]
