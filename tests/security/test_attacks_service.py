"""Attacks on the standalone service: its secret file, and credentials in its logs.

The secret file signs every token, so a file someone else could have written (another owner, a
symlink, a FIFO, a directory, a mode others can use) must stop ``serve`` rather than be used.
Tokens and request signatures sent in a query string must never reach the log that uvicorn
writes at ``serve``'s default level; that is checked on a real ``serve`` process.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from asgi_wallet_auth import private_files
from asgi_wallet_auth.log_redaction import (
    CredentialRedactor,
    install_log_redaction,
    redact_credentials,
)
from asgi_wallet_auth.service import SECRET_ENV, SECRET_FILE_NAME, load_or_create_secret
from tests.conftest import SECRET_KEY
from tests.helpers import login_at
from tests.processes import free_port, running_service
from tests.redis_server import RedisServer

PLANTED = "planted-by-someone-else-" + "p" * 40
NOBODY = 65534
SIGNATURE = "c2lnbmF0dXJlLWJ5dGVzLXRoYXQtbXVzdC1ub3QtbGVhaw+/="  # base64: + / =


@pytest.fixture(autouse=True)
def _no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)


def plant(directory: Path, content: str = PLANTED, mode: int = 0o600) -> Path:
    path = directory / SECRET_FILE_NAME
    path.write_text(content + "\n", encoding="ascii")
    path.chmod(mode)
    return path


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("planting a file owned by another user needs root (chown)")


def run_serve(directory: Path) -> subprocess.CompletedProcess[str]:
    """``serve`` that is expected to refuse to start: bounded, so a regression fails, not hangs."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_AUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "serve", "--port", str(free_port())],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- the secret file ----------------------------------------------------------------------------


def test_a_0600_secret_file_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    needs_root()
    path = plant(tmp_path)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(SystemExit) as refused:
        load_or_create_secret(tmp_path)
    message = str(refused.value)
    assert f"owned by uid {NOBODY}" in message
    assert f"rm {path}" in message and SECRET_ENV in message  # the fix
    assert PLANTED not in message


def test_serve_does_not_start_with_a_planted_secret_file(tmp_path: Path) -> None:
    # The reported attack: root runs serve in a world-writable directory where another user
    # planted a 0600 file; tokens forged with that secret would be accepted.
    needs_root()
    tmp_path.chmod(0o1777)
    os.chown(plant(tmp_path), NOBODY, NOBODY)
    result = run_serve(tmp_path)
    assert result.returncode != 0
    assert f"owned by uid {NOBODY}" in result.stderr
    assert "serving on" not in result.stdout
    assert PLANTED not in result.stdout + result.stderr


def test_a_symlink_is_refused_and_its_target_never_read_or_created(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = plant(elsewhere)  # a file the attacker controls, or one they want overwritten
    (tmp_path / SECRET_FILE_NAME).symlink_to(target)
    with pytest.raises(SystemExit, match="symbolic link"):
        load_or_create_secret(tmp_path)
    assert target.read_text() == PLANTED + "\n"

    dangling = tmp_path / "dangling"
    dangling.mkdir()
    missing = tmp_path / "would-be-created"
    (dangling / SECRET_FILE_NAME).symlink_to(missing)
    with pytest.raises(SystemExit, match="symbolic link"):
        load_or_create_secret(dangling)
    assert not missing.exists()  # O_EXCL: creating through the link is refused too


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666], ids=oct)
def test_a_secret_file_others_can_use_is_refused(tmp_path: Path, mode: int) -> None:
    plant(tmp_path, mode=mode)
    with pytest.raises(SystemExit) as refused:
        load_or_create_secret(tmp_path)
    assert "chmod 600" in str(refused.value)
    assert f"{mode:04o}" in str(refused.value)
    assert PLANTED not in str(refused.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids=oct)
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    plant(tmp_path, mode=mode)
    assert load_or_create_secret(tmp_path) == PLANTED


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / SECRET_FILE_NAME
    os.mkfifo(fifo, 0o600)
    outcome: list[BaseException | str] = []

    def load() -> None:
        try:
            outcome.append(load_or_create_secret(tmp_path))
        except BaseException as exc:  # SystemExit is what we expect
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # blocked in open(): release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=10)
        pytest.fail("opening a FIFO secret file blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], SystemExit)
    assert "not a regular file" in str(outcome[0])


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE_NAME).mkdir(mode=0o700)
    with pytest.raises(SystemExit, match="not a regular file"):
        load_or_create_secret(tmp_path)


