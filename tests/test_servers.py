"""The examples under real ASGI servers: uvicorn, hypercorn, daphne and granian, on loopback.

Each (server, example) pair is started once, as a subprocess run from ``examples/`` on a free
127.0.0.1 port, and driven over real HTTP (httpx) and real websockets (``websockets``' sync
client). ``WALLET_AUTH_SERVERS=uvicorn,granian`` picks servers (default: all four); a server whose
package is missing is skipped, unless ``WALLET_AUTH_REQUIRE_SERVERS=1`` makes that a failure.

Where the servers legitimately differ, the difference is pinned per server in ``SERVERS``:

- a websocket the app closes before accepting (the middleware on a bad token, the example on no
  token) is refused at the handshake; every server answers that handshake with HTTP 403 (the
  ASGI spec's choice), so the 1008 close code never reaches the client (uvicorn, hypercorn and
  granian also offer the ``websocket.http.response`` extension, which the middleware does not
  use; daphne does not offer it);
- ``root_path``: uvicorn's ``--root-path`` means "a proxy stripped this prefix" and prepends it to
  ``path``; hypercorn's ``--root-path``, daphne's ``--root-path`` and granian's
  ``--url-path-prefix`` mean "requests still carry the prefix" and pass the path as received;
- uvicorn's default access log writes the query string, so a websocket ``?access_token=`` lands in
  its log in clear; the other three do not log it by default;
- on SIGTERM uvicorn re-raises the signal after its graceful shutdown (exit status -15), the
  others exit 0.

Alike on all four: header names reach the app lowercased whatever their case on the wire, and
two ``Authorization`` headers reach it as two. Not pinned, since the library copes with both:
daphne buffers a request body and hands it over in one message where the others stream it in
chunks, and daphne sends no lifespan events (the examples need none) where the others do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import WALLET_KEY, sign_text
from tests.helpers import siwe_text
from tests.processes import free_port

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SERVER_SECRET = "servers-test-secret-that-is-long-enough-0123456789"
FORGING_KEY = "a-different-key-that-is-also-long-enough-0123456789"
ROOT_PATH = "/api"
START_TIMEOUT = 30.0  # seconds for a server to answer its first request
STOP_TIMEOUT = 15.0  # seconds for a server to exit after SIGTERM
TIMEOUT = 10.0  # every request, handshake and receive


def _uvicorn(target: str, port: int, root_path: str) -> list[str]:
    argv = ["-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    return [*argv, "--root-path", root_path] if root_path else argv


def _hypercorn(target: str, port: int, root_path: str) -> list[str]:
    argv = ["-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}"]
    return [*argv, "--root-path", root_path] if root_path else argv


def _daphne(target: str, port: int, root_path: str) -> list[str]:
    options = ["-b", "127.0.0.1", "-p", str(port)]
    if root_path:
        options += ["--root-path", root_path]
    return ["-m", "daphne", *options, target]


def _granian(target: str, port: int, root_path: str) -> list[str]:
    options = ["--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    if root_path:
        options += ["--url-path-prefix", root_path]
    return ["-m", "granian", *options, target]


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server, and what it was observed to do where servers may differ."""

    package: str
    argv: Callable[[str, int, str], list[str]]
    #: HTTP status answering a websocket handshake the app closed before accepting.
    handshake_refusal: int
    #: With a root path configured, must requests carry the prefix (the path is passed as
    #: received) rather than the server prepending it (uvicorn: a proxy stripped it)?
    prefix_in_request: bool
    #: Does the default access log write a websocket's query string (so ``?access_token=``)?
    logs_query_string: bool
    #: Exit status after a graceful stop on SIGTERM (``Popen.returncode``).
    exit_on_sigterm: int


SERVERS: dict[str, ServerSpec] = {
    # uvicorn 0.54: ``websocket.close`` before accept -> "HTTP/1.1 403 Forbidden", empty body.
    # After its graceful shutdown it re-raises SIGTERM, so the process ends by the signal.
    "uvicorn": ServerSpec("uvicorn", _uvicorn, 403, False, True, -signal.SIGTERM),
    # hypercorn 0.18: the same 403 with an empty body; exits 0.
    "hypercorn": ServerSpec("hypercorn", _hypercorn, 403, True, False, 0),
    # daphne 4.2: 403 through autobahn's handshake rejection ("WSREJECT" in its access log);
    # exits 0. (It sends no lifespan events at all; the examples do not need them.)
    "daphne": ServerSpec("daphne", _daphne, 403, True, False, 0),
    # granian 2.8: 403 with an empty body; exits 0 once its worker process has stopped.
    "granian": ServerSpec("granian", _granian, 403, True, False, 0),
}
EXAMPLE_APPS = ("starlette_app", "fastapi_app")


