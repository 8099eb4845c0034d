"""A real ``redis-server`` on a free loopback port, started and stopped by the tests.

Where no ``redis-server`` binary exists the Redis tests skip with that reason, unless
``WALLET_AUTH_REQUIRE_REDIS=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import end, free_port

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_REDIS"


def redis_binary() -> str:
    """The path of ``redis-server``, or skip (fail under CI) when there is none."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the Redis tests to run")
        pytest.skip(reason)
    return path


class RedisServer:
    """One ``redis-server`` process with no persistence, on 127.0.0.1."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:  # a real server: poll until it accepts, bounded
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            end(self.process, 5)
        self.process = None
