"""The ``asgi-wallet-auth serve`` console script as a real process on a loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end(process: subprocess.Popen[bytes], timeout: float) -> None:
    """End a process this suite started, by its PID: SIGTERM, then SIGKILL after ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serving(
    command: list[str],
    *,
    base: str,
    probe: str,
    cwd: Path,
    env: dict[str, str],
    output: Path | None = None,
) -> Iterator[str]:
    """Run ``command`` (a server on ``base``) until the block ends; yields ``base`` once
    ``base + probe`` answers. ``output``: a file for everything the process writes; without it
    the output is only shown if the server exits early."""
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=sink if sink is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # poll a real server until it answers: bounded, and no clock can stand in
            if process.poll() is not None:
                if process.stdout is not None:
                    said = process.stdout.read().decode()
                else:
                    said = output.read_text() if output is not None else ""
                raise AssertionError(f"server exited early: {said}")
            try:
                httpx.get(f"{base}{probe}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("server did not start within 30 s") from None
                time.sleep(0.1)
        yield base
    finally:
        end(process, 15)
        if process.stdout is not None:
            process.stdout.close()
        if sink is not None:
            sink.close()


@contextlib.contextmanager
def running_service(
    workdir: Path,
    port: int,
    *args: str,
    env: dict[str, str] | None = None,
    output: Path | None = None,
) -> Iterator[str]:
    """Run ``serve`` until the block ends; yields its base URL once it answers.

    ``output``: a file that receives everything the process writes (stdout and stderr), to be
    read after the block; without it the output is only shown if the service exits early.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_AUTH_")}
    environment.update(env or {})
    command = [sys.executable, "-m", "asgi_wallet_auth.cli", "serve"]
    with serving(
        [*command, "--port", str(port), "--log-level", "warning", *args],
        base=f"http://127.0.0.1:{port}",
        probe="/me",
        cwd=workdir,
        env=environment,
        output=output,
    ) as base:
        yield base
