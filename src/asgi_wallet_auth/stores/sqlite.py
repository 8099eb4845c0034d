"""A user store in SQLite (standard library ``sqlite3``), run off the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..users import UserRecord

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_users (
    userid      TEXT PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    did_type    TEXT NOT NULL,
    first_login REAL NOT NULL,
    last_login  REAL NOT NULL
)
"""
_COLUMNS = "userid, address, did_type, first_login, last_login"


class SQLiteUserStore:
    """Users in a SQLite file (or ``":memory:"``).

    All database work runs on one dedicated thread that owns the connection, so the event loop never
    blocks on disk and SQLite never sees two threads on one connection. Saving keeps the earliest
    ``first_login`` for a userid, so two racing first logins cannot rewrite history.
    """

    def __init__(self, path: str | os.PathLike[str] = "asgi-wallet-auth.db") -> None:
        self._path = os.fspath(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wallet-auth-sqlite")
        self._local = threading.local()
        self._closed = False
        # Open now, so a bad path is a construction error and not a 503 at the first login.
        self._executor.submit(self._connection).result()

    @property
    def path(self) -> str:
        """The database path given at construction."""
        return self._path

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(
                "PRAGMA journal_mode=WAL" if self._path != ":memory:" else "PRAGMA foreign_keys=ON"
            )
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
            self._local.conn = conn
        return conn

    async def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._closed:
            raise RuntimeError("SQLiteUserStore is closed")

        def work() -> list[tuple[Any, ...]]:
            return self._connection().execute(sql, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    @staticmethod
    def _record(rows: list[tuple[Any, ...]]) -> UserRecord | None:
        if not rows:
            return None
        userid, address, did_type, first_login, last_login = rows[0]
        return UserRecord(userid, address, did_type, float(first_login), float(last_login))

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        return self._record(
            await self._run(f"SELECT {_COLUMNS} FROM wallet_users WHERE userid = ?", (userid,))  # noqa: S608
        )

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        return self._record(
            await self._run(f"SELECT {_COLUMNS} FROM wallet_users WHERE address = ?", (address,))  # noqa: S608
        )

    async def save(self, record: UserRecord) -> None:
        """Insert or replace the record with ``record.userid``, keeping the earliest first login."""
        await self._run(
            "INSERT INTO wallet_users (userid, address, did_type, first_login, last_login) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(userid) DO UPDATE SET "
            "address = excluded.address, did_type = excluded.did_type, "
            "first_login = MIN(first_login, excluded.first_login), "
            "last_login = MAX(last_login, excluded.last_login)",
            (record.userid, record.address, record.did_type, record.first_login, record.last_login),
        )

    async def count(self) -> int:
        """How many users are stored."""
        rows = await self._run("SELECT COUNT(*) FROM wallet_users", ())
        return int(rows[0][0])

    def close(self) -> None:
        """Close the connection and stop the worker thread; later calls raise (a 503 to clients)."""
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        self._executor.submit(shut).result()
        self._executor.shutdown(wait=True)


__all__ = ["SQLiteUserStore"]
