"""``asgi-wallet-auth login`` against a real ``asgi-wallet-auth serve`` on a loopback port."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from asgi_wallet_auth.cli import build_parser, main
from asgi_wallet_auth.client import (
    KeySourceError,
    ServiceRefused,
    build_siwe_message,
    endpoint,
    load_private_key,
    login,
    siwe_binding,
)
from asgi_wallet_auth.siwe import SiweMessage
from tests.conftest import OTHER_KEY, SECRET_KEY, WALLET_KEY
from tests.processes import free_port, running_service

WALLET_ADDRESS = Account.from_key(WALLET_KEY).address
OTHER_ADDRESS = Account.from_key(OTHER_KEY).address
JWT_LINE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n")
NAMED_DOMAIN = "auth.test"
NAMED_URI = "https://auth.test"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``serve`` for the module, on its defaults: domain 127.0.0.1:PORT, uri http://..."""
    with running_service(
        tmp_path_factory.mktemp("serve"), free_port(), env={"WALLET_AUTH_SECRET": SECRET_KEY}
    ) as base:
        yield base


@pytest.fixture(scope="module")
def named_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``serve`` whose EIP-4361 binding is not its address (as behind a proxy)."""
    with running_service(
        tmp_path_factory.mktemp("serve-named"),
        free_port(),
        "--domain",
        NAMED_DOMAIN,
        "--uri",
        NAMED_URI,
        env={"WALLET_AUTH_SECRET": SECRET_KEY},
    ) as base:
        yield base


def run_login(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``asgi-wallet-auth login ARGS`` with only ``env`` as key sources.

    Every run checks that neither test key appears anywhere in the output, in any form.
    """
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WALLET_AUTH_") and k != "WALLET_PRIVATE_KEY"
    }
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "login", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _assert_no_key(result.stdout, result.stderr)
    return result


def _assert_no_key(*outputs: str) -> None:
    text = "".join(outputs).lower()
    for key in (WALLET_KEY, OTHER_KEY):
        assert key[2:].lower() not in text


