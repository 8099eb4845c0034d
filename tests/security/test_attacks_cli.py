"""Attacks on ``asgi-wallet-auth login``: a slow service, a key file that blocks, a relaying URL.

A service that answers a byte at a time must not keep the command past ``--timeout`` (one
deadline for the whole login, both requests and every byte). A ``--key-file`` that is a FIFO,
a device, a directory or a symlink is refused before anything could block on it. A malicious
``--url`` that relays the login to a real service gets nothing usable from the default
(EIP-4361) login, because the signed message names the relay, not the service.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_wallet_auth.cli import main
from asgi_wallet_auth.client import KeySourceError, ServiceUnreachable, login, read_key_file
from tests.conftest import SECRET_KEY, WALLET_KEY
from tests.processes import free_port, running_service

Answer = Callable[[int, Any, threading.Event], None]
SECRET = "a" * 40


# -- a service that answers a byte at a time ----------------------------------------------------


def _drip(sock: Any, data: bytes, interval: float, stop: threading.Event) -> None:
    for byte in data:  # bounded by len(data); ends early when the test is over
        if stop.wait(interval):
            return
        sock.sendall(bytes([byte]))


def drip_headers(index: int, sock: Any, stop: threading.Event) -> None:
    """A status line, then a header that never ends (0.05 s a byte, 15 s at most)."""
    sock.sendall(b"HTTP/1.1 200 OK\r\n")
    _drip(sock, b"X-Slow: " + b"a" * 300, 0.05, stop)


def drip_body(index: int, sock: Any, stop: threading.Event) -> None:
    """Every header at once, then a body of 100,000 bytes at 0.05 s a byte (20 s at most)."""
    sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    _drip(sock, b" " * 400, 0.05, stop)


def slow_secret_then_drip(index: int, sock: Any, stop: threading.Event) -> None:
    """A valid secret sent over about 1.3 s, then a login answer that never ends."""
    if index == 0:
        body = b'{"code":0,"msg":"ok","data":"' + SECRET.encode() + b'"}'
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        _drip(sock, body, 1.3 / len(body), stop)
    else:
        drip_headers(index, sock, stop)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        length = 0
        for _ in range(100):  # the request's headers, bounded
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.rfile.read(length)
        with server.lock:
            index = server.requests
            server.requests += 1
        with contextlib.suppress(OSError):  # the client hung up: what the tests wait for
            server.answer(index, self.connection, server.stop)


@pytest.fixture
def dripping() -> Iterator[Callable[[Answer], str]]:
    """Start a loopback server answering with the given function; yields a starter."""
    servers: list[socketserver.ThreadingTCPServer] = []
    stop = threading.Event()

    def start(answer: Answer) -> str:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.answer = answer  # type: ignore[attr-defined]
        server.stop = stop  # type: ignore[attr-defined]
        server.lock = threading.Lock()  # type: ignore[attr-defined]
        server.requests = 0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        stop.set()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("answer", [drip_headers, drip_body], ids=["headers", "body"])
def test_a_dripping_answer_cannot_outlast_the_timeout(
    dripping: Callable[[Answer], str], answer: Answer
) -> None:
    url = dripping(answer)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match="within the 1 s timeout"):
        login(url, WALLET_KEY, timeout=1.0)
    elapsed = time.monotonic() - started
    # A per-read timeout of 1 s never fires on a byte every 0.05 s: that would run 15-20 s.
    assert 0.9 <= elapsed < 2.5, elapsed


def test_the_timeout_is_one_deadline_for_both_requests(
    dripping: Callable[[Answer], str],
) -> None:
    url = dripping(slow_secret_then_drip)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match="within the 2 s timeout"):
        login(url, WALLET_KEY, timeout=2.0)
    elapsed = time.monotonic() - started
    # The secret took ~1.3 s; a fresh 2 s for the second request would end at ~3.3 s.
    assert 1.9 <= elapsed < 2.9, elapsed


def test_the_command_exits_by_its_timeout_against_a_dripping_service(
    dripping: Callable[[Answer], str],
) -> None:
    url = dripping(drip_headers)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    environment["WALLET_PRIVATE_KEY"] = WALLET_KEY
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "login", "--url", url, "--timeout", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "within the 1 s timeout" in result.stderr
    assert result.stdout == ""
    assert elapsed < 10, elapsed  # interpreter start-up plus 1 s; the drip lasts 15 s


# -- key files that are not files ---------------------------------------------------------------


def _read_in_thread(path: Path) -> BaseException | bytes:
    """``read_key_file(path)`` on a thread; a FIFO that blocks it is released, then fails."""
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(read_key_file(path))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # lets the blocked open() return
        thread.join(timeout=10)
        pytest.fail(f"reading {path.name} blocked")
    return outcome[0]


def test_a_fifo_key_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "wallet.key"
    os.mkfifo(fifo, 0o600)
    outcome = _read_in_thread(fifo)
    assert isinstance(outcome, KeySourceError)
    assert "not a regular file" in str(outcome)


def test_the_command_refuses_a_fifo_key_file(tmp_path: Path) -> None:
    fifo = tmp_path / "wallet.key"
    os.mkfifo(fifo, 0o600)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asgi_wallet_auth.cli",
            "login",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--key-file",
            str(fifo),
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,  # a blocked open() would hang here and fail the test
        check=False,
    )
    assert result.returncode == 2
    assert "not a regular file" in result.stderr


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    real.write_text(WALLET_KEY)
    real.chmod(0o600)
    link = tmp_path / "wallet.key"
    link.symlink_to(real)
    with pytest.raises(KeySourceError, match="symbolic link"):
        read_key_file(link)
    assert read_key_file(real) == bytes.fromhex(WALLET_KEY[2:])  # the file itself is fine


@pytest.mark.parametrize("kind", ["directory", "device"])
def test_other_non_files_are_refused(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "wallet.key"
        path.mkdir(mode=0o700)
    else:
        path = Path(os.devnull)
    with pytest.raises(KeySourceError, match="not a regular file"):
        read_key_file(path)


# -- a malicious --url relaying to the real service ---------------------------------------------


class _Relay(http.server.BaseHTTPRequestHandler):
    """Forwards each POST to the real service and records what the real service answered."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = httpx.post(
            server.target + self.path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        server.seen.append((self.path, body, answer))
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def real_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service(
        tmp_path_factory.mktemp("real"), free_port(), env={"WALLET_AUTH_SECRET": SECRET_KEY}
    ) as base:
        yield base


