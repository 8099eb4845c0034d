"""Audit events in SQLite: a table beside the users of ``SQLiteUserStore``, off the event loop."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from ..events import AuthEvent
from .sqlite_thread import SQLiteThread

_T = TypeVar("_T")

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS wallet_auth_events (
    id         TEXT PRIMARY KEY,
    at         REAL NOT NULL,
    kind       TEXT NOT NULL,
    address    TEXT,
    did_type   TEXT,
    userid     TEXT,
    account_id TEXT,
    session    TEXT,
    route      TEXT,
    ip         TEXT,
    code       INTEGER,
    detail     TEXT
)
""",
    "CREATE INDEX IF NOT EXISTS wallet_auth_events_at ON wallet_auth_events (at)",
)
COLUMNS = (
    "id",
    "at",
    "kind",
    "address",
    "did_type",
    "userid",
    "account_id",
    "session",
    "route",
    "ip",
    "code",
    "detail",
)
_INSERT = (
    f"INSERT INTO wallet_auth_events ({', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)


def event_row(event: AuthEvent) -> tuple[Any, ...]:
    """The column values of ``event``, in ``COLUMNS`` order."""
    return tuple(getattr(event, name) for name in COLUMNS)


def event_of(row: Any) -> AuthEvent:
    """The event of a row selected in ``COLUMNS`` order."""
    values = dict(zip(COLUMNS, row, strict=True))
    values["at"] = float(values["at"])
    return AuthEvent(**values)


def where_clause(
    *,
    since: float,
    until: float | None,
    kinds: Collection[str] | None,
    address: str | None,
    placeholder: Callable[[int], str],
) -> tuple[str, list[Any]]:
    """The ``WHERE`` of a query, with its parameters (``placeholder(n)`` names the n-th)."""
    terms: list[str] = ["at >= " + placeholder(1)]
    params: list[Any] = [float(since)]
    if until is not None:
        params.append(float(until))
        terms.append("at < " + placeholder(len(params)))
    if kinds is not None:
        marks = []
        for kind in kinds:
            params.append(kind)
            marks.append(placeholder(len(params)))
        terms.append(f"kind IN ({', '.join(marks) or 'NULL'})")
    if address is not None:
        params.append(address)
        terms.append("address = " + placeholder(len(params)))
    return " AND ".join(terms), params


class SQLiteEventStore(SQLiteThread):
    """Events in the SQLite file of the users (``SQLiteEventStore("users.db")``).

    It opens its own connection on its own thread (SQLite's WAL lets it write beside the user
    store), so a slow disk never blocks the event loop.
    """

    def __init__(self, path: str | os.PathLike[str] = "asgi-wallet-auth.db") -> None:
        super().__init__(path, thread_name="wallet-auth-events")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)

    async def record(self, event: AuthEvent) -> None:
        """Keep ``event``."""
        row = event_row(event)
        await self._call(lambda conn: conn.execute(_INSERT, row))

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
            since=since, until=until, kinds=kinds, address=address, placeholder=lambda n: "?"
        )
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM wallet_auth_events WHERE {where} "  # noqa: S608
            "ORDER BY at, id LIMIT ?"
        )
        rows = await self._call(lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [event_of(row) for row in rows]

    async def purge(self, before: float) -> int:
        """Delete the events older than ``before``; how many."""
        cursor = await self._call(
            lambda conn: conn.execute("DELETE FROM wallet_auth_events WHERE at < ?", (before,))
        )
        return int(cursor.rowcount)


__all__ = ["COLUMNS", "SQLiteEventStore", "event_of", "event_row", "where_clause"]