def run_main(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """``main(["login", *args])`` in this process: (exit status, stdout, stderr), key-checked.

    For the cases that end before any request; the end-to-end ones run the real console script.
    """
    monkeypatch.delenv("WALLET_PRIVATE_KEY", raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    try:
        status = main(["login", *args])
    except SystemExit as exc:  # argparse errors
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    _assert_no_key(out, err)
    return status, out, err


def me(base: str, token: str) -> httpx.Response:
    return httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def key_file(directory: Path, content: str, mode: int = 0o600) -> Path:
    path = directory / "wallet.key"
    path.write_text(content, encoding="ascii")
    path.chmod(mode)
    return path


# -- the token on stdout --------------------------------------------------------------------


def test_key_from_the_environment_prints_one_jwt_line_that_works(service: str) -> None:
    result = run_login("--url", service, env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 0, result.stderr
    assert JWT_LINE.fullmatch(result.stdout), result.stdout
    assert result.stderr == ""
    response = me(service, result.stdout.strip())
    assert response.status_code == 200
    assert response.json()["data"]["address"] == WALLET_ADDRESS


def test_key_from_a_0600_file_without_0x_and_with_whitespace(service: str, tmp_path: Path) -> None:
    path = key_file(tmp_path, "\n  " + OTHER_KEY[2:].upper() + "  \n")
    # The file wins over the variable: the token must be OTHER's, not WALLET's.
    result = run_login(
        "--url", service, "--key-file", str(path), env={"WALLET_PRIVATE_KEY": WALLET_KEY}
    )
    assert result.returncode == 0, result.stderr
    assert JWT_LINE.fullmatch(result.stdout)
    assert me(service, result.stdout.strip()).json()["data"]["address"] == OTHER_ADDRESS


def test_key_env_names_another_variable_and_a_trailing_slash_is_fine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        service + "/",
        "--key-env",
        "MY_WALLET",
        env={"MY_WALLET": OTHER_KEY, "WALLET_PRIVATE_KEY": WALLET_KEY},
    )
    assert status == 0, err
    assert JWT_LINE.fullmatch(out)
    assert me(service, out.strip()).json()["data"]["address"] == OTHER_ADDRESS


def test_json_prints_the_whole_data_object(service: str) -> None:
    result = run_login("--url", service, "--json", env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["token_type"] == "Bearer"
    assert data["wallet_address"] == WALLET_ADDRESS
    assert isinstance(data["expires_in"], int) and data["expires_in"] > 0
    assert me(service, data["access_token"]).json()["data"]["address"] == WALLET_ADDRESS


# -- EIP-4361 -------------------------------------------------------------------------------


def test_siwe_with_the_binding_taken_from_the_url(service: str) -> None:
    # --siwe is the default now, kept as a no-op for scripts that pass it.
    result = run_login("--url", service, "--siwe", env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 0, result.stderr
    assert JWT_LINE.fullmatch(result.stdout)
    assert me(service, result.stdout.strip()).json()["data"]["address"] == WALLET_ADDRESS


def test_raw_secret_login_is_an_explicit_choice(service: str) -> None:
    result = run_login("--url", service, "--raw", env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 0, result.stderr
    assert me(service, result.stdout.strip()).json()["data"]["address"] == WALLET_ADDRESS


def test_siwe_domain_and_uri_overrides(named_service: str) -> None:
    env = {"WALLET_PRIVATE_KEY": WALLET_KEY}
    ok = run_login(
        "--url", named_service, "--siwe", "--domain", NAMED_DOMAIN, "--uri", NAMED_URI, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert me(named_service, ok.stdout.strip()).json()["data"]["address"] == WALLET_ADDRESS
    # Without the overrides the message names 127.0.0.1:PORT, which this service refuses: so the
    # SIWE message really is what was checked, by default and with --siwe (the raw-secret flow
    # has no domain to refuse).
    for flags in ((), ("--siwe",)):
        refused = run_login("--url", named_service, *flags, env=env)
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr.startswith("error 40103: "), refused.stderr
        assert "HTTP 401" in refused.stderr
        assert "pass its --domain and --uri" in refused.stderr
    raw = run_login("--url", named_service, "--raw", env=env)
    assert raw.returncode == 0, raw.stderr


def test_siwe_chain_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        service,
        "--siwe",
        "--chain-id",
        "10",
        env={"WALLET_PRIVATE_KEY": WALLET_KEY},
    )
    assert status == 0, err
    assert JWT_LINE.fullmatch(out)


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--chain-id", "0", "--chain-id"),
        ("--timeout", "0", "--timeout"),
        ("--domain", "bad domain", "domain"),
        ("--uri", "not a uri", "URI"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_sent(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: str,
    named: str,
) -> None:
    # Nothing listens on this port: exit status 2 (not 1) shows no request was attempted.
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        f"http://127.0.0.1:{free_port()}",
        option,
        value,
        env={"WALLET_PRIVATE_KEY": WALLET_KEY},
    )
    assert status == 2
    assert out == ""
    assert named in err


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "127.0.0.1:8000", "http://u:p@127.0.0.1/", "http://h/?q=1"]
)
def test_bad_urls_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "--url", url, env={"WALLET_PRIVATE_KEY": WALLET_KEY}
    )
    assert status == 2
    assert out == ""
    assert "--url" in err


# -- failures -------------------------------------------------------------------------------


def test_wrong_path_reports_the_404_envelope(service: str) -> None:
    result = run_login("--url", service + "/nope", env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error 40401: "), result.stderr
    assert "HTTP 404" in result.stderr
    assert "/nope/login_random_secret" in result.stderr


def test_unreachable_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_login("--url", url, "--timeout", "5", env={"WALLET_PRIVATE_KEY": WALLET_KEY})
    assert result.returncode == 1
    assert result.stdout == ""
    assert "cannot reach the service" in result.stderr
    assert url in result.stderr


def test_a_service_that_never_answers_times_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        status, out, err = run_main(
            capsys,
            monkeypatch,
            "--url",
            f"http://127.0.0.1:{port}",
            "--timeout",
            "0.5",
            env={"WALLET_PRIVATE_KEY": WALLET_KEY},
        )
    assert status == 1
    assert out == ""
    assert "0.5 s" in err


class _NotTheService(http.server.BaseHTTPRequestHandler):
    """Answers like a misconfigured proxy: a redirect, or an HTML error page."""

    def do_POST(self) -> None:
        if self.path.startswith("/moved/"):
            self.send_response(308)
            self.send_header("Location", "https://elsewhere.test/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b"<html><body>Bad Gateway</body></html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_the_service() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotTheService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_redirect_is_reported_not_followed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, not_the_service: str
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        not_the_service + "/moved",
        env={"WALLET_PRIVATE_KEY": WALLET_KEY},
    )
    assert status == 1
    assert out == ""
    assert "HTTP 308" in err
    assert "https://elsewhere.test/" in err


def test_an_answer_that_is_not_an_envelope(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, not_the_service: str
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "--url", not_the_service, env={"WALLET_PRIVATE_KEY": WALLET_KEY}
    )
    assert status == 1
    assert out == ""
    assert "HTTP 502" in err
    assert "not a wallet-auth envelope" in err


# -- the key --------------------------------------------------------------------------------


def test_no_key_exits_2_naming_both_options(service: str) -> None:
    result = run_login("--url", service)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--key-file" in result.stderr
    assert "--key-env" in result.stderr
    assert "WALLET_PRIVATE_KEY" in result.stderr
    empty = run_login("--url", service, env={"WALLET_PRIVATE_KEY": "  "})
    assert empty.returncode == 2
    assert "--key-file" in empty.stderr


def test_a_key_file_others_can_read_is_refused(service: str, tmp_path: Path) -> None:
    path = key_file(tmp_path, WALLET_KEY, mode=0o644)
    result = run_login("--url", service, "--key-file", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "chmod 600" in result.stderr


def test_a_missing_key_file_is_an_error_not_a_fallback(service: str, tmp_path: Path) -> None:
    result = run_login(
        "--url",
        service,
        "--key-file",
        str(tmp_path / "absent.key"),
        env={"WALLET_PRIVATE_KEY": WALLET_KEY},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "absent.key" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        WALLET_KEY[:-1],  # 63 hex digits
        WALLET_KEY + "0",  # 65
        WALLET_KEY[:-2] + "zz",
        "0x" + "0" * 64,  # zero: not a valid secp256k1 key
        "0x" + "f" * 64,  # above the curve order
    ],
)
def test_a_malformed_key_is_refused_without_being_echoed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, service: str, bad: str
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "--url", service, env={"WALLET_PRIVATE_KEY": bad}
    )
    assert status == 2
    assert out == ""
    assert "WALLET_PRIVATE_KEY" in err
    assert bad[2:].lower() not in err.lower()


def _login_parser() -> argparse.ArgumentParser:
    subparsers = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(subparsers) == 1
    parser = subparsers[0].choices["login"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def test_no_option_takes_the_key_itself() -> None:
    options = {o for action in _login_parser()._actions for o in action.option_strings}
    assert options == {
        "-h",
        "--help",
        "--url",
        "--key-file",
        "--key-env",
        "--raw",
        "--siwe",
        "--domain",
        "--uri",
        "--chain-id",
        "--chain",
        "--cluster",
        "--timeout",
        "--json",
    }
    positionals = [a for a in _login_parser()._actions if not a.option_strings]
    assert positionals == []


def test_a_key_on_the_command_line_is_refused_and_not_echoed(service: str) -> None:
    # run_login checks the key is not printed back (argparse would otherwise echo it).
    result = run_login("--url", service, "--key", WALLET_KEY)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "<redacted>" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--private-key", WALLET_KEY),
        ("--key-f", WALLET_KEY),  # no abbreviation of --key-file
        ("--key-env", WALLET_KEY),  # the key given as a variable name
        ("--key-file", WALLET_KEY[2:]),  # the key given as a path
        (WALLET_KEY,),
    ],
)
def test_other_ways_of_passing_the_key_are_refused_and_not_echoed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)  # so that the "path" does not exist
    status, out, _ = run_main(capsys, monkeypatch, "--url", "http://127.0.0.1:9/", *args)
    assert status == 2
    assert out == ""


