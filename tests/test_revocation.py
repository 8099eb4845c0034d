"""Token revocation: /refresh retires the old token, /logout the presented one, everywhere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import TokenSettings, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.stores import ENDED, MemorySessionStore
from asgi_wallet_auth.stores.redis import RedisNonceStore
from tests.conftest import FakeClock, client_for
from tests.helpers import login, make_auth

DAY = 86_400

pytestmark = pytest.mark.usefixtures("anyio_backend")


@pytest.fixture(params=["memory", "redis"])
async def auth(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[WalletAuth]:
    if request.param == "memory":
        yield make_auth(clock, revocation=True)
        return
    server = request.getfixturevalue("redis_server")
    store = RedisNonceStore(server.url, prefix=f"rv:{uuid.uuid4().hex}:")
    # Redis cannot follow the fake clock, so these tests only move it within token lifetimes.
    yield make_auth(clock, nonce_store=store, revocation=True)
    await store.aclose()


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"authenticated": request.user.is_authenticated})


@pytest.fixture
async def client(auth: WalletAuth) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[Route("/whoami", whoami), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    async with client_for(app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refresh_revokes_the_old_token(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    old = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get("/auth/refresh", headers=bearer(old))
    assert response.status_code == 200
    new = response.json()["data"]["access_token"]
    assert (await client.get("/whoami", headers=bearer(old))).status_code == 401
    assert (await client.get("/auth/refresh", headers=bearer(old))).status_code == 401
    assert (await client.get("/whoami", headers=bearer(new))).json() == {"authenticated": True}


async def test_concurrent_refreshes_of_one_token_yield_exactly_one_new_token(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    statuses: list[int] = []

    async def attempt() -> None:
        statuses.append((await client.get("/auth/refresh", headers=bearer(token))).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(attempt)
    assert sorted(statuses) == [200] + [401] * 9


async def test_logout_revokes_the_presented_token_only(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    first = (await login(client, wallet, prefix="/auth"))["access_token"]
    second = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.post("/auth/logout", headers=bearer(first))
    assert response.status_code == 200
    assert response.json() == {"code": 0, "msg": "ok", "data": None}
    assert (await client.get("/whoami", headers=bearer(first))).status_code == 401
    assert (await client.get("/whoami", headers=bearer(second))).status_code == 200
    # Logging out again with the revoked token is refused like any other use of it.
    assert (await client.post("/auth/logout", headers=bearer(first))).status_code == 401


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout")
    assert response.status_code == 401 and response.json()["code"] == 40112


async def test_without_revocation_there_is_no_logout_and_old_tokens_stay_valid(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_for(auth) as client:
        token = (await login(client, wallet))["access_token"]
        assert (await client.post("/logout", headers=bearer(token))).status_code == 404
        assert (await client.get("/refresh", headers=bearer(token))).status_code == 200
        assert (await auth.authenticate_bearer(token)).address == wallet.address


async def test_an_ended_session_is_remembered_until_the_session_ends(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = MemorySessionStore(clock=clock)
    auth = make_auth(clock, tokens=TokenSettings(revocation=True, session_store=store))
    async with client_for(auth) as client:
        data = await login(client, wallet)
        await client.post("/logout", headers=bearer(data["access_token"]))
        sid = auth.authenticate_token(data["access_token"]).claims["sid"]
        assert await store.current(sid) == ENDED
        clock.advance(30 * DAY - 1)
        assert await store.current(sid) == ENDED
        clock.advance(1)  # the session's absolute end: no token of it can be valid, entry gone
        assert await store.current(sid) is None
        assert len(store) == 0


async def test_refreshes_keep_one_entry_per_session(clock: FakeClock, wallet: LocalAccount) -> None:
    store = MemorySessionStore(clock=clock)
    auth = make_auth(clock, tokens=TokenSettings(revocation=True, session_store=store))
    async with client_for(auth) as client:
        token = (await login(client, wallet))["access_token"]
        first = token
        for _ in range(50):
            response = await client.get("/refresh", headers=bearer(token))
            assert response.status_code == 200
            token = response.json()["data"]["access_token"]
        assert len(store) == 1  # not one per refresh
        assert (await client.get("/refresh", headers=bearer(first))).status_code == 401
        assert (await client.get("/refresh", headers=bearer(token))).status_code == 200