@pytest.fixture
def relay(real_service: str) -> Iterator[tuple[str, list[Any]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
    server.target = real_service  # type: ignore[attr-defined]
    seen: list[Any] = []
    server.seen = seen  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("WALLET_PRIVATE_KEY", WALLET_KEY)
    return main(["login", *args])


def _logins(seen: list[Any]) -> list[httpx.Response]:
    return [answer for path, _, answer in seen if path == "/login"]


def test_the_default_login_through_a_relay_gives_the_relay_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], relay: Any
) -> None:
    url, seen = relay
    assert _main(monkeypatch, "--url", url) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error 40103: ")
    assert "hint: the message named domain 127.0.0.1:" in err
    [answer] = _logins(seen)  # what the real service told the relay
    assert answer.status_code == 401 and answer.json()["code"] == 40103
    assert answer.json()["data"] is None  # no token for the relay to keep
    body = next(b for path, b, _ in seen if path == "/login")
    assert b"signature_content" in body and url.removeprefix("http://").encode() in body


def test_siwe_is_still_accepted_and_means_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], relay: Any
) -> None:
    url, seen = relay
    assert _main(monkeypatch, "--url", url, "--siwe") == 1
    [answer] = _logins(seen)
    assert answer.json()["code"] == 40103


def test_raw_is_an_explicit_choice_and_shows_why_it_is_not_the_default(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    relay: Any,
    real_service: str,
) -> None:
    url, seen = relay
    assert _main(monkeypatch, "--url", url, "--raw") == 0
    [answer] = _logins(seen)
    token = answer.json()["data"]["access_token"]  # the relay keeps a working token
    me = httpx.get(f"{real_service}/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--raw", "--siwe"), "not allowed with"),
        (("--raw", "--domain", "example.com"), "--domain only apply to EIP-4361"),
        (("--raw", "--chain-id", "10"), "--chain-id only apply to EIP-4361"),
    ],
)
def test_raw_with_eip4361_options_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    said: str,
) -> None:
    try:
        status = _main(monkeypatch, "--url", f"http://127.0.0.1:{free_port()}", *args)
    except SystemExit as exc:  # argparse
        status = exc.code if isinstance(exc.code, int) else 1
    assert status == 2
    assert said in capsys.readouterr().err
