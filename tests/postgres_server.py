"""A real PostgreSQL server on a free loopback port in a temporary directory, run by the tests.

``initdb`` and ``postgres`` come from ``PATH`` or Debian's ``/usr/lib/postgresql/<version>/bin``.
The server refuses to run as root, so under root the cluster belongs to the ``postgres`` user
(or ``nobody``) and the processes run as that user; as anyone else they run as the caller.
Where no binaries exist the PostgreSQL tests skip with that reason, unless
``WALLET_AUTH_REQUIRE_POSTGRES=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_POSTGRES"
USER = "wallet_auth_test"


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def postgres_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``, or skip (fail under CI) without one."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("postgres") is not None:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    reason = "PostgreSQL is not installed (apt-get install postgresql, or scripts/ci-postgres.sh)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the PostgreSQL tests to run")
    pytest.skip(reason)


def _server_account() -> pwd.struct_passwd | None:
    """Whom to run the server as: None (the caller) unless the caller is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is no postgres or nobody user to run as")


class PostgresServer:
    """One throwaway cluster (trust authentication, no durability) listening on 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.port = port or free_port()
        self.account = _server_account()
        # Not pytest's tmp_path: that is private to the caller, and the server may be another user.
        self.workdir = Path(tempfile.mkdtemp(prefix="wallet-auth-pg-"))
        self.datadir = self.workdir / "data"
        if self.account is not None:
            os.chown(self.workdir, self.account.pw_uid, self.account.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None
        self._initdb()

    @property
    def url(self) -> str:
        """A DSN for the superuser of this cluster over TCP."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, object]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            timeout=120,
            **self._run_as(),  # type: ignore[call-overload]
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections (at most 30 s)."""
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        try:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.workdir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # A test cluster: speed over durability.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=100",
                ],
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                **self._run_as(),  # type: ignore[call-overload]
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not self._ready():  # a real server: poll until it accepts, bounded
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"postgres did not start:\n{text}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        isready = self.bindir / "pg_isready"
        if isready.exists():
            args = [str(isready), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER]
            return subprocess.run(args, check=False, timeout=10).returncode == 0
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, as when a database host goes away."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """Stop the server and remove its cluster."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# Codes of the untyped requests a client may send before its StartupMessage.
_SSL_REQUEST, _GSS_REQUEST = 80877103, 80877104


class RoundTripCounter:
    """A loopback TCP proxy in front of a server that counts the clients' round trips.

    It reads the client's side of the wire protocol and counts ``Sync`` and ``Query`` messages:
    each makes the client wait for the server's ``ReadyForQuery``, so each is one round trip.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.round_trips = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    def url(self, user: str = USER, database: str = "postgres") -> str:
        """A DSN that reaches the server through this proxy (no TLS, so it can be read)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and cut every proxied connection."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers += [writer, upstream_writer]
        self._spawn(self._client_side(reader, upstream_writer))
        self._spawn(self._server_side(upstream_reader, writer))

    async def _client_side(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        typed = False
        try:
            while True:
                if typed:
                    head = await reader.readexactly(5)
                    body = await reader.readexactly(int.from_bytes(head[1:], "big") - 4)
                    if head[:1] in (b"S", b"Q"):
                        self.round_trips += 1
                else:  # StartupMessage and the requests before it have no type byte
                    head = await reader.readexactly(4)
                    body = await reader.readexactly(int.from_bytes(head, "big") - 4)
                    typed = int.from_bytes(body[:4], "big") not in (_SSL_REQUEST, _GSS_REQUEST)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
