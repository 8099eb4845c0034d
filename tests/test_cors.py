"""CORS: the settings' checks, preflights and headers on the login routes, the middleware's 401s,
``CorsMiddleware`` in front of an app, and Starlette's ``CORSMiddleware`` combined with them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.cookies import CookieSettings
from asgi_wallet_auth.cors import CorsMiddleware, CorsSettings
from tests.conftest import DOMAIN, SECRET_KEY, URI, FakeClock, client_for, sign_text

DAPP = "https://app.example.org"
STRANGER = "https://evil.example.net"
FROM_DAPP = {"origin": DAPP}
BAD_TOKEN = {"origin": DAPP, "authorization": "Bearer x.y.z"}


def _auth(clock: FakeClock, **kwargs: Any) -> WalletAuth:
    kwargs.setdefault("cors", CorsSettings(allow_origins=[DAPP]))
    return WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock, **kwargs)


def _preflight(origin: str, method: str = "POST", headers: str = "content-type") -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({}, "must name at least one origin"),
        ({"allow_origins": "https://a.example"}, "must be a list of origins"),
        ({"allow_origins": [["https://a.example"]]}, "must hold strings"),
        ({"allow_origins": ["*"]}, "cannot go with credentials"),
        ({"allow_origins": ["*", DAPP], "allow_credentials": False}, "list no other beside it"),
        ({"allow_origins": ["https://app.example.org/"]}, "no path, query or slash"),
        ({"allow_origins": ["https://App.example.org"]}, "in lowercase"),
        ({"allow_origins": ["https://app.example.org:443"]}, "omit the default port 443"),
        ({"allow_origins": ["http://localhost:99999"]}, "port is not a number"),
        ({"allow_origins": ["null"]}, "anyone can send it"),
        ({"allow_origins": ["app.example.org"]}, "scheme://host"),
        ({"allow_origins": [DAPP], "allow_headers": ["*"]}, "no '*'"),
        ({"allow_origins": [DAPP], "allow_methods": "GET"}, "must be a list of names"),
        ({"allow_origins": [DAPP], "max_age": -1}, "max_age"),
        ({"allow_origins": [DAPP], "allow_credentials": "yes"}, "True or False"),
    ],
)
def test_settings_refuse_what_a_browser_would_not_match_or_should_not_get(
    kwargs: dict[str, Any], fix: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        CorsSettings(**kwargs)


def test_settings_accept_origins_as_browsers_send_them() -> None:
    settings = CorsSettings(
        allow_origins=["http://localhost:5173", "https://[::1]:8443", DAPP, DAPP],
        allow_headers=["Authorization", "X-Custom"],
    )
    assert settings.allow_origins == ("http://localhost:5173", "https://[::1]:8443", DAPP)
    assert settings.allow_headers == ("authorization", "x-custom")
    assert CorsSettings(allow_origins=["*"], allow_credentials=False).allow_origins == ("*",)


def test_walletauth_takes_only_a_cors_settings_object(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match=re.escape("cors must be None or a CorsSettings(...)")):
        _auth(clock, cors={"allow_origins": [DAPP]})


async def test_a_listed_origin_gets_its_preflight_answered_with_the_routes_methods(
    clock: FakeClock,
) -> None:
    auth = _auth(clock, cookie=CookieSettings(csrf_header_name="x-wallet-csrf"))
    async with client_for(auth) as client:
        login = await client.options("/login", headers=_preflight(DAPP))
        refresh = await client.options(
            "/refresh", headers=_preflight(DAPP, "POST", "authorization, x-wallet-csrf")
        )
    assert login.status_code == 200 and login.json() == {"code": 0, "msg": "ok", "data": None}
    assert login.headers["access-control-allow-origin"] == DAPP
    assert login.headers["access-control-allow-credentials"] == "true"
    assert login.headers["access-control-allow-methods"] == "POST"
    assert login.headers["access-control-max-age"] == "600"
    assert "origin" in login.headers["vary"].lower()
    # The cookie transport's own CSRF header name is allowed without being listed.
    assert refresh.status_code == 200
    assert refresh.headers["access-control-allow-methods"] == "GET, POST"
    assert "x-wallet-csrf" in refresh.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/login", _preflight(STRANGER), 403, 40304),
        ("/login", _preflight(DAPP, "DELETE"), 403, 40304),
        ("/login", _preflight(DAPP, "POST", "content-type, x-secret-header"), 403, 40304),
        ("/nowhere", _preflight(DAPP), 404, 40401),
    ],
)
async def test_a_preflight_that_asks_too_much_is_refused_in_the_envelope(
    clock: FakeClock, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    async with client_for(_auth(clock)) as client:
        response = await client.options(path, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert "access-control-allow-methods" not in response.headers
    if headers["origin"] == STRANGER:
        assert "access-control-allow-origin" not in response.headers


async def test_every_answer_of_the_routes_carries_the_headers_for_a_listed_origin(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async with client_for(_auth(clock)) as client:
        secret = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}, headers=FROM_DAPP
        )
        refused = await client.post("/login", json={}, headers={"origin": DAPP})
        stranger = await client.post(
            "/login_random_secret",
            json={"wallet_address": wallet.address},
            headers={"origin": STRANGER},
        )
        no_origin = await client.get("/siwe")
        not_preflight = await client.options("/login", headers={"origin": DAPP})
    for response in (secret, refused):
        assert response.headers["access-control-allow-origin"] == DAPP
        assert response.headers["access-control-expose-headers"] == "retry-after, www-authenticate"
    assert refused.status_code == 400
    # Served, but unreadable by the stranger's page: no Access-Control-Allow-Origin.
    assert stranger.status_code == 200 and "access-control-allow-origin" not in stranger.headers
    assert no_origin.headers["vary"] == "Origin"
    assert not_preflight.status_code == 405  # OPTIONS without Access-Control-Request-Method


async def test_without_cors_nothing_changes(clock: FakeClock) -> None:
    auth = WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock)
    async with client_for(auth) as client:
        preflight = await client.options("/login", headers=_preflight(DAPP))
        answer = await client.get("/siwe", headers={"origin": DAPP})
    assert preflight.status_code == 405
    assert not any(k.startswith("access-control-") for k in answer.headers)
    assert auth.cors_headers({"type": "http", "headers": [(b"origin", DAPP.encode())]}) == []


async def test_any_origin_without_credentials(clock: FakeClock) -> None:
    auth = _auth(clock, cors=CorsSettings(allow_origins=["*"], allow_credentials=False))
    async with client_for(auth) as client:
        answer = await client.get("/siwe", headers={"origin": STRANGER})
        preflight = await client.options("/login", headers=_preflight(STRANGER))
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    assert preflight.status_code == 200


async def _protected(request: Request) -> JSONResponse:
    return JSONResponse({"user": getattr(request.user, "address", None)})


async def test_the_middlewares_401_carries_the_headers(clock: FakeClock) -> None:
    auth = _auth(clock)
    app = Starlette(
        routes=[Route("/data", _protected), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    async with client_for(app) as client:
        refused = await client.get(
            "/data", headers={"origin": DAPP, "authorization": "Bearer a.b.c"}
        )
        stranger = await client.get(
            "/data", headers={"origin": STRANGER, "authorization": "Bearer a.b.c"}
        )
    assert refused.status_code == 401 and refused.json()["code"] == 40111
    assert refused.headers["access-control-allow-origin"] == DAPP
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert stranger.status_code == 401 and "access-control-allow-origin" not in stranger.headers


async def test_cors_middleware_covers_a_whole_app_with_one_header_each(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = _auth(clock)
    app = Starlette(
        routes=[Route("/data", _protected), Mount("/auth", app=auth)],
        middleware=[
            Middleware(CorsMiddleware, cors=auth.cors),  # outermost
            Middleware(WalletAuthMiddleware, auth=auth),
        ],
    )
    async with client_for(app) as client:
        preflight = await client.options("/data", headers=_preflight(DAPP, "GET", "authorization"))
        refused = await client.get("/data", headers=BAD_TOKEN)
        secret = await client.post(
            "/auth/login_random_secret",
            json={"wallet_address": wallet.address},
            headers=FROM_DAPP,
        )
        stranger = await client.options("/data", headers=_preflight(STRANGER, "GET"))
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DAPP
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
    for response in (refused, secret):
        # Both layers apply the policy; the answer still has each header once.
        pairs = response.headers.multi_items()
        assert [v for k, v in pairs if k == "access-control-allow-origin"] == [DAPP]
        assert [v for k, v in pairs if k == "vary"] == ["Origin"]
    assert stranger.status_code == 403 and stranger.json()["code"] == 40304
    with pytest.raises(ValueError, match="CorsSettings"):
        CorsMiddleware(app, cors={"allow_origins": [DAPP]})  # type: ignore[arg-type]


async def test_starlettes_cors_middleware_outermost_with_walletauth_inside(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    # The order docs/browser.md gives: CORSMiddleware first (outermost), then the wallet
    # middleware, so that its 401s get the headers; WalletAuth's own cors may stay off.
    auth = WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock)
    app = Starlette(
        routes=[Route("/data", _protected), Mount("/auth", app=auth)],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=[DAPP],
                allow_credentials=True,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-csrf-token"],
            ),
            Middleware(WalletAuthMiddleware, auth=auth),
        ],
    )
    async with client_for(app) as client:
        preflight = await client.options("/auth/login", headers=_preflight(DAPP))
        refused = await client.get("/data", headers=BAD_TOKEN)
        secret = await client.post(
            "/auth/login_random_secret",
            json={"wallet_address": wallet.address},
            headers=FROM_DAPP,
        )
        login = await client.post(
            "/auth/login",
            json={
                "login_random_secret": secret.json()["data"],
                "signature": sign_text(wallet, secret.json()["data"]),
                "wallet_address": wallet.address,
            },
            headers={"origin": DAPP},
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DAPP
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == DAPP
    assert login.status_code == 200 and login.headers["access-control-allow-origin"] == DAPP
