"""A key rotation end to end: two real ``serve`` processes and a verify-only app on their JWKS.

The two processes stand for a rolling deployment: each step of the documented procedure (publish
next, promote, retire) reaches one process before the other, and no token that should live is
ever refused on either, nor in the verify-only app. The verify-only app runs in this process on
the injected clock (started at the real time, since ``serve`` signs with the real one) and
fetches the JWKS over loopback HTTP from a ``serve`` that is restarted, stopped, and replaced by
an endpoint answering garbage.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import JwksAuthenticator, KeySet, SigningKey
from asgi_wallet_auth.jwks import JwksFetcher
from asgi_wallet_auth.keyfile import key_file_text
from asgi_wallet_auth.tokens import TokenService
from tests.conftest import SECRET_KEY, URI, FakeClock, client_for, sign_text
from tests.jwks_server import JwksServer, Reply
from tests.key_kit import ED_KEY, ES_KEY, ES_KEY_2, bearer, protected_app
from tests.processes import free_port, running_service

A = SigningKey.from_key(ES_KEY)  # signs first
B = SigningKey.from_key(ED_KEY)  # published next, then promoted
C = SigningKey.from_key(ES_KEY_2)  # an emergency key, never published before it signs
NEVER = SigningKey.from_key(ec.derive_private_key(0x5EC7E7, ec.SECP256R1()))
SHARED = ["--domain", "example.com", "--uri", URI]
ENV = {"WALLET_AUTH_SECRET": SECRET_KEY}


def key_file(directory: Path, name: str, *keys: SigningKey) -> Path:
    """A key file as an operator writes it: 0600, owned by us."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key_file_text(keys))
    return path


