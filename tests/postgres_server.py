"""A real PostgreSQL server on a free loopback port in a temporary directory, run by the tests.

``initdb`` and ``postgres`` come from ``PATH`` or Debian's ``/usr/lib/postgresql/<version>/bin``.
The server refuses to run as root, so under root the cluster belongs to the ``postgres`` user
(or ``nobody``) and the processes run as that user; as anyone else they run as the caller.
Where no binaries exist the PostgreSQL tests skip with that reason, unless
``WALLET_AUTH_REQUIRE_POSTGRES=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
