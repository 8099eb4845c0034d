"""A user store in SQLite (standard library ``sqlite3``), run off the event loop."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ..users import (
    UserChange,
    UserRecord,
    WalletBound,
    check_change,
    merge_login,
    merge_target,
)
from .keyfields import (
    bound_wallets_from,
    bound_wallets_json,
    session_keys_from,
    session_keys_json,
)
from .sqlite_thread import SQLiteThread

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
    "main_pubkey": "TEXT",
    "session_keys": "TEXT NOT NULL DEFAULT '[]'",
    "bound_wallets": "TEXT NOT NULL DEFAULT '[]'",
}
# Every bound wallet's address, once store-wide: a wallet is bound to one userid at most.
_BINDINGS = (
    "CREATE TABLE IF NOT EXISTS wallet_bindings (address TEXT PRIMARY KEY, userid TEXT NOT NULL)"
)
_COLUMNS = (
    "userid, address, did_type, first_login, last_login, device_keys, nickname, avatar_url, "
    "avatar, avatar_type, main_pubkey, session_keys, bound_wallets"
)
_UPSERT = (
    f"INSERT INTO wallet_users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT(userid) DO UPDATE SET "
    "address = excluded.address, did_type = excluded.did_type, "
    "first_login = MIN(first_login, excluded.first_login), "
    "last_login = MAX(last_login, excluded.last_login), "
    "device_keys = excluded.device_keys, nickname = excluded.nickname, "
    "avatar_url = excluded.avatar_url, avatar = excluded.avatar, "
    "avatar_type = excluded.avatar_type, main_pubkey = excluded.main_pubkey, "
    "session_keys = excluded.session_keys, bound_wallets = excluded.bound_wallets"
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
        record.main_pubkey,
        session_keys_json(record),
        bound_wallets_json(record),
    )


def _record(row: tuple[Any, ...]) -> UserRecord:
    userid, address, did_type, first, last, keys, nickname, avatar_url, avatar, avatar_type = (
        row[:10]
    )
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
        row[10],
        session_keys_from(row[11]),
        bound_wallets_from(row[12]),
    )


class _Taken(Exception):
    """A bound wallet of an update is already another user's: roll the transaction back."""


class SQLiteUserStore(SQLiteThread):
    """Users in a SQLite file (or ``":memory:"``).

    All database work runs on one dedicated thread that owns the connection, so the event loop never
    blocks on disk and SQLite never sees two threads on one connection. Writes run in immediate
    transactions, so ``create`` stays atomic even with several processes on one file. Saving keeps
    the earliest ``first_login`` of a userid, so two racing first logins cannot rewrite history.
    """

    def __init__(self, path: str | os.PathLike[str] = "asgi-wallet-auth.db") -> None:
        super().__init__(path, thread_name="wallet-auth-sqlite")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute(_SCHEMA)
        present = {row[1] for row in conn.execute("PRAGMA table_info(wallet_users)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column not in present:
                conn.execute(f"ALTER TABLE wallet_users ADD COLUMN {column} {declaration}")
        conn.execute(_BINDINGS)

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

    async def get_by_wallet(self, address: str) -> UserRecord | None:
        """The record whose own or bound wallet is ``address``, or None."""
        sql = (
            f"SELECT {_COLUMNS} FROM wallet_users WHERE address = ? UNION ALL "  # noqa: S608
            f"SELECT {_COLUMNS} FROM wallet_users WHERE userid = "
            "(SELECT userid FROM wallet_bindings WHERE address = ?) LIMIT 1"
        )
        rows = await self._call(lambda conn: conn.execute(sql, (address, address)).fetchall())
        return _record(rows[0]) if rows else None

    @staticmethod
    def _bound_elsewhere(conn: sqlite3.Connection, address: str, userid: str) -> bool:
        sql = "SELECT 1 FROM wallet_bindings WHERE address = ? AND userid <> ?"
        return conn.execute(sql, (address, userid)).fetchone() is not None

    @staticmethod
    def _rebind(conn: sqlite3.Connection, record: UserRecord) -> bool:
        """Make the index hold exactly ``record``'s bound wallets; False if one is taken."""
        conn.execute("DELETE FROM wallet_bindings WHERE userid = ?", (record.userid,))
        for wallet in record.bound_wallets:
            taken = conn.execute(
                "SELECT 1 FROM wallet_users WHERE address = ? UNION ALL "
                "SELECT 1 FROM wallet_bindings WHERE address = ?",
                (wallet.address, wallet.address),
            ).fetchone()
            if taken is not None:
                return False
            conn.execute(
                "INSERT INTO wallet_bindings (address, userid) VALUES (?, ?)",
                (wallet.address, record.userid),
            )
        return True

    @classmethod
    def _upsert(cls, conn: sqlite3.Connection, record: UserRecord) -> None:
        if cls._bound_elsewhere(conn, record.address, record.userid):
            raise WalletBound("this address is bound to another userid")
        # A wallet has one userid: its record under another userid gives way.
        conn.execute(
            "DELETE FROM wallet_bindings WHERE userid IN "
            "(SELECT userid FROM wallet_users WHERE address = ? AND userid <> ?)",
            (record.address, record.userid),
        )
        conn.execute(
            "DELETE FROM wallet_users WHERE address = ? AND userid <> ?",
            (record.address, record.userid),
        )
        conn.execute(_UPSERT, _row(record))
        if not cls._rebind(conn, record):
            raise WalletBound("a bound wallet belongs to another userid")

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
                if self._bound_elsewhere(conn, login.address, ""):
                    return None  # a bound wallet logs in through its user, never on its own
                folded = login
                current = select(login.userid)
                if current is None:
                    sql = f"SELECT {_COLUMNS} FROM wallet_users WHERE address = ?"  # noqa: S608
                    row = conn.execute(sql, (login.address,)).fetchone()
                    current, target = merge_target(
                        None if row is None else _record(row), login
                    )
                    if target is None:
                        return None
                    folded = target
                elif current.address != login.address:
                    return None
                merged = merge_login(current, folded, max_devices)
                if current is not None and current.userid != merged.userid:
                    conn.execute("DELETE FROM wallet_users WHERE userid = ?", (current.userid,))
                    conn.execute(
                        "UPDATE wallet_bindings SET userid = ? WHERE userid = ?",
                        (merged.userid, current.userid),
                    )
                self._upsert(conn, merged)
                return merged

            return self._transaction(conn, merge)

        return await self._call(work)

    async def update(self, userid: str, change: UserChange) -> UserRecord | None:
        """Apply ``change`` to the record of ``userid`` in one immediate transaction."""

        def work(conn: sqlite3.Connection) -> UserRecord | None:
            def apply() -> UserRecord | None:
                sql = f"SELECT {_COLUMNS} FROM wallet_users WHERE userid = ?"  # noqa: S608
                row = conn.execute(sql, (userid,)).fetchone()
                if row is None:
                    return None
                current = _record(row)
                after = change(current)
                if after is None:
                    return None
                check_change(current, after)
                conn.execute(_UPSERT, _row(after))
                if not self._rebind(conn, after):
                    raise _Taken()
                return after

            try:
                return self._transaction(conn, apply)
            except _Taken:  # rolled back: nothing changed
                return None

        return await self._call(work)

    async def count(self) -> int:
        """How many users are stored."""
        rows = await self._call(
            lambda conn: conn.execute("SELECT COUNT(*) FROM wallet_users").fetchall()
        )
        return int(rows[0][0])


__all__ = ["SQLiteUserStore"]
