"""Audit events in PostgreSQL, in the database (and pool) of a ``PostgresUserStore``.

The table is migration 3 of the user store's schema, so ``PostgresUserStore.open()`` creates it.
"""

from __future__ import annotations

from collections.abc import Collection

from ..events import AuthEvent
from .postgres import PostgresUserStore
from .sqlite_events import COLUMNS, event_of, event_row, where_clause


class PostgresEventStore:
    """Events beside the users of ``user_store``: its pool, prefix and timeout."""

    def __init__(self, user_store: PostgresUserStore) -> None:
        if not isinstance(user_store, PostgresUserStore):
            raise ValueError(
                "PostgresEventStore needs the PostgresUserStore whose database it uses"
            )
        self.user_store = user_store
        table = f"{user_store.prefix}events"
        marks = ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1))
        self._table = table
        self._sql_insert = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608

    async def _pool(self) -> object:
        store = self.user_store
        await store.open()  # creates or migrates the schema the first time
        return store.pool

    async def record(self, event: AuthEvent) -> None:
        """Keep ``event``."""
        pool = await self._pool()
        timeout = self.user_store.timeout
        async with pool.acquire(timeout=timeout) as conn:  # type: ignore[attr-defined]
            await conn.execute(self._sql_insert, *event_row(event), timeout=timeout)

    async def query(
        self,
        *,
        since: float,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        address: str | None = None,
        limit: int = 1000,
    ) -> list[AuthEvent]:
        """Events at or after ``since`` (and before ``until``), oldest first, at most ``limit``."""
        where, params = where_clause(
            since=since,
            until=until,
            kinds=None if kinds is None else list(kinds),
            address=address,
            placeholder=lambda n: f"${n}",
        )
        params.append(int(limit))
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self._table} WHERE {where} "  # noqa: S608
            f"ORDER BY at, id LIMIT ${len(params)}"
        )
        pool = await self._pool()
        timeout = self.user_store.timeout
        async with pool.acquire(timeout=timeout) as conn:  # type: ignore[attr-defined]
            rows = await conn.fetch(sql, *params, timeout=timeout)
        return [event_of(tuple(row)) for row in rows]

    async def purge(self, before: float) -> int:
        """Delete the events older than ``before``; how many."""
        pool = await self._pool()
        timeout = self.user_store.timeout
        async with pool.acquire(timeout=timeout) as conn:  # type: ignore[attr-defined]
            status = await conn.execute(
                f"DELETE FROM {self._table} WHERE at < $1",  # noqa: S608
                float(before),
                timeout=timeout,
            )
        # asyncpg answers the command tag, "DELETE <count>".
        return int(str(status).rsplit(" ", 1)[-1])


__all__ = ["PostgresEventStore"]
