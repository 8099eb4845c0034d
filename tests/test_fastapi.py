"""FastAPI: typed dependencies, the bearer scheme in OpenAPI, and the login routes in the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from fastapi.testclient import TestClient

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.fastapi import (
    CurrentWallet,
    OptionalWallet,
    add_wallet_auth,
    require_scopes,
)
from tests.conftest import FakeClock, client_for
from tests.helpers import login, make_auth


def build_app(auth: WalletAuth) -> FastAPI:
    app = FastAPI()
    add_wallet_auth(app, auth, prefix="/auth")

    @app.get("/me")
    async def me(wallet: CurrentWallet) -> dict[str, Any]:
        return {"address": wallet.address, "userid": wallet.userid}

    @app.get("/maybe")
    async def maybe(wallet: OptionalWallet) -> dict[str, Any]:
        return {"address": None if wallet is None else wallet.address}

    @app.get("/member", dependencies=[require_scopes("authenticated")])
    async def member() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/admin", dependencies=[require_scopes("authenticated", "admin")])
    async def admin() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, revocation=True)


@pytest.fixture
async def client(auth: WalletAuth) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app(auth)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_current_wallet_is_the_logged_in_wallet(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"address": wallet.address, "userid": wallet.address}


async def test_current_wallet_answers_401_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.json() == {"code": 40112, "msg": "access token required", "data": None}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_invalid_token_is_refused_before_the_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer("a.b.c"))
    assert response.status_code == 401 and response.json()["code"] == 40111


async def test_optional_wallet(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    assert (await client.get("/maybe")).json() == {"address": None}
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    assert (await client.get("/maybe", headers=bearer(token))).json() == {"address": wallet.address}


async def test_scope_checks(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    assert (await client.get("/member", headers=bearer(token))).json() == {"ok": True}
    denied = await client.get("/admin", headers=bearer(token))
    assert denied.status_code == 403 and denied.json()["code"] == 40302
    assert (await client.get("/member")).status_code == 401


async def test_login_routes_keep_the_strict_reader_and_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    # FastAPI would answer 422 with {"detail": ...}; the routes answer as WalletAuth does.
    response = await client.post(
        "/auth/login", content=b'{"a": NaN}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"code", "msg", "data"}
    assert (await client.post("/auth/login_random_secret", content=b"x")).status_code == 415


async def test_unknown_paths_and_wrong_methods_under_the_prefix_get_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    wrong_method = await client.get("/auth/login")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"code": 40501, "msg": "method not allowed", "data": None}
    assert wrong_method.headers["allow"] == "POST"
    unknown = await client.post("/auth/nope", json={})
    assert unknown.status_code == 404 and unknown.json()["code"] == 40401
    # Routes outside the prefix stay FastAPI's own.
    assert (await client.get("/nope")).json() == {"detail": "Not Found"}


async def test_refresh_and_logout_through_the_router(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    refreshed = await client.get("/auth/refresh", headers=bearer(token))
    assert refreshed.status_code == 200
    new = refreshed.json()["data"]["access_token"]
    assert (await client.post("/auth/logout", headers=bearer(new))).json()["code"] == 0
    assert (await client.get("/me", headers=bearer(new))).status_code == 401


def test_openapi_declares_the_bearer_scheme_and_the_login_bodies(auth: WalletAuth) -> None:
    with TestClient(build_app(auth)) as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    scheme = schema["components"]["securitySchemes"]["WalletAuth"]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        # The route where this app mounted it, not the bare /login.
        "description": "An access token from POST /auth/login (or /auth/api/user_login/).",
    }
    assert {"WalletAuth": []} in schema["paths"]["/me"]["get"]["security"]
    assert {"WalletAuth": []} in schema["paths"]["/auth/refresh"]["get"]["security"]
    login_op = schema["paths"]["/auth/login"]["post"]
    body = login_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"login_random_secret", "signature", "wallet_address"}
    assert "signature_content" in body["properties"]
    assert {"200", "400", "401", "503"} <= set(login_op["responses"])
    assert "/auth/api/user_login/" in schema["paths"]
    assert "/auth/login_random_secret" in schema["paths"]
    assert "/auth/logout" in schema["paths"]


def test_a_route_without_the_middleware_fails_loudly_with_the_fix() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(wallet: CurrentWallet) -> dict[str, str]:
        return {"address": wallet.address}

    with TestClient(app) as client, pytest.raises(RuntimeError, match="add_wallet_auth"):
        client.get("/me")
