"""Step-up: ``require_recent_login`` in Starlette and FastAPI, and ``POST /reauthenticate``
issuing a token of the same session with a new ``auth_time`` (and nothing for anyone else)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.fastapi import CurrentWallet, add_wallet_auth
from asgi_wallet_auth.fastapi import require_recent_login as recent_login_dependency
from asgi_wallet_auth.stepup import require_recent_login
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import assert_error, get_secret, login, make_auth


def starlette_app(auth: WalletAuth, clock: FakeClock) -> Starlette:
    @require_recent_login(300, clock=clock)
    async def transfer(request: Request) -> JSONResponse:
        return JSONResponse({"ok": request.user.address})

    @require_recent_login(300, clock=clock)
    def sync_transfer(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/transfer", transfer, methods=["POST"]),
            Route("/sync", sync_transfer, methods=["POST"]),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def reauth(
    client: httpx.AsyncClient,
    token: str,
    account: LocalAccount,
    *,
    signer: LocalAccount | None = None,
) -> httpx.Response:
    secret = await get_secret(client, account.address, "/auth")
    body = {
        "login_random_secret": secret,
        "signature": sign_text(signer or account, secret),
        "wallet_address": account.address,
    }
    return await client.post(
        "/auth/reauthenticate", json=body, headers={"authorization": f"Bearer {token}"}
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_old_signature_is_refused_until_the_wallet_signs_again(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    async with client_for(starlette_app(auth, clock)) as client:
        data = await login(client, wallet, "/auth")
        token = data["access_token"]
        assert (await client.post("/transfer", headers=bearer(token))).status_code == 200
        clock.advance(301)
        refused = await client.post("/transfer", headers=bearer(token))
        assert_error(refused, 401, 40114)
        assert 'error="insufficient_user_authentication"' in refused.headers["www-authenticate"]
        assert "max_age=300" in refused.headers["www-authenticate"]
        assert_error(await client.post("/sync", headers=bearer(token)), 401, 40114)
        # A refresh keeps auth_time: it proves nothing new.
        refreshed = await client.get("/auth/refresh", headers=bearer(token))
        token = refreshed.json()["data"]["access_token"]
        assert_error(await client.post("/transfer", headers=bearer(token)), 401, 40114)
        response = await reauth(client, token, wallet)
        assert response.status_code == 200, response.text
        fresh = response.json()["data"]["access_token"]
        assert (await client.post("/transfer", headers=bearer(fresh))).json() == {
            "ok": wallet.address
        }
        assert (await client.post("/sync", headers=bearer(fresh))).status_code == 200
        # The same session, a new auth_time; with revocation the replaced token is retired.
        old, new = auth.authenticate_token(token).claims, auth.authenticate_token(fresh).claims
        assert new["sid"] == old["sid"] and new["auth_time"] == int(T0 + 301) > old["auth_time"]
        assert_error(await client.post("/transfer", headers=bearer(token)), 401, 40111)
        assert_error(await client.post("/transfer"), 401, 40112)  # anonymous


async def test_another_wallets_signature_is_refused_and_spends_nothing(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    async with client_for(starlette_app(auth, clock)) as client:
        mine = (await login(client, wallet, "/auth"))["access_token"]
        theirs = (await login(client, other_wallet, "/auth"))["access_token"]
        # The other wallet's own, valid proof against my session.
        assert_error(await reauth(client, mine, other_wallet), 403, 40305)
        # My address, signed by someone else: a failed proof, 401, the secret kept.
        secret = await get_secret(client, wallet.address, "/auth")
        forged = {
            "login_random_secret": secret,
            "signature": sign_text(other_wallet, secret),
            "wallet_address": wallet.address,
        }
        response = await client.post("/auth/reauthenticate", json=forged, headers=bearer(mine))
        assert_error(response, 401, 40101)
        good = {**forged, "signature": sign_text(wallet, secret)}
        response = await client.post("/auth/reauthenticate", json=good, headers=bearer(mine))
        assert response.status_code == 200
        # A token of another session is untouched by my re-authentication.
        assert auth.authenticate_token(theirs).claims["sub"] == other_wallet.address
        assert (await client.post("/transfer", headers=bearer(theirs))).status_code == 200


async def test_a_session_that_ended_or_moved_on_cannot_be_re_authenticated(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    async with client_for(starlette_app(auth, clock)) as client:
        token = (await login(client, wallet, "/auth"))["access_token"]
        assert (await reauth(client, token, wallet)).status_code == 200
        assert_error(await reauth(client, token, wallet), 401, 40111)  # replaced already
        other = (await login(client, wallet, "/auth"))["access_token"]
        assert (await client.post("/auth/logout", headers=bearer(other))).status_code == 200
        assert_error(await reauth(client, other, wallet), 401, 40111)
        assert_error(await client.post("/auth/reauthenticate", json={}), 401, 40112)


async def test_the_fastapi_dependency(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock)
    app = FastAPI()
    add_wallet_auth(app, auth, prefix="/auth")

    @app.post("/transfer", dependencies=[recent_login_dependency(300, clock=clock)])
    async def transfer(wallet: CurrentWallet) -> dict[str, Any]:
        return {"ok": wallet.address}

    async with client_for(app) as client:
        token = (await login(client, wallet, "/auth"))["access_token"]
        assert (await client.post("/transfer", headers=bearer(token))).status_code == 200
        clock.advance(301)
        assert_error(await client.post("/transfer", headers=bearer(token)), 401, 40114)
        response = await reauth(client, token, wallet)
        assert response.status_code == 200, response.text
        fresh = response.json()["data"]["access_token"]
        assert (await client.post("/transfer", headers=bearer(fresh))).status_code == 200
        assert_error(await client.post("/transfer"), 401, 40112)
        schema = (await client.get("/openapi.json")).json()
        assert "/auth/reauthenticate" in schema["paths"]


def test_the_decorator_and_the_dependency_check_their_arguments() -> None:
    for bad in (0, -5, float("inf"), "300", True):
        with pytest.raises(ValueError, match="positive number of seconds"):
            require_recent_login(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="positive number of seconds"):
            recent_login_dependency(bad)  # type: ignore[arg-type]

    def no_request(x: int) -> None:
        return None

    with pytest.raises(ValueError, match="no 'request'"):
        require_recent_login(60)(no_request)