def selected_servers() -> list[str]:
    raw = os.environ.get("WALLET_AUTH_SERVERS", "")
    return [name.strip() for name in raw.split(",") if name.strip()] or list(SERVERS)


MATRIX = [
    pytest.param((server, example), id=f"{server}-{example}")
    for server in selected_servers()
    for example in EXAMPLE_APPS
]


def require_server(name: str) -> ServerSpec:
    """The server's spec; skips (or, with WALLET_AUTH_REQUIRE_SERVERS=1, fails) when missing."""
    spec = SERVERS.get(name)
    if spec is None:
        pytest.fail(f"unknown server {name!r} in WALLET_AUTH_SERVERS; known: {', '.join(SERVERS)}")
    if importlib.util.find_spec(spec.package) is None:
        reason = f"{name} is not installed (pip install {spec.package})"
        if os.environ.get("WALLET_AUTH_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason}, and WALLET_AUTH_REQUIRE_SERVERS=1")
        pytest.skip(reason)
    return spec


@dataclass
class Served:
    """One running (server, example) pair."""

    server: str
    example: str
    spec: ServerSpec
    port: int
    log_path: Path
    client: httpx.Client
    process: subprocess.Popen[bytes]
    #: After ``stop()``: whether the server exited by itself within STOP_TIMEOUT of SIGTERM.
    graceful: bool | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """End the server by its PID: SIGTERM, then SIGKILL to the process group it leads."""
        if self.graceful is not None:
            return
        self.graceful = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.graceful = False
                os.killpg(self.process.pid, signal.SIGKILL)  # the session started for it
                self.process.wait()


@contextlib.contextmanager
def running(
    server: str, example: str, spec: ServerSpec, log_path: Path, root_path: str = ""
) -> Iterator[Served]:
    """Run ``example:app`` under ``server`` until the block ends; yields once it answers HTTP."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_AUTH_")}
    environment.update(
        WALLET_AUTH_SECRET=SERVER_SECRET,
        WALLET_AUTH_DOMAIN=f"127.0.0.1:{port}",
        WALLET_AUTH_URI=f"http://127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",  # log lines reach the file as they are written
    )
    argv = [sys.executable, *spec.argv(f"{example}:app", port, root_path)]
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            argv,
            cwd=EXAMPLES,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            served = Served(server, example, spec, port, log_path, client, process)
            deadline = time.monotonic() + START_TIMEOUT
            while True:  # bounded polling until the real server answers any HTTP request
                if process.poll() is not None:
                    raise AssertionError(
                        f"{' '.join(argv)} exited with {process.returncode}:\n{served.log()}"
                    )
                try:
                    client.get("/me", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"{server} did not answer within {START_TIMEOUT} s:\n{served.log()}"
                        ) from None
                    time.sleep(0.05)
            yield served
    finally:
        if process.poll() is None:  # not stopped by a test (or startup failed)
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _serve(request: pytest.FixtureRequest, tmp: Path, root_path: str) -> Iterator[Served]:
    server, example = request.param
    spec = require_server(server)
    log_path = tmp / f"{server}-{example}.log"
    with running(server, example, spec, log_path, root_path) as served:
        yield served


@pytest.fixture(scope="class", params=MATRIX)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    yield from _serve(request, tmp_path_factory.mktemp("servers"), "")


@pytest.fixture(scope="class", params=MATRIX)
def rooted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    yield from _serve(request, tmp_path_factory.mktemp("servers-root"), ROOT_PATH)


def _watch(served: Served) -> Iterator[None]:
    """Show the server's output during a test when it fails; fail a test that crashed it."""
    start = len(served.log())
    yield
    output = served.log()[start:]
    print(f"--- {served.server} {served.example} output during this test ---")
    print(output)
    if served.graceful is None:  # still meant to be running
        assert served.process.poll() is None, f"{served.server} exited during the test"
    assert "Traceback" not in output, f"{served.server} logged a traceback"


def assert_stops_cleanly(served: Served) -> None:
    """SIGTERM: a prompt, graceful exit with the server's usual status and no traceback."""
    served.stop()
    output = served.log()
    assert served.graceful, f"{served.server} ignored SIGTERM for {STOP_TIMEOUT} s"
    assert served.process.returncode == served.spec.exit_on_sigterm
    assert "Traceback" not in output


@pytest.fixture
def wallet() -> LocalAccount:
    return Account.from_key(WALLET_KEY)


# -- helpers -----------------------------------------------------------------------------------


def get_secret(client: httpx.Client, address: str, prefix: str = "") -> str:
    response = client.post(f"{prefix}/auth/login_random_secret", json={"wallet_address": address})
    assert response.status_code == 200, response.text
    secret = response.json()["data"]
    assert isinstance(secret, str) and len(secret) == 40
    return secret