def test_an_empty_or_short_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(private_files, "_CONCURRENT_WRITE_WAIT", 0.1)
    plant(tmp_path, content="")
    with pytest.raises(SystemExit, match="no secret of at least 32"):
        load_or_create_secret(tmp_path)
    plant(tmp_path, content="short")
    with pytest.raises(SystemExit, match="no secret of at least 32"):
        load_or_create_secret(tmp_path)


def test_the_secret_file_is_created_0600_owned_by_us_and_kept_across_restarts(
    tmp_path: Path,
) -> None:
    first = load_or_create_secret(tmp_path)
    info = (tmp_path / SECRET_FILE_NAME).lstat()
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    assert len(first) >= 43
    assert load_or_create_secret(tmp_path) == first  # the restart


def test_concurrent_creators_end_with_one_secret(tmp_path: Path) -> None:
    start = threading.Barrier(8)
    results: list[str] = []

    def create() -> None:
        start.wait(timeout=10)
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == 8
    assert len(set(results)) == 1


# -- credentials in the logs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/me?access_token=a.b.c", "/me?access_token=[redacted]"),
        ("/me?x=1&access_token=a.b.c&y=2", "/me?x=1&access_token=[redacted]&y=2"),
        ("/me?access%5Ftoken=a.b.c", "/me?access%5Ftoken=[redacted]"),
        ("/me?ACCESS_TOKEN=a.b.c", "/me?ACCESS_TOKEN=[redacted]"),
        ("/me?a=x;access_token=a.b.c", "/me?a=x;access_token=[redacted]"),
        ("/me?a=b?access_token=a.b.c", "/me?a=b?access_token=[redacted]"),
        ("/x?web3mq_user_signature=" + SIGNATURE, "/x?web3mq_user_signature=[redacted]"),
        (
            "/x?web3mq_signature=s&did_signature=t",
            "/x?web3mq_signature=[redacted]&did_signature=[redacted]",
        ),
        ("/x?signature=s&signature_content=kept", "/x?signature=[redacted]&signature_content=kept"),
        (
            '"GET /me?access_token=a.b.c HTTP/1.1" 401',
            '"GET /me?access_token=[redacted] HTTP/1.1" 401',
        ),
        ("{'query_string': b'access_token=a.b.c'}", "{'query_string': b'access_token=[redacted]'}"),
        ("/me?access_token=a.b.c?access_token=d", "/me?access_token=[redacted]"),
        ("/me?nothing=here", "/me?nothing=here"),
    ],
)
def test_credentials_are_cut_out_of_any_spelling(line: str, expected: str) -> None:
    assert redact_credentials(line) == expected


