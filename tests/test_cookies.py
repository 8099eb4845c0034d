"""Cookie transport for browsers: HttpOnly token cookie, double-submit CSRF bound to the session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware, WalletUser
from asgi_wallet_auth.cookies import CookieSettings
from tests.conftest import URI, FakeClock, client_for, sign_text
from tests.helpers import get_secret, make_auth

COOKIE = CookieSettings(secure=False)  # plain HTTP in tests, as for localhost development


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({"address": user.address if isinstance(user, WalletUser) else None})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.user
    await websocket.send_json({"address": user.address if isinstance(user, WalletUser) else None})
    await websocket.close()


def build_app(auth: WalletAuth) -> Starlette:
    return Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST", "DELETE"]),
            WebSocketRoute("/ws", ws),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, cookie=COOKIE, revocation=True)


@pytest.fixture
async def client(auth: WalletAuth) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app(auth), base_url="http://example.com") as c:
        yield c


async def browser_login(client: httpx.AsyncClient, account: LocalAccount) -> httpx.Response:
    secret = await get_secret(client, account.address, prefix="/auth")
    response = await client.post(
        "/auth/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )
    assert response.status_code == 200
    return response


async def test_login_sets_an_httponly_token_cookie_and_a_readable_csrf_cookie(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await browser_login(client, wallet)
    cookies = response.headers.get_list("set-cookie")
    token = response.json()["data"]["access_token"]
    csrf = response.json()["data"]["csrf_token"]
    assert f"wallet_auth={token}; Max-Age=604800; Path=/; SameSite=Lax; HttpOnly" in cookies
    assert f"wallet_auth_csrf={csrf}; Max-Age=604800; Path=/; SameSite=Lax" in cookies


def test_secure_is_on_by_default() -> None:
    header = CookieSettings().set_cookie("wallet_auth", "v", 10, http_only=True).decode()
    assert header == "wallet_auth=v; Max-Age=10; Path=/; SameSite=Lax; Secure; HttpOnly"


async def test_the_cookie_authenticates_safe_requests(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    await browser_login(client, wallet)
    assert (await client.get("/whoami")).json() == {"address": wallet.address}


async def test_unsafe_request_by_cookie_needs_the_csrf_header(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    csrf = (await browser_login(client, wallet)).json()["data"]["csrf_token"]
    missing = await client.post("/whoami")
    assert missing.status_code == 403 and missing.json()["code"] == 40303
    ok = await client.post("/whoami", headers={"x-csrf-token": csrf})
    assert ok.json() == {"address": wallet.address}
    assert (await client.delete("/whoami", headers={"x-csrf-token": csrf})).status_code == 200


@pytest.mark.parametrize("attack", ["forged", "not the cookie", "other session", "tampered"])
async def test_csrf_tokens_that_are_not_this_sessions_are_refused(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount, attack: str
) -> None:
    auth = make_auth(clock, cookie=COOKIE)
    async with client_for(build_app(auth), base_url="http://example.com") as attacker:
        theirs = (await browser_login(attacker, other_wallet)).json()["data"]["csrf_token"]
    async with client_for(build_app(auth), base_url="http://example.com") as victim:
        mine = (await browser_login(victim, wallet)).json()["data"]["csrf_token"]
        if attack == "forged":
            header, cookie = "forged-token", "forged-token"
        elif attack == "not the cookie":
            header, cookie = mine, mine[:-1] + ("A" if mine[-1] != "A" else "B")
        elif attack == "other session":  # a valid token, signed by us, for the attacker's session
            header, cookie = theirs, theirs
        else:
            header, cookie = mine[:-2] + "xx", mine[:-2] + "xx"
        victim.cookies.set("wallet_auth_csrf", cookie)
        response = await victim.post("/whoami", headers={"x-csrf-token": header})
        assert response.status_code == 403 and response.json()["code"] == 40303


async def test_a_new_login_needs_its_own_csrf_token(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    old = (await browser_login(client, wallet)).json()["data"]["csrf_token"]
    clock.advance(10)
    # While logged in by cookie, a new login is an unsafe request like any other.
    assert (
        await client.post("/auth/login_random_secret", json={"wallet_address": wallet.address})
    ).status_code == 403
    client.headers["x-csrf-token"] = old
    await browser_login(client, wallet)  # a new session: new auth_time
    del client.headers["x-csrf-token"]
    client.cookies.set("wallet_auth_csrf", old)
    assert (await client.post("/whoami", headers={"x-csrf-token": old})).status_code == 403


async def test_a_bearer_header_needs_no_csrf(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await browser_login(client, wallet)).json()["data"]["access_token"]
    client.cookies.clear()
    response = await client.post("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"address": wallet.address}


async def test_a_stale_cookie_is_anonymous_not_an_error(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    client.cookies.set("wallet_auth", "a.b.c")
    response = await client.get("/whoami")
    assert response.status_code == 200 and response.json() == {"address": None}
    # ...and it does not stand in the way of logging in again, CSRF header or not.
    await browser_login(client, wallet)


async def test_refresh_by_cookie_renews_both_cookies_and_keeps_the_session(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    first = (await browser_login(client, wallet)).json()["data"]
    clock.advance(60)
    # A refresh changes state: even as a GET, the cookie credential needs the CSRF proof.
    assert (await client.get("/auth/refresh")).status_code == 403
    response = await client.get("/auth/refresh", headers={"x-csrf-token": first["csrf_token"]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["access_token"] != first["access_token"]
    assert client.cookies["wallet_auth"] == data["access_token"]
    # The same session (same auth_time): the new CSRF token and the old one both name it.
    assert (
        await client.post("/whoami", headers={"x-csrf-token": data["csrf_token"]})
    ).status_code == 200


async def test_logout_by_cookie_needs_csrf_and_clears_the_cookies(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    csrf = (await browser_login(client, wallet)).json()["data"]["csrf_token"]
    assert (await client.post("/auth/logout")).status_code == 403
    response = await client.post("/auth/logout", headers={"x-csrf-token": csrf})
    assert response.status_code == 200
    cleared = response.headers.get_list("set-cookie")
    assert "wallet_auth=; Max-Age=0; Path=/; SameSite=Lax; HttpOnly" in cleared
    assert "wallet_auth_csrf=; Max-Age=0; Path=/; SameSite=Lax" in cleared
    assert (await client.get("/whoami")).json() == {"address": None}


def _login_testclient(client: TestClient, account: LocalAccount) -> str:
    secret = client.post(
        "/auth/login_random_secret", json={"wallet_address": account.address}
    ).json()["data"]
    response = client.post(
        "/auth/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )
    token: str = response.json()["data"]["access_token"]
    return token


def test_websocket_by_cookie_needs_the_services_own_origin(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    with TestClient(build_app(auth), base_url="http://example.com") as client:
        cookie = f"wallet_auth={_login_testclient(client, wallet)}"
        with client.websocket_connect("/ws", headers={"origin": URI, "cookie": cookie}) as socket:
            assert socket.receive_json() == {"address": wallet.address}
        for headers in ({"origin": "https://evil.com", "cookie": cookie}, {"cookie": cookie}):
            with (
                pytest.raises(WebSocketDisconnect) as exc,
                client.websocket_connect("/ws", headers=headers) as socket,
            ):
                socket.receive_json()
            assert exc.value.code == 1008


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"samesite": "none", "secure": False}, "needs secure=True"),
        ({"name": "bad name"}, "cookie token"),
        ({"name": "x", "csrf_cookie_name": "x"}, "must differ"),
        ({"csrf_header_name": "X-CSRF"}, "lowercase header"),
        ({"path": "nope"}, "start with '/'"),
        ({"domain": "a;b"}, "host name"),
        ({"samesite": "sometimes"}, "samesite must be"),
    ],
)
def test_cookie_settings_are_checked(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        CookieSettings(**kwargs)


def test_cookies_split_over_several_fields_are_joined() -> None:
    from asgi_wallet_auth.cookies import read_cookies

    scope = {
        "headers": [(b"cookie", b"a=1"), (b"x-other", b"y"), (b"Cookie", b"wallet_auth=t; b=2")]
    }
    assert read_cookies(scope) == {"a": "1", "wallet_auth": "t", "b": "2"}