def raw_login(client: httpx.Client, account: LocalAccount, prefix: str = "") -> dict[str, Any]:
    secret = get_secret(client, account.address, prefix)
    response = client.post(
        f"{prefix}/auth/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forge(token: str) -> str:
    """The same claims signed with another key: well formed, and forged."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, FORGING_KEY, algorithm="HS256")


def assert_refusal(response: httpx.Response, status: int, code: int) -> None:
    """The library's error envelope: this status, this code, a message and no data."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert sorted(body) == ["code", "data", "msg"], body
    assert body["code"] == code and body["data"] is None and body["msg"], body


def ws_connect(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(url, additional_headers=headers, open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def assert_greeted(url: str, address: str, headers: dict[str, str] | None = None) -> None:
    with ws_connect(url, headers) as ws:
        assert ws.recv(timeout=TIMEOUT) == '{"hello":"' + address + '"}'
        with pytest.raises(ConnectionClosedOK) as closed:  # the example closes after greeting
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def refused_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status of a refused websocket handshake (a greeting fails the test)."""
    with pytest.raises(InvalidStatus) as refused, ws_connect(url, headers) as ws:
        ws.recv(timeout=TIMEOUT)  # only reached when the handshake was accepted
    return refused.value.response.status_code


# -- HTTP and websockets under each server ------------------------------------------------------


class TestUnderServer:
    @pytest.fixture(autouse=True)
    def _watch(self, served: Served) -> Iterator[None]:
        yield from _watch(served)

    def test_legacy_login_then_me(self, served: Served, wallet: LocalAccount) -> None:
        secret = get_secret(served.client, wallet.address)
        body = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        response = served.client.post("/auth/login", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        data = response.json()["data"]
        assert data["token_type"] == "Bearer"
        assert data["wallet_address"] == wallet.address
        me = served.client.get("/me", headers=bearer(data["access_token"]))
        assert me.status_code == 200, me.text
        assert me.json()["data"]["address"] == wallet.address
        # The secret was single use: the same body again is refused.
        assert_refusal(served.client.post("/auth/login", json=body), 401, 40102)

    def test_siwe_login_for_this_host(self, served: Served, wallet: LocalAccount) -> None:
        secret = get_secret(served.client, wallet.address)

        def attempt(domain: str) -> httpx.Response:
            message = siwe_text(
                address=wallet.address,
                nonce=secret,
                issued_at=time.time(),
                domain=domain,
                uri=f"http://{domain}",
            )
            body = {
                "login_random_secret": secret,
                "signature": sign_text(wallet, message),
                "wallet_address": wallet.address,
                "signature_content": message,
            }
            return served.client.post("/auth/login", json=body)

        # A message for another origin is refused and does not burn the secret...
        assert_refusal(attempt("127.0.0.1:1"), 401, 40103)
        # ...which then logs in with the message for 127.0.0.1:<port>, as configured by env.
        response = attempt(f"127.0.0.1:{served.port}")
        assert response.status_code == 200, response.text
        token = response.json()["data"]["access_token"]
        me = served.client.get("/me", headers=bearer(token))
        assert me.status_code == 200 and me.json()["data"]["address"] == wallet.address

    def test_refresh_issues_a_new_working_token(self, served: Served, wallet: LocalAccount) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        response = served.client.get("/auth/refresh", headers=bearer(token))
        assert response.status_code == 200, response.text
        fresh = response.json()["data"]["access_token"]
        assert fresh != token
        me = served.client.get("/me", headers=bearer(fresh))
        assert me.status_code == 200 and me.json()["data"]["address"] == wallet.address
        refused = served.client.get("/auth/refresh", headers=bearer(forge(token)))
        assert_refusal(refused, 401, 40111)

    def test_me_without_a_token_is_a_401_envelope(self, served: Served) -> None:
        response = served.client.get("/me")
        assert_refusal(response, 401, 40112)
        assert response.headers["www-authenticate"] == "Bearer"

    def test_me_with_a_forged_token_is_refused_by_the_middleware(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        response = served.client.get("/me", headers=bearer(forge(token)))
        assert_refusal(response, 401, 40111)
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    def test_header_name_case_on_the_wire_does_not_matter(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        for name in ("AUTHORIZATION", "authorization", "AuThOrIzAtIoN"):
            me = served.client.get("/me", headers={name: f"Bearer {token}"})
            assert me.status_code == 200, (name, me.text)

    def test_two_authorization_headers_are_refused(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        # Whether a server passes both headers or folds them into one, it is never a login.
        token = raw_login(served.client, wallet)["access_token"]
        twice = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
        assert_refusal(served.client.get("/me", headers=twice), 401, 40111)

    def test_a_body_streamed_in_chunks_is_read_whole(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        payload = json.dumps({"wallet_address": wallet.address, "padding": "x" * 4000}).encode()
        chunks = [payload[i : i + 500] for i in range(0, len(payload), 500)]
        response = served.client.post(
            "/auth/login_random_secret",
            content=iter(chunks),
            headers={"content-type": "application/json"},
        )
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 40

    def test_concurrent_identical_logins_yield_one_token(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        secret = get_secret(served.client, wallet.address)
        body = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        statuses: list[int] = []

        def attempt() -> None:
            with httpx.Client(base_url=served.base, timeout=TIMEOUT) as own:
                statuses.append(own.post("/auth/login", json=body).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=TIMEOUT * 2)
        assert sorted(statuses) == [200] + [401] * 9

    def test_oversized_bodies_are_413_declared_or_streamed(self, served: Served) -> None:
        payload = b'{"wallet_address": "' + b"0" * 20_000 + b'"}'
        headers = {"content-type": "application/json"}
        declared = served.client.post("/auth/login_random_secret", content=payload, headers=headers)
        assert_refusal(declared, 413, 41301)
        chunks = [payload[i : i + 1024] for i in range(0, len(payload), 1024)]
        streamed = served.client.post(
            "/auth/login_random_secret", content=iter(chunks), headers=headers
        )
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        assert_refusal(streamed, 413, 41301)

    def test_websocket_greets_a_token_in_the_authorization_header(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        assert_greeted(f"{served.ws_base}/ws", wallet.address, bearer(token))

    def test_websocket_greets_a_token_in_the_query(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        assert_greeted(f"{served.ws_base}/ws?access_token={token}", wallet.address)
        # Pinned: uvicorn's default access log writes the query string, token included.
        assert (token in served.log()) is served.spec.logs_query_string

    def test_websocket_without_a_token_is_refused_at_the_handshake(self, served: Served) -> None:
        # The example closes with 1008 before accepting: servers turn that into an HTTP answer.
        assert refused_status(f"{served.ws_base}/ws") == served.spec.handshake_refusal

    def test_websocket_with_a_bad_token_is_refused_at_the_handshake(
        self, served: Served, wallet: LocalAccount
    ) -> None:
        token = raw_login(served.client, wallet)["access_token"]
        forged = forge(token)
        refusal = served.spec.handshake_refusal
        assert refused_status(f"{served.ws_base}/ws", bearer(forged)) == refusal
        assert refused_status(f"{served.ws_base}/ws?access_token={forged}") == refusal
        assert refused_status(f"{served.ws_base}/ws", bearer("not-a-jwt")) == refusal
        # A bad header token is not rescued by a good query token.
        url = f"{served.ws_base}/ws?access_token={token}"
        assert refused_status(url, bearer(forged)) == refusal

    def test_stops_cleanly_on_sigterm(self, served: Served) -> None:
        # Last in the class: pytest keeps definition order within each server's group.
        assert_stops_cleanly(served)


# -- the same examples behind a root path ---------------------------------------------------------


class TestUnderServerWithRootPath:
    @pytest.fixture(autouse=True)
    def _watch(self, rooted: Served) -> Iterator[None]:
        yield from _watch(rooted)

    def test_login_me_and_websocket_behind_the_prefix(
        self, rooted: Served, wallet: LocalAccount
    ) -> None:
        # What a client sends: the prefix itself (hypercorn, daphne, granian), or nothing, as
        # after a proxy that strips it (uvicorn prepends its --root-path to the path).
        prefix = ROOT_PATH if rooted.spec.prefix_in_request else ""
        token = raw_login(rooted.client, wallet, prefix)["access_token"]
        me = rooted.client.get(f"{prefix}/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        assert me.json()["data"]["address"] == wallet.address
        assert_refusal(rooted.client.get(f"{prefix}/me"), 401, 40112)
        assert_greeted(f"{rooted.ws_base}{prefix}/ws", wallet.address, bearer(token))

    def test_a_request_in_the_other_convention(self, rooted: Served, wallet: LocalAccount) -> None:
        response = rooted.client.post(
            f"{'' if rooted.spec.prefix_in_request else ROOT_PATH}/auth/login_random_secret",
            json={"wallet_address": wallet.address},
        )
        if not rooted.spec.prefix_in_request:
            # uvicorn: the path becomes /api/api/auth/...: no route at all.
            assert response.status_code == 404
        elif rooted.example == "starlette_app":
            # path /auth/... outside root_path /api: Starlette's top router still matches the
            # Mount, whose child scope gets root_path /api/auth; WalletAuth then finds no route,
            # as a mounted Starlette Router does in that scope (it 404s the same way).
            assert_refusal(response, 404, 40401)
        else:
            # FastAPI's router matches the full path /auth/... when it is outside root_path,
            # and add_wallet_auth's endpoints hand WalletAuth their own path.
            assert response.status_code == 200, response.text

    def test_stops_cleanly_on_sigterm(self, rooted: Served) -> None:
        assert_stops_cleanly(rooted)