class Process:
    """One ``serve`` on a fixed port, restartable with another key file."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stack: contextlib.ExitStack | None = None

    def start(self, keys: Path) -> None:
        self.stop()
        self._stack = contextlib.ExitStack()
        args = [*SHARED, "--signing-key", str(keys)]
        self._stack.enter_context(running_service(self.workdir, self.port, *args, env=ENV))

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def login(self, account: LocalAccount) -> str:
        secret = httpx.post(
            f"{self.url}/login_random_secret", json={"wallet_address": account.address}
        ).json()["data"]
        body = {
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        }
        response = httpx.post(f"{self.url}/login", json=body)
        assert response.status_code == 200, response.text
        token: str = response.json()["data"]["access_token"]
        return token

    def me(self, token: str) -> int:
        return httpx.get(f"{self.url}/me", headers=bearer(token)).status_code


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    one, two = Process(tmp_path / "one"), Process(tmp_path / "two")
    try:
        yield one, two
    finally:
        one.stop()
        two.stop()


@pytest.fixture
async def verify_only(
    processes: tuple[Process, Process], real_clock: FakeClock
) -> AsyncIterator[JwksAuthenticator]:
    fetcher = JwksFetcher(f"{processes[1].url}/.well-known/jwks.json", clock=real_clock)
    auth = JwksAuthenticator(issuer=URI, audience=URI, fetcher=fetcher, clock=real_clock)
    yield auth
    await auth.aclose()


@pytest.fixture
def real_clock() -> FakeClock:
    return FakeClock(time.time())


async def status(auth: JwksAuthenticator, token: str) -> int:
    async with client_for(protected_app(auth)) as client:
        return (await client.get("/whoami", headers=bearer(token))).status_code


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_a_rotation_through_two_serve_processes_logs_nobody_out(
    tmp_path: Path,
    processes: tuple[Process, Process],
    verify_only: JwksAuthenticator,
    real_clock: FakeClock,
    wallet: LocalAccount,
    other_wallet: LocalAccount,
) -> None:
    one, two = processes
    fetcher = verify_only.fetcher
    assert fetcher is not None
    published = key_file(tmp_path, "1-publish.pem", A, B.with_state("next"))
    promoted = key_file(tmp_path, "2-promote.pem", A.with_state("previous"), B)
    retired = key_file(tmp_path, "3-retire.pem", A.with_state("retired"), B)
    emergency = key_file(tmp_path, "4-emergency.pem", B.with_state("previous"), C)

    # 1. Publish next: both processes sign with A and already publish B.
    one.start(published)
    two.start(published)
    t_a = one.login(wallet)
    assert kid(t_a) == A.kid
    assert two.me(t_a) == 200
    assert await status(verify_only, t_a) == 200
    assert fetcher.snapshot() == {"kids": sorted([A.kid, B.kid]), "generation": 1}

    # 2. Promote, one process at a time: B signs on `two` while `one` still signs with A.
    two.start(promoted)
    t_b = two.login(other_wallet)
    assert kid(t_b) == B.kid
    assert [one.me(t_b), two.me(t_b), one.me(t_a), two.me(t_a)] == [200] * 4
    assert await status(verify_only, t_b) == 200  # known since step 1: no refetch needed
    assert await status(verify_only, t_a) == 200
    assert fetcher.snapshot()["generation"] == 1
    one.start(promoted)
    assert kid(one.login(wallet)) == B.kid

    # 3. Retire A after the longest token lifetime: its tokens are refused everywhere.
    one.start(retired)
    two.start(retired)
    assert [one.me(t_a), two.me(t_a)] == [401, 401]
    assert [one.me(t_b), two.me(t_b)] == [200, 200]
    real_clock.advance(301)  # the JWKS max-age: the verify-only app refetches and drops A
    assert await status(verify_only, t_a) == 401
    assert await status(verify_only, t_b) == 200
    assert fetcher.snapshot()["kids"] == [B.kid]

    # 4. An emergency key C signs before any verifier has seen it: picked up on first sight.
    two.start(emergency)
    t_c = two.login(wallet)
    assert kid(t_c) == C.kid
    assert await status(verify_only, t_c) == 200
    assert fetcher.snapshot()["kids"] == sorted([B.kid, C.kid])

    # 5. The JWKS goes down, then answers garbage: cached keys stay in use, unknown ones refused.
    forged = TokenService(
        secret_key=SECRET_KEY.encode(),
        issuer=URI,
        audience=URI,
        lifetime=600,
        session_lifetime=3600,
        keys=KeySet((NEVER,)),
        clock=real_clock,
    ).issue(subject=wallet.address, auth_time=int(real_clock()))
    two.stop()
    real_clock.advance(301)
    assert await status(verify_only, t_c) == 200
    assert await status(verify_only, t_b) == 200
    assert await status(verify_only, forged.token) == 401
    with JwksServer(Reply(b"<html>502 Bad Gateway</html>", status=200), port=two.port) as garbage:
        real_clock.advance(31)  # past the cooldown: the next request refetches, and that fails
        assert await status(verify_only, t_c) == 200
        assert await status(verify_only, forged.token) == 401
        assert garbage.fetches >= 1
    assert fetcher.snapshot()["kids"] == sorted([B.kid, C.kid])


def test_serve_creates_a_0600_key_file_and_publishes_its_key(
    tmp_path: Path, wallet: LocalAccount
) -> None:
    path = tmp_path / "keys" / "signing.pem"
    path.parent.mkdir()
    process = Process(tmp_path / "svc")
    try:
        process.start(path)
        info = path.stat()
        assert oct(info.st_mode & 0o777) == oct(0o600) and info.st_uid == os.geteuid()
        document = httpx.get(f"{process.url}/.well-known/jwks.json")
        assert document.headers["cache-control"] == "public, max-age=300"
        (jwk,) = document.json()["keys"]
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
        token = process.login(wallet)
        assert kid(token) == jwk["kid"]
        key = jwt.PyJWK.from_dict(jwk).key
        claims = jwt.decode(token, key, algorithms=["ES256"], audience=URI)
        assert claims["sub"] == wallet.address
        first = path.read_bytes()
        process.start(path)  # a restart keeps the key: the token stays valid
        assert path.read_bytes() == first
        assert process.me(token) == 200
    finally:
        process.stop()


def test_moving_serve_from_its_secret_to_a_key_file_logs_nobody_out(
    tmp_path: Path, wallet: LocalAccount
) -> None:
    process = Process(tmp_path / "svc")
    try:
        with running_service(process.workdir, process.port, *SHARED, env=ENV):
            before = process.login(wallet)
        assert jwt.get_unverified_header(before)["alg"] == "HS256"
        process.start(key_file(tmp_path, "keys.pem", A))
        assert process.me(before) == 200  # the secret's key verifies what it signed
        after = process.login(wallet)
        assert kid(after) == A.kid
        document = httpx.get(f"{process.url}/.well-known/jwks.json").json()
        assert [k["kid"] for k in document["keys"]] == [A.kid]  # the secret is never published
    finally:
        process.stop()
