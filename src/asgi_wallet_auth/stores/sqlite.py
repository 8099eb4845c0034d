"""A user store in SQLite (standard library ``sqlite3``), run off the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from ..users import UserRecord, merge_login

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallet_users (
    userid      TEXT PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    did_type    TEXT NOT NULL,
    first_login REAL NOT NULL,
    last_login  REAL NOT NULL,
    device_keys TEXT NOT NULL DEFAULT '[]',
    nickname    TEXT,
    avatar_url  TEXT,
    avatar      BLOB,
    avatar_type TEXT
)
"""
# Columns added after the first schema; an older database gains them on open.
_ADDED_COLUMNS = {
    "device_keys": "TEXT NOT NULL DEFAULT '[]'",
    "nickname": "TEXT",
    "avatar_url": "TEXT",
    "avatar": "BLOB",
    "avatar_type": "TEXT",
}
_COLUMNS = (
    "userid, address, did_type, first_login, last_login, device_keys, nickname, avatar_url, "
    "avatar, avatar_type"
)
_UPSERT = (
    f"INSERT INTO wallet_users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT(userid) DO UPDATE SET "
    "address = excluded.address, did_type = excluded.did_type, "
    "first_login = MIN(first_login, excluded.first_login), "
    "last_login = MAX(last_login, excluded.last_login), "
    "device_keys = excluded.device_keys, nickname = excluded.nickname, "
    "avatar_url = excluded.avatar_url, avatar = excluded.avatar, "
    "avatar_type = excluded.avatar_type"
)


def _row(record: UserRecord) -> tuple[Any, ...]:
    return (
        record.userid,
        record.address,
        record.did_type,
        record.first_login,
        record.last_login,
        json.dumps(list(record.device_keys)),
        record.nickname,
        record.avatar_url,
        record.avatar,
        record.avatar_type,
    )


def _record(row: tuple[Any, ...]) -> UserRecord:
    userid, address, did_type, first, last, keys, nickname, avatar_url, avatar, avatar_type = row
    return UserRecord(
        userid,
        address,
        did_type,
        float(first),
        float(last),
        tuple(json.loads(keys)),
        nickname,
        avatar_url,
        None if avatar is None else bytes(avatar),
        avatar_type,
    )


class SQLiteUserStore:
    """Users in a SQLite file (or ``":memory:"``).

    All database work runs on one dedicated thread that owns the connection, so the event loop never
    blocks on disk and SQLite never sees two threads on one connection. Writes run in immediate
    transactions, so ``create`` stays atomic even with several processes on one file. Saving keeps
    the earliest ``first_login`` of a userid, so two racing first logins cannot rewrite history.
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
            if self._path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(wallet_users)")}
            for column, declaration in _ADDED_COLUMNS.items():
                if column not in present:
                    conn.execute(f"ALTER TABLE wallet_users ADD COLUMN {column} {declaration}")
            self._local.conn = conn
        return conn

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RuntimeError("SQLiteUserStore is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: work(self._connection())
        )

    async def _select(self, where: str, value: str) -> UserRecord | None:
        sql = f"SELECT {_COLUMNS} FROM wallet_users WHERE {where} = ?"  # noqa: S608
        rows = await self._call(lambda conn: conn.execute(sql, (value,)).fetchall())
        return _record(rows[0]) if rows else None

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        return await self._select("userid", userid)

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        return await self._select("address", address)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, record: UserRecord) -> None:
        # A wallet has one userid: its record under another userid gives way.
        conn.execute(
            "DELETE FROM wallet_users WHERE address = ? AND userid <> ?",
            (record.address, record.userid),
        )
        conn.execute(_UPSERT, _row(record))

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[[], _T]) -> _T:
        # IMMEDIATE takes the write lock first, so read-then-write is atomic across processes.
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def save(self, record: UserRecord) -> None:
        """Make ``record`` the one record of its userid and of its address (an upsert)."""
        await self._call(lambda conn: self._transaction(conn, lambda: self._upsert(conn, record)))

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        """Fold one device login into the stored user (see ``UserStore.merge``)."""

        def work(conn: sqlite3.Connection) -> UserRecord | None:
            def select(userid: str) -> UserRecord | None:
                sql = f"SELECT {_COLUMNS} FROM wallet_users WHERE userid = ?"  # noqa: S608
                row = conn.execute(sql, (userid,)).fetchone()
                return None if row is None else _record(row)

            def merge() -> UserRecord | None:
                nonlocal login
                current = select(login.userid)
                if current is None and login.userid == login.address:
                    # The default userid: a wallet registered under another userid keeps it.
                    sql = f"SELECT {_COLUMNS} FROM wallet_users WHERE address = ?"  # noqa: S608
                    row = conn.execute(sql, (login.address,)).fetchone()
                    current = None if row is None else _record(row)
                    if current is not None:
                        login = replace(login, userid=current.userid)
                elif current is None:
                    default = select(login.address)
                    if default is not None and default.address == login.address:
                        current = default
                elif current.address != login.address:
                    return None
                merged = merge_login(current, login, max_devices)
                if current is not None and current.userid != merged.userid:
                    conn.execute("DELETE FROM wallet_users WHERE userid = ?", (current.userid,))
                self._upsert(conn, merged)
                return merged

            return self._transaction(conn, merge)

        return await self._call(work)

    async def count(self) -> int:
        """How many users are stored."""
        rows = await self._call(
            lambda conn: conn.execute("SELECT COUNT(*) FROM wallet_users").fetchall()
        )
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