# -- the functions behind the command -------------------------------------------------------


def test_login_function_raw_and_siwe(service: str) -> None:
    for siwe in (False, True):
        data = login(service, WALLET_KEY, siwe=siwe, timeout=10)
        assert data["wallet_address"] == WALLET_ADDRESS
        assert me(service, data["access_token"]).json()["data"]["address"] == WALLET_ADDRESS


def test_login_function_raises_the_refusal(service: str) -> None:
    with pytest.raises(ServiceRefused) as caught:
        login(service + "/nope", bytes.fromhex(WALLET_KEY[2:]))
    assert (caught.value.status, caught.value.code) == (404, 40401)
    assert caught.value.url == service + "/nope/login_random_secret"


def test_endpoint_and_siwe_binding() -> None:
    assert endpoint("https://example.com/auth/", "login") == "https://example.com/auth/login"
    assert endpoint("http://127.0.0.1:8000", "login") == "http://127.0.0.1:8000/login"
    assert siwe_binding("http://127.0.0.1:8000/auth") == (
        "127.0.0.1:8000",
        "http://127.0.0.1:8000",
    )
    assert siwe_binding("https://[::1]:8443/") == ("[::1]:8443", "https://[::1]:8443")


def test_the_siwe_message_round_trips_and_verifies() -> None:
    message = build_siwe_message(
        address=WALLET_ADDRESS,
        nonce="a" * 40,
        domain="example.com",
        uri="https://example.com",
        chain_id=1,
        issued_at=1_767_225_600.0,
    )
    text = str(message)
    assert SiweMessage.parse(text) == message
    assert "Sign in with your wallet" in text
    assert "Issued At: 2026-01-01T00:00:00.000Z" in text


