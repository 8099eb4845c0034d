"""What a dapp reads before signing (``GET /siwe``), the sign-in page and JS client as served
files, and the service's browser options (``--cors-origin``, ``--cookies``, ``--chain-id``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_wallet_auth import (
    EthereumVerifier,
    LoginSettings,
    SolanaVerifier,
    TokenSettings,
    WalletAuth,
)
from asgi_wallet_auth.cli import build_parser
from asgi_wallet_auth.cookies import CookieSettings
from asgi_wallet_auth.pages import SignInPage, read_static
from asgi_wallet_auth.service import browser_settings, build_auth, create_service_app
from asgi_wallet_auth.siwe import SiweMessage
from tests.conftest import DOMAIN, SECRET_KEY, T0, URI, FakeClock, client_for, sign_text
from tests.processes import free_port, running_service


def _auth(clock: FakeClock, **kwargs: Any) -> WalletAuth:
    return WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock, **kwargs)


# -- GET /siwe ---------------------------------------------------------------------------------


async def test_siwe_says_what_to_sign_and_a_message_built_from_it_logs_in(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = _auth(
        clock,
        chains=[EthereumVerifier(chain_ids={10, 1}), SolanaVerifier(chain_ids={"devnet"})],
        login=LoginSettings(nonce_lifetime=120, statement="Sign in to Example"),
        tokens=TokenSettings(revocation=True),
        cookie=CookieSettings(),
    )
    async with client_for(auth) as client:
        info = (await client.get("/siwe")).json()["data"]
        assert info == {
            "domain": DOMAIN,
            "uri": URI,
            "version": "1",
            "statement": "Sign in to Example",
            "chains": {
                "eth": {"chain_ids": [1, 10], "default_chain_id": 1},
                "sol": {"chain_ids": ["devnet"], "default_chain_id": "devnet"},
            },
            "nonce_lifetime": 120,
            "clock_skew": 60,
            "raw_secret": True,
            "cookie": True,
            "csrf_header": "x-csrf-token",
            "logout": True,
            "now": int(T0),
            "issued_at": "2026-01-01T00:00:00.000Z",
        }
        secret = (
            await client.post("/login_random_secret", json={"wallet_address": wallet.address})
        ).json()["data"]
        message = str(
            SiweMessage(
                domain=info["domain"],
                address=wallet.address,
                statement=info["statement"],
                uri=info["uri"],
                version=info["version"],
                chain_id=info["chains"]["eth"]["chain_ids"][-1],
                nonce=secret,
                issued_at=info["issued_at"],
            )
        )
        login = await client.post(
            "/login",
            json={
                "login_random_secret": secret,
                "signature": sign_text(wallet, message),
                "wallet_address": wallet.address,
                "signature_content": message,
            },
        )
    assert login.status_code == 200, login.text


async def test_siwe_by_default_and_the_secret_route_keeps_its_shape(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async with client_for(_auth(clock)) as client:
        info = (await client.get("/siwe")).json()["data"]
        secret = await client.post("/login_random_secret", json={"wallet_address": wallet.address})
        wrong_method = await client.post("/siwe")
    assert info["statement"] == "Sign in with your wallet"
    assert info["chains"] == {"eth": {"chain_ids": None, "default_chain_id": None}}
    assert (info["cookie"], info["csrf_header"], info["logout"]) == (False, None, False)
    assert isinstance(secret.json()["data"], str)  # old clients read a bare string there
    assert wrong_method.status_code == 405


@pytest.mark.parametrize("statement", ["", "two\nlines", 'a "quote"', "100%", "caf\u00e9"])
def test_a_statement_a_message_could_not_carry_is_refused(statement: str) -> None:
    with pytest.raises(ValueError, match="statement must be None or one line"):
        LoginSettings(statement=statement)


# -- the page and the client as files ------------------------------------------------------------


async def test_the_page_is_served_with_a_strict_policy_and_its_urls() -> None:
    page = SignInPage(auth_url="https://auth.example.com/", me_url="/api/me")
    async with client_for(page) as client:
        index = await client.get("/")
        same = await client.get("/index.html")
        script = await client.get("/wallet-auth.js")
        head = await client.head("/signin.css")
        missing = await client.get("/nope.js")
        nested = await client.get("/static/signin.css")
        post = await client.post("/")
    assert index.status_code == 200 and index.text == same.text
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "connect-src 'self' https://auth.example.com;" in policy
    assert index.headers["x-frame-options"] == "DENY"
    assert '<meta name="wallet-auth-url" content="https://auth.example.com">' in index.text
    assert '<meta name="wallet-auth-me" content="/api/me">' in index.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["access-control-allow-origin"] == "*"
    assert script.content == read_static("wallet-auth.js")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(read_static("signin.css"))
    assert (missing.status_code, missing.json()["code"]) == (404, 40401)
    assert nested.status_code == 404  # the page's own files only, never a folder
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


async def test_an_app_mounts_the_page_beside_the_login_routes(clock: FakeClock) -> None:
    auth = _auth(clock)
    app = Starlette(
        routes=[
            Mount("/signin", app=SignInPage(auth_url="/auth", me_url=None)),
            Mount("/auth", app=auth),
        ]
    )
    async with client_for(app) as client:
        bare = await client.get("/signin", follow_redirects=False)
        index = await client.get("/signin/")
        script = await client.get("/signin/wallet-auth.js")
        info = await client.get("/auth/siwe")
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/signin/")
    assert '<meta name="wallet-auth-url" content="/auth">' in index.text
    assert '<meta name="wallet-auth-me" content="">' in index.text
    assert script.status_code == 200 and info.json()["data"]["domain"] == DOMAIN


@pytest.mark.parametrize("url", ['/x"><script>', "javascript:alert(1)", "//evil.example", 3])
def test_page_urls_are_checked(url: Any) -> None:
    with pytest.raises(ValueError, match="must be a path such as '/auth'"):
        SignInPage(auth_url=url)


def test_the_client_stays_small_and_self_contained() -> None:
    client = read_static("wallet-auth.js").decode("utf-8")
    assert len(client.splitlines()) < 400
    imports = re.findall(r"^\s*import\b.*$", client, flags=re.MULTILINE)
    assert imports == []  # one module, no dependency, no build step
    for name in ("signIn", "fetchWithAuth", "refresh", "signOut", "class WalletAuthError"):
        assert name in client


# -- the service --------------------------------------------------------------------------------


def test_serve_options_for_browsers() -> None:
    args = build_parser().parse_args(
        ["serve", "--cors-origin", "https://a.example", "--cors-origin", "http://localhost:5173",
         "--cookies", "--chain-id", "1", "--chain-id", "10"]
    )
    assert args.cors_origin == ["https://a.example", "http://localhost:5173"]
    assert (args.cookies, args.chain_id) == (True, [1, 10])
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.cors_origin, defaults.cookies, defaults.chain_id) == ([], False, [])


def test_browser_settings_from_the_environment() -> None:
    cors, cookie = browser_settings(
        {"WALLET_AUTH_CORS_ORIGINS": "https://a.example http://localhost:5173",
         "WALLET_AUTH_COOKIES": "1"},
        "http://127.0.0.1:8000",
    )
    assert cors is not None and cors.allow_origins == ("https://a.example", "http://localhost:5173")
    assert cookie is not None and cookie.secure is False and cookie.name == "wallet_auth"
    _, secure = browser_settings({"WALLET_AUTH_COOKIES": "1"}, "https://auth.example.com")
    assert secure is not None and secure.name == "__Host-wallet_auth"
    assert browser_settings({}, "https://auth.example.com") == (None, None)


async def test_the_service_serves_the_page_and_closes_sqlite_at_shutdown(tmp_path: Path) -> None:
    auth = build_auth(
        secret=SECRET_KEY,
        domain="127.0.0.1:8000",
        uri="http://127.0.0.1:8000",
        db=str(tmp_path / "users.db"),
        redis_url=None,
        chains={"WALLET_AUTH_CHAIN_IDS": "1"},
        browser={"WALLET_AUTH_CORS_ORIGINS": "http://localhost:5173"},
    )
    app = create_service_app(auth)
    async with app.router.lifespan_context(app):
        async with client_for(app) as client:
            page = await client.get("/", headers={"origin": "http://localhost:5173"})
            script = await client.get("/wallet-auth.js")
            info = (await client.get("/siwe")).json()["data"]
            await auth.user_store.get_by_address("0x" + "ab" * 20)
        assert (tmp_path / "users.db-wal").exists()
    assert page.status_code == 200 and "<title>Sign in with your wallet</title>" in page.text
    assert page.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert script.status_code == 200
    assert info["chains"]["eth"]["chain_ids"] == [1]
    assert not (tmp_path / "users.db-wal").exists() and not (tmp_path / "users.db-shm").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--cors-origin", "https://a.example/"], "is not an origin"),
        (["--cors-origin", "*"], "cannot go with credentials"),
        (["--chain-id", "0"], "chain_ids must be None"),
    ],
)
def test_serve_refuses_a_bad_browser_option_at_start(
    tmp_path: Path, args: list[str], said: str
) -> None:
    port = free_port()
    with pytest.raises(AssertionError, match=re.escape(said)), running_service(
        tmp_path, port, *args
    ):
        httpx.get(f"http://127.0.0.1:{port}/siwe")
