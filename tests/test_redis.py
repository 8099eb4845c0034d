"""Redis in earnest: faults against a real redis-server, and many processes sharing one."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from eth_account.signers.local import LocalAccount
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.stores.redis import RedisNonceStore
from tests.conftest import SECRET_KEY, FakeClock, client_for, sign_text
from tests.helpers import get_secret, login, make_auth
from tests.processes import free_port, running_service
from tests.redis_server import RedisServer


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and restart."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisNonceStore]:
    import uuid

    s = RedisNonceStore(redis_server.url, prefix=f"t:{uuid.uuid4().hex}:")
    yield s
    await s.aclose()


async def login_body(client: httpx.AsyncClient, account: LocalAccount) -> dict[str, str]:
    secret = await get_secret(client, account.address)
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, secret),
        "wallet_address": account.address,
    }


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({}, "exactly one of url"),
        ({"url": "redis://127.0.0.1:1/0", "client": object()}, "exactly one of url"),
        ({"url": "http://127.0.0.1:6379"}, "not a Redis URL"),
        ({"url": "redis://127.0.0.1:1/0", "timeout": 0}, "timeout must be a positive"),
        ({"url": "redis://127.0.0.1:1/0", "take_command": "GET"}, "take_command"),
    ],
)
def test_misconfiguration_fails_at_construction(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        RedisNonceStore(**kwargs)


def test_importing_the_package_does_not_import_redis_but_this_module_does() -> None:
    import sys

    assert "redis.asyncio" in sys.modules  # this module's import pulled it in, as documented


# -- the atomic take on both server generations -------------------------------------------------


async def test_lua_take_is_single_use_under_concurrency(redis_server: RedisServer) -> None:
    s = RedisNonceStore(redis_server.url, prefix="lua:", take_command="lua")
    try:
        assert await s.put("k", "v", 60) is True
        results = await asyncio.gather(*(s.take("k") for _ in range(30)))
        assert results.count("v") == 1
        assert results.count(None) == 29
    finally:
        await s.aclose()


async def test_take_falls_back_to_the_script_on_a_server_without_getdel(
    store: RedisNonceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"getdel": 0}

    async def no_getdel(name: str) -> Any:
        calls["getdel"] += 1
        raise ResponseError("unknown command 'GETDEL', with args beginning with: 'x'")

    monkeypatch.setattr(store.client, "getdel", no_getdel)
    assert await store.put("a", "1", 60)
    assert await store.put("b", "2", 60)
    assert await store.take("a") == "1"
    assert await store.take("a") is None
    assert await store.take("b") == "2"
    assert calls["getdel"] == 1  # tried once, then the script for good


async def test_other_server_errors_are_not_mistaken_for_a_missing_command(
    store: RedisNonceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def wrongtype(name: str) -> Any:
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    monkeypatch.setattr(store.client, "getdel", wrongtype)
    with pytest.raises(ResponseError):
        await store.take("a")


async def test_values_carry_their_ttl_in_one_command(store: RedisNonceStore) -> None:
    assert await store.put("k", "v", 1.5)
    remaining = await store.client.pttl(store.prefix + "k")
    assert 1000 < remaining <= 1500
    assert await store.exists("k") is True
    assert await store.exists("other") is False


# -- the login routes on Redis ----------------------------------------------------------------


async def test_logins_work_on_redis_and_replays_fail(
    clock: FakeClock, store: RedisNonceStore, wallet: LocalAccount
) -> None:
    async with client_for(make_auth(clock, nonce_store=store)) as client:
        body = await login_body(client, wallet)
        assert (await client.post("/login", json=body)).status_code == 200
        replay = await client.post("/login", json=body)
        assert replay.status_code == 401 and replay.json()["code"] == 40102


async def test_a_secret_issued_by_one_instance_is_redeemed_by_another(
    clock: FakeClock, redis_server: RedisServer, wallet: LocalAccount
) -> None:
    # Two WalletAuth objects on one Redis stand for two workers (or two hosts).
    first = RedisNonceStore(redis_server.url, prefix="shared:")
    second = RedisNonceStore(redis_server.url, prefix="shared:")
    try:
        async with (
            client_for(make_auth(clock, nonce_store=first)) as a,
            client_for(make_auth(clock, nonce_store=second)) as b,
        ):
            body = await login_body(a, wallet)
            assert (await b.post("/login", json=body)).status_code == 200
            assert (await a.post("/login", json=body)).status_code == 401
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_identical_logins_on_redis_yield_one_token(
    clock: FakeClock, store: RedisNonceStore, wallet: LocalAccount
) -> None:
    async with client_for(make_auth(clock, nonce_store=store)) as client:
        body = await login_body(client, wallet)
        statuses: list[int] = []

        async def attempt() -> None:
            statuses.append((await client.post("/login", json=body)).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(attempt)
        assert sorted(statuses) == [200] + [401] * 19


# -- faults -----------------------------------------------------------------------------------


async def test_redis_down_gives_503_and_service_returns_by_itself(
    clock: FakeClock, own_server: RedisServer, wallet: LocalAccount
) -> None:
    store = RedisNonceStore(own_server.url, timeout=0.5)
    try:
        async with client_for(make_auth(clock, nonce_store=store)) as client:
            body = await login_body(client, wallet)
            own_server.stop()
            down = await client.post(
                "/login_random_secret", json={"wallet_address": wallet.address}
            )
            assert down.status_code == 503 and down.json()["code"] == 50301
            assert down.json()["data"] is None  # no secret that was not stored
            refused = await client.post("/login", json=body)
            assert refused.status_code == 503 and refused.json()["data"] is None
            own_server.start()  # same port; nothing persisted
            assert (
                await client.post("/login", json=body)
            ).status_code == 401  # secret died with it
            data = await login(client, wallet)
            assert data["access_token"]
    finally:
        await store.aclose()


async def test_redis_that_never_answers_times_out_into_503(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    # A listener that accepts connections and never replies: a hung server, on loopback.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    store = RedisNonceStore(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        async with client_for(make_auth(clock, nonce_store=store)) as client:
            with anyio.fail_after(10):
                response = await client.post(
                    "/login_random_secret", json={"wallet_address": wallet.address}
                )
            assert response.status_code == 503
            assert response.json()["data"] is None
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()
        await store.aclose()


async def test_a_reply_lost_after_take_gives_503_no_token_and_burns_the_secret(
    clock: FakeClock, store: RedisNonceStore, wallet: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_for(make_auth(clock, nonce_store=store)) as client:
        body = await login_body(client, wallet)
        real_getdel = store.client.getdel

        async def lost_reply(name: str) -> Any:
            await real_getdel(name)  # the server did the work...
            raise RedisConnectionError("Connection closed by server.")  # ...the reply is lost

        monkeypatch.setattr(store.client, "getdel", lost_reply)
        response = await client.post("/login", json=body)
        assert response.status_code == 503 and response.json()["data"] is None
        monkeypatch.setattr(store.client, "getdel", real_getdel)
        # Fail closed: the secret was consumed on the server, so it cannot be used again.
        assert (await client.post("/login", json=body)).status_code == 401


async def test_a_reply_lost_after_put_never_hands_out_the_secret(
    clock: FakeClock, store: RedisNonceStore, wallet: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_set = store.client.set

    async def lost_reply(*args: Any, **kwargs: Any) -> Any:
        await real_set(*args, **kwargs)
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(store.client, "set", lost_reply)
    async with client_for(make_auth(clock, nonce_store=store)) as client:
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert response.status_code == 503
        assert response.json()["data"] is None


# -- revocation shared by every instance --------------------------------------------------------


async def test_a_token_revoked_on_one_instance_is_revoked_on_all(
    clock: FakeClock, redis_server: RedisServer, wallet: LocalAccount
) -> None:
    first = RedisNonceStore(redis_server.url, prefix="rev:")
    second = RedisNonceStore(redis_server.url, prefix="rev:")
    try:
        auth_a = make_auth(clock, nonce_store=first, revocation=True)
        auth_b = make_auth(clock, nonce_store=second, revocation=True)
        async with client_for(auth_a) as a, client_for(auth_b) as b:
            token = (await login(a, wallet))["access_token"]
            assert (await auth_b.authenticate_bearer(token)).address == wallet.address
            assert (
                await a.post("/logout", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 200
            refused = await b.get("/refresh", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401
    finally:
        await first.aclose()
        await second.aclose()


async def test_revocation_check_fails_closed_when_redis_is_down(
    clock: FakeClock, own_server: RedisServer, wallet: LocalAccount
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from asgi_wallet_auth import WalletAuthMiddleware

    store = RedisNonceStore(own_server.url, timeout=0.5)
    auth = make_auth(clock, nonce_store=store, revocation=True)

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(
        routes=[Route("/hello", hello), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    try:
        async with client_for(app) as client:
            token = (await login(client, wallet, prefix="/auth"))["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/hello", headers=headers)).status_code == 200
            own_server.stop()
            down = await client.get("/hello", headers=headers)
            assert down.status_code == 503 and down.json()["code"] == 50301
            # Anonymous requests need no store and still pass.
            assert (await client.get("/hello")).status_code == 200
            own_server.start()
            assert (await client.get("/hello", headers=headers)).status_code == 200
    finally:
        await store.aclose()


# -- real processes -------------------------------------------------------------------------


def sync_login_body(base: str, account: LocalAccount) -> dict[str, str]:
    secret = httpx.post(
        f"{base}/login_random_secret", json={"wallet_address": account.address}
    ).json()["data"]
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, secret),
        "wallet_address": account.address,
    }


def test_two_service_processes_share_logins_and_revocations_through_redis(
    tmp_path: Path, redis_server: RedisServer, wallet: LocalAccount
) -> None:
    env = {"WALLET_AUTH_SECRET": SECRET_KEY}
    shared = [
        "--redis-url",
        redis_server.url,
        "--domain",
        "example.com",
        "--uri",
        "https://example.com",
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_service(tmp_path / "a", free_port(), *shared, env=env) as a,
        running_service(tmp_path / "b", free_port(), *shared, env=env) as b,
    ):
        body = sync_login_body(a, wallet)  # the secret comes from process A...
        response = httpx.post(f"{b}/login", json=body)  # ...and is redeemed at process B
        assert response.status_code == 200, response.text
        assert httpx.post(f"{a}/login", json=body).status_code == 401  # and nowhere again
        token = response.json()["data"]["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{a}/me", headers=headers).json()["data"]["address"] == wallet.address
        assert httpx.post(f"{a}/logout", headers=headers).status_code == 200
        assert httpx.get(f"{b}/me", headers=headers).status_code == 401  # revoked everywhere


def test_serve_with_two_workers_gives_exactly_one_token_for_twenty_identical_logins(
    tmp_path: Path, redis_server: RedisServer, wallet: LocalAccount
) -> None:
    env = {"WALLET_AUTH_SECRET": SECRET_KEY}
    args = ["--workers", "2", "--redis-url", redis_server.url]
    with running_service(tmp_path, free_port(), *args, env=env) as base:
        # Logins whose two requests use separate connections, so they spread over both workers.
        for _ in range(10):
            body = sync_login_body(base, wallet)
            with httpx.Client() as fresh:
                assert fresh.post(f"{base}/login", json=body).status_code == 200
        body = sync_login_body(base, wallet)
        statuses: list[int] = []

        def attempt() -> None:
            with httpx.Client() as fresh:
                statuses.append(fresh.post(f"{base}/login", json=body).status_code)

        threads = [threading.Thread(target=attempt) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(statuses) == [200] + [401] * 19


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "serve", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WALLET_AUTH_SECRET": SECRET_KEY},
    )
    assert result.returncode == 2
    assert "--redis-url" in result.stderr


def test_the_auth_app_built_on_redis_is_a_walletauth(redis_server: RedisServer) -> None:
    from asgi_wallet_auth.service import build_auth

    auth = build_auth(
        secret=SECRET_KEY,
        domain="example.com",
        uri="https://example.com",
        db=":memory:",
        redis_url=redis_server.url,
    )
    assert isinstance(auth, WalletAuth)
    assert isinstance(auth.nonce_store, RedisNonceStore)
    assert auth.replay_store is auth.nonce_store  # replay markers and revocations shared too
    assert auth.revocation is True
