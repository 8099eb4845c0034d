"""SQLite off the event loop: one dedicated thread that owns the connection.

The user store and the event store share this: every call runs on the store's own thread (so
the event loop never blocks on disk and SQLite never sees two threads on one connection), the
file is opened in WAL mode with a busy timeout at construction (a bad path fails there, not at
the first request), and ``close`` folds the WAL back into the file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")


class SQLiteThread:
    """A SQLite file (or ``":memory:"``) served by one thread; subclasses create their schema."""

    def __init__(self, path: str | os.PathLike[str], *, thread_name: str) -> None:
        self._path = os.fspath(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._local = threading.local()
        self._closed = False
        # Open now, so a bad path is a construction error and not a 503 at the first request.
        self._executor.submit(self._connection).result()

    @property
    def path(self) -> str:
        """The database path given at construction."""
        return self._path

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create (or bring up to date) the tables this store keeps."""
        raise NotImplementedError

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            if self._path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            self._create_schema(conn)
            self._local.conn = conn
        return conn

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: work(self._connection())
        )

    def close(self) -> None:
        """Close the connection and stop the thread; later calls raise (a 503 to clients)."""
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


__all__ = ["SQLiteThread"]