def test_the_filter_keeps_uvicorns_access_arguments_and_catches_split_messages() -> None:
    redactor = CredentialRedactor()
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/me?access_token=a.b.c", "1.1", 401),
        None,
    )
    assert redactor.filter(access)
    assert isinstance(access.args, tuple) and len(access.args) == 5  # uvicorn unpacks five
    assert access.args[2] == "/me?access_token=[redacted]" and access.args[4] == 401
    split = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "ws /me?access_token=%s", ("a.b.c",), None
    )
    assert redactor.filter(split)
    assert split.getMessage() == "ws /me?access_token=[redacted]"
    scope = {"type": "websocket", "query_string": b"access_token=a.b.c"}
    trace = logging.LogRecord(
        "uvicorn.asgi", 5, __file__, 1, "ASGI [%d] Started scope=%s", (1, scope), None
    )
    assert redactor.filter(trace)
    assert "a.b.c" not in trace.getMessage() and "[redacted]" in trace.getMessage()

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    odd = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%r", (Unprintable(),), None
    )
    assert redactor.filter(odd)  # kept, and no exception for the caller
    install_log_redaction(["tests.redaction"])
    install_log_redaction(["tests.redaction"])
    filters = logging.getLogger("tests.redaction").filters
    assert sum(isinstance(f, CredentialRedactor) for f in filters) == 1


def _send_credentials_in_queries(base: str, token: str) -> None:
    ws = base.replace("http://", "ws://")
    for query in (f"access_token={token}", f"x=1&access%5Ftoken={token}"):
        try:
            with connect(f"{ws}/me?{query}", open_timeout=10):
                pass
        except InvalidStatus:
            pass  # refused or not: the handshake line is logged either way
    signed = (
        f"userid=user:abc&timestamp=1767225600000&web3mq_user_signature={SIGNATURE}"
        f"&web3mq_signature={SIGNATURE}&did_signature={SIGNATURE}&signature={SIGNATURE}"
    )
    assert httpx.get(f"{base}/me?{signed}", timeout=10).status_code == 401
    assert httpx.get(f"{base}/me?access_token={token}", timeout=10).status_code == 401


def _assert_redacted(log: str, token: str) -> None:
    for segment in (token, *token.split(".")):
        assert segment not in log
    for spelling in (SIGNATURE, SIGNATURE.replace("+", " "), SIGNATURE[:20]):
        assert spelling not in log
    # The lines are there, with the values cut out: the check above was not vacuous.
    assert "/me?access_token=[redacted]" in log
    assert "access%5Ftoken=[redacted]" in log
    assert "web3mq_user_signature=[redacted]" in log
    assert "&signature=[redacted]" in log


def _wait_for_lines(log_file: Path, needle: str, count: int) -> None:
    """Until ``needle`` was written ``count`` times (uvicorn logs after answering)."""
    deadline = time.monotonic() + 10
    while log_file.read_text().count(needle) < count:  # a real process: polled, bounded
        if time.monotonic() > deadline:
            pytest.fail(f"the log never showed {count} x {needle!r}:\n{log_file.read_text()}")
        time.sleep(0.02)


def test_serve_at_its_default_log_level_never_logs_a_token_or_signature(
    tmp_path: Path, wallet: LocalAccount
) -> None:
    log_file = tmp_path / "serve.log"
    with running_service(
        tmp_path,
        free_port(),
        "--log-level",
        "info",  # serve's default, over the helper's quieter one
        env={SECRET_ENV: SECRET_KEY},
        output=log_file,
    ) as base:
        token = login_at(base, wallet)
        _send_credentials_in_queries(base, token)
        _wait_for_lines(log_file, "[redacted]", 7)  # seven values per round
    log = log_file.read_text()
    assert "WebSocket /me?access_token=[redacted]" in log
    _assert_redacted(log, token)


def test_each_worker_redacts_its_log(
    tmp_path: Path, wallet: LocalAccount, redis_server: RedisServer
) -> None:
    log_file = tmp_path / "serve.log"
    with running_service(
        tmp_path,
        free_port(),
        "--log-level",
        "info",
        "--workers",
        "2",
        "--redis-url",
        redis_server.url,
        env={SECRET_ENV: SECRET_KEY},
        output=log_file,
    ) as base:
        token = login_at(base, wallet)
        for _ in range(3):  # several rounds, so that both workers are likely to serve some
            _send_credentials_in_queries(base, token)
        _wait_for_lines(log_file, "[redacted]", 21)
    _assert_redacted(log_file.read_text(), token)