def test_load_private_key_sources(tmp_path: Path) -> None:
    key = bytes.fromhex(WALLET_KEY[2:])
    assert load_private_key(key_file=None, environ={"WALLET_PRIVATE_KEY": WALLET_KEY}) == key
    assert load_private_key(key_file=None, key_env="K", environ={"K": WALLET_KEY[2:]}) == key
    assert load_private_key(key_file=key_file(tmp_path, WALLET_KEY + "\n"), environ={}) == key
    with pytest.raises(KeySourceError, match="--key-env"):
        load_private_key(key_file=None, environ={})


# -- Solana wallets -------------------------------------------------------------------------


SOLANA_SEED = bytes(range(1, 33))


def solana_keypair_text(seed: bytes = SOLANA_SEED, public: bytes | None = None) -> str:
    """A keypair file as ``solana-keygen`` writes it: a JSON array of the 64 bytes."""
    import nacl.signing

    if public is None:
        public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return json.dumps(list(seed + public))


@pytest.mark.parametrize("flavour", [[], ["--raw"]])
def test_a_solana_keypair_file_logs_in_with_siws_or_the_raw_secret(
    service: str, tmp_path: Path, flavour: list[str]
) -> None:
    import nacl.signing

    from asgi_wallet_auth.base58 import b58encode

    path = key_file(tmp_path, solana_keypair_text())
    result = run_login("--url", service, "--chain", "solana", "--key-file", str(path), *flavour)
    assert result.returncode == 0, result.stderr
    answer = me(service, result.stdout.strip())
    assert answer.status_code == 200
    address = b58encode(bytes(nacl.signing.SigningKey(SOLANA_SEED).verify_key))
    data = answer.json()["data"]
    assert (data["address"], data["did_type"], data["account_id"]) == (
        address,
        "sol",
        f"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{address}",
    )


def test_a_solana_keypair_whose_halves_disagree_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = key_file(tmp_path, solana_keypair_text(public=bytes(32)))
    status, _, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        "http://127.0.0.1:9",
        "--chain",
        "solana",
        "--key-file",
        str(path),
    )
    assert status == 2 and "public half is not its own" in err
    path = key_file(tmp_path, "[1, 2, 3]")
    status, _, err = run_main(
        capsys,
        monkeypatch,
        "--url",
        "http://127.0.0.1:9",
        "--chain",
        "solana",
        "--key-file",
        str(path),
    )
    assert status == 2 and "JSON array of 64 bytes" in err


@pytest.mark.parametrize(
    "args", [["--chain", "solana", "--chain-id", "5"], ["--cluster", "devnet"]]
)
def test_chain_options_of_the_other_chain_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    status, _, err = run_main(capsys, monkeypatch, "--url", "http://127.0.0.1:9", *args)
    assert status == 2 and "does not apply" in err
