"""The sign-in page and the JS client in a real headless Chromium, against real ``serve``
processes: the page served by the service, a dapp on another origin using the client with CORS,
an origin that is not listed, cookies with CSRF across origins, and what the user sees when the
wallet is missing, says no, or is on the wrong chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from Crypto.Hash import keccak
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth.signatures import to_checksum_address
from tests.browser_support import (
    StandInWallet,
    chromium_binary,
    dapp_page,
    keep_screenshot,
    static_server,
)
from tests.conftest import OTHER_KEY, WALLET_KEY
from tests.processes import free_port, running_service


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    binary = chromium_binary()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """The service's, the cookie service's, a listed dapp's and an unlisted dapp's ports."""
    return {name: free_port() for name in ("service", "cookie_service", "dapp", "stranger")}


@pytest.fixture(scope="module")
def dapps(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[Path]:
    """Two dapp servers of the same folder: one origin listed by the services, one not."""
    folder = tmp_path_factory.mktemp("dapp")
    service, cookie_service = ports["service"], ports["cookie_service"]
    (folder / "bearer.html").write_text(dapp_page(f"http://127.0.0.1:{service}"))
    (folder / "cookie.html").write_text(dapp_page(f"http://127.0.0.1:{cookie_service}"))
    with static_server(folder, ports["dapp"]), static_server(folder, ports["stranger"]):
        yield folder


@pytest.fixture(scope="module")
def service(
    chromium: Any, tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int], dapps: Path
) -> Iterator[str]:
    """``serve`` for Ethereum mainnet only, with the dapp at http://localhost:DAPP allowed."""
    with running_service(
        tmp_path_factory.mktemp("service"),
        ports["service"],
        "--chain-id",
        "1",
        "--cors-origin",
        f"http://localhost:{ports['dapp']}",
    ) as base:
        yield base


@pytest.fixture(scope="module")
def cookie_service(
    chromium: Any, tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int], dapps: Path
) -> Iterator[str]:
    """``serve --cookies`` with the dapp at http://127.0.0.1:DAPP (same site, another origin)."""
    with running_service(
        tmp_path_factory.mktemp("cookie-service"),
        ports["cookie_service"],
        "--cookies",
        "--cors-origin",
        f"http://127.0.0.1:{ports['dapp']}",
    ) as base:
        yield base


@pytest.fixture
def account() -> LocalAccount:
    return Account.from_key(WALLET_KEY)


def open_page(chromium: Any, wallet: StandInWallet, url: str) -> Any:
    """A fresh browser profile with the stand-in wallet, at ``url``."""
    context = chromium.new_context(viewport={"width": 820, "height": 720})
    context.set_default_timeout(15_000)
    wallet.install(context)
    page = context.new_page()
    page.goto(url)
    return page


# -- the page served by `serve` ----------------------------------------------------------------


def test_the_page_signs_in_shows_the_session_refreshes_and_signs_out(
    chromium: Any, service: str, account: LocalAccount, tmp_path: Path
) -> None:
    wallet = StandInWallet(account)
    page = open_page(chromium, wallet, service + "/")
    try:
        page.get_by_role("button", name="Test Wallet").click()
        page.locator("#session").wait_for(state="visible")
        assert page.locator("#address").inner_text() == account.address
        assert page.locator("#chain").inner_text() == "1"
        assert "bearer token, in memory only" in page.locator("#transport").inner_text()
        assert "(in about 7 days)" in page.locator("#expiry").inner_text()  # serve's lifetime
        page.wait_for_function("document.getElementById('me').textContent.includes('eip155')")
        assert f"eip155:1:{account.address}" in page.locator("#me").inner_text()
        # What the wallet signed: built from GET /siwe, not guessed from the page's location.
        (message,) = wallet.signed
        authority = service.removeprefix("http://")
        assert message.startswith(f"{authority} wants you to sign in with your Ethereum account:")
        assert f"\n{account.address}\n\nSign in with your wallet\n\nURI: {service}\n" in message
        assert "\nChain ID: 1\n" in message and "\nExpiration Time: " in message
        # The token lives in the module's memory only: nothing in storage or readable cookies.
        stored = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""]
        shot = tmp_path / "browser-signin.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        keep_screenshot(shot)

        page.get_by_role("button", name="Refresh the token").click()
        page.get_by_text("Token refreshed.").wait_for()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_text("Signed out.").wait_for()
        assert page.locator("#session").is_hidden()
        assert page.locator("#start").is_visible()
    finally:
        page.context.close()


def test_a_rejected_signature_is_explained_and_nothing_is_signed(
    chromium: Any, service: str, account: LocalAccount
) -> None:
    wallet = StandInWallet(account, reject=True)
    page = open_page(chromium, wallet, service + "/")
    try:
        page.get_by_role("button", name="Test Wallet").click()
        page.get_by_text("You rejected the request in your wallet. Nothing was signed.").wait_for()
        assert page.locator("#status").get_attribute("class") == "error"
        assert page.locator("#session").is_hidden()
        assert wallet.signed == []
    finally:
        page.context.close()


def test_a_wallet_on_a_chain_the_service_does_not_accept_is_told_which_to_use(
    chromium: Any, service: str, account: LocalAccount
) -> None:
    wallet = StandInWallet(account, chain_id=5)
    page = open_page(chromium, wallet, service + "/")
    try:
        page.get_by_role("button", name="Test Wallet").click()
        page.get_by_text("Your wallet is on chain 5; this service accepts chain 1.").wait_for()
        assert "personal_sign" not in page.evaluate("window.__walletCalls")
        assert wallet.signed == []
    finally:
        page.context.close()


def test_without_a_wallet_the_page_says_how_to_get_one(chromium: Any, service: str) -> None:
    wallet = StandInWallet(Account.from_key(WALLET_KEY), mode="none")
    # Opened as localhost while the service signs in as 127.0.0.1: the page says so.
    local = service.replace("127.0.0.1", "localhost")
    page = open_page(chromium, wallet, local + "/")
    try:
        page.get_by_text("No wallet found.").wait_for()
        assert page.locator("#wallets button").count() == 0
        notice = page.locator("#service").inner_text()
        assert f"You sign in to {service.removeprefix('http://')}." in notice
        assert f"This page is {local.removeprefix('http://')}" in notice
    finally:
        page.context.close()


def test_a_wallet_at_window_ethereum_alone_is_found_too(
    chromium: Any, service: str, account: LocalAccount
) -> None:
    wallet = StandInWallet(account, mode="legacy")
    page = open_page(chromium, wallet, service + "/")
    try:
        page.get_by_role("button", name="Browser wallet").click()
        page.locator("#session").wait_for(state="visible")
        assert page.locator("#address").inner_text() == account.address
    finally:
        page.context.close()


def test_the_client_hashes_and_checksums_as_python_does(
    chromium: Any, service: str, account: LocalAccount
) -> None:
    page = open_page(chromium, StandInWallet(account, mode="none"), service + "/")
    try:
        lengths = [0, 1, 135, 136, 137, 272, 300]
        addresses = [
            account.address.lower(),
            "0x" + "ab" * 20,
            "0x52908400098527886e0f7030069857d2e4169ee7",
        ]
        got = page.evaluate(
            """async ([lengths, addresses]) => {
                const m = await import("/wallet-auth.js");
                const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
                return {
                    hashes: lengths.map(
                        (n) => hex(m.keccak256(new Uint8Array(n).map((_, i) => i % 251)))
                    ),
                    checksums: addresses.map(m.toChecksumAddress),
                };
            }""",
            [lengths, addresses],
        )
        expected = [
            keccak.new(digest_bits=256, data=bytes(i % 251 for i in range(n))).hexdigest()
            for n in lengths
        ]
        assert got["hashes"] == expected
        assert got["checksums"] == [to_checksum_address(a[2:]) for a in addresses]
        assert got["checksums"][0] == account.address
    finally:
        page.context.close()


# -- a dapp on another origin, with the JS client ------------------------------------------------


def open_dapp(chromium: Any, wallet: StandInWallet, url: str) -> Any:
    page = open_page(chromium, wallet, url)
    page.wait_for_selector("body[data-ready=yes]")
    return page


def test_a_dapp_on_another_origin_signs_in_calls_me_refreshes_and_signs_out(
    chromium: Any, service: str, ports: dict[str, int], account: LocalAccount
) -> None:
    wallet = StandInWallet(account)
    # Another site altogether (localhost, not 127.0.0.1), allowed by --cors-origin.
    page = open_dapp(chromium, wallet, f"http://localhost:{ports['dapp']}/bearer.html")
    try:
        result = page.evaluate(
            """async (service) => {
                const [wallet] = await client.discoverWallets();
                const session = await auth.signIn(wallet.provider);
                const token = auth._token;
                const me = await (await auth.fetchWithAuth(service + "/me")).json();
                const before = session.expiresAt;
                await auth.refresh();
                const refreshed = auth._token !== token;
                await auth.signOut();
                // The old token is revoked: the middleware's 401 is readable here, because it
                // carries the CORS headers too.
                const old = await fetch(
                    service + "/me", {headers: {Authorization: `Bearer ${token}`}});
                const anonymous = await auth.fetchWithAuth(service + "/me");
                return {
                    session, me, before, refreshed, oldStatus: old.status,
                    oldBody: await old.json(), anonymous: await anonymous.json(),
                };
            }""",
            service,
        )
        assert result["session"]["address"] == account.address
        assert result["session"]["transport"] == "bearer"
        assert result["me"]["data"]["address"] == account.address
        assert result["refreshed"] is True
        assert result["oldStatus"] == 401 and result["oldBody"]["code"] == 40111
        assert result["anonymous"]["code"] == 40112
        (message,) = wallet.signed
        assert message.startswith(service.removeprefix("http://") + " wants you to sign in")
    finally:
        page.context.close()


def test_a_service_refusal_reaches_the_dapp_as_a_typed_error(
    chromium: Any, service: str, ports: dict[str, int], account: LocalAccount
) -> None:
    wallet = StandInWallet(account, signer=Account.from_key(OTHER_KEY))  # signs with another key
    page = open_dapp(chromium, wallet, f"http://localhost:{ports['dapp']}/bearer.html")
    try:
        error = page.evaluate(
            """async () => {
                const [wallet] = await client.discoverWallets();
                try {
                    await auth.signIn(wallet.provider);
                } catch (e) {
                    return {name: e.name, code: e.code, msg: e.msg, status: e.status,
                            typed: e instanceof client.WalletAuthError, session: auth.session};
                }
            }"""
        )
        assert error["typed"] is True and error["name"] == "WalletAuthError"
        assert (error["status"], error["code"]) == (401, 40101)
        assert error["msg"] == "signature does not match the wallet address"
        assert error["session"] is None
    finally:
        page.context.close()


def test_a_page_on_an_origin_that_is_not_listed_cannot_call_the_service(
    chromium: Any, service: str, ports: dict[str, int], account: LocalAccount
) -> None:
    stranger = f"http://localhost:{ports['stranger']}"
    page = open_dapp(chromium, StandInWallet(account), stranger + "/bearer.html")
    try:
        # The client itself is public code any page may import; the service's answers are not.
        outcome = page.evaluate(
            """async (service) => {
                const failures = [];
                try { await auth.info(); } catch (e) { failures.push(e.name); }
                try {
                    await fetch(service + "/login_random_secret", {method: "POST",
                        headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({wallet_address: "0x" + "ab".repeat(20)})});
                } catch (e) { failures.push(e.name); }
                return failures;
            }""",
            service,
        )
        assert outcome == ["TypeError", "TypeError"]  # what fetch throws on a CORS failure
    finally:
        page.context.close()
    # What the browser was told: a refused preflight, and no Access-Control-Allow-Origin.
    preflight = httpx.options(
        service + "/login_random_secret",
        headers={"origin": stranger, "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 403 and preflight.json()["code"] == 40304
    assert "access-control-allow-origin" not in preflight.headers
    listed = httpx.options(
        service + "/login_random_secret",
        headers={
            "origin": f"http://localhost:{ports['dapp']}",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == f"http://localhost:{ports['dapp']}"
    assert listed.headers["access-control-allow-credentials"] == "true"


def test_cookies_cross_origins_with_the_csrf_token(
    chromium: Any, cookie_service: str, ports: dict[str, int], account: LocalAccount
) -> None:
    wallet = StandInWallet(account)
    page = open_dapp(chromium, wallet, f"http://127.0.0.1:{ports['dapp']}/cookie.html")
    context = page.context
    try:
        signed_in = page.evaluate(
            """async (service) => {
                const [wallet] = await client.discoverWallets();
                const session = await auth.signIn(wallet.provider);
                const me = await (await auth.fetchWithAuth(service + "/me")).json();
                // Without the CSRF header, the cookie alone cannot log anyone out.
                const forged = await fetch(
                    service + "/logout", {method: "POST", credentials: "include"});
                const refusal = [forged.status, (await forged.json()).code];
                return {session, token: auth._token, me, forged: refusal};
            }""",
            cookie_service,
        )
        assert signed_in["session"]["transport"] == "cookie"
        assert signed_in["token"] is None  # the page keeps no token: the cookie is HttpOnly
        assert signed_in["me"]["data"]["address"] == account.address
        assert signed_in["forged"] == [403, 40303]
        cookies = {c["name"]: c for c in context.cookies(cookie_service)}
        assert cookies["wallet_auth"]["httpOnly"] is True
        assert cookies["wallet_auth"]["sameSite"] == "Lax"
        assert cookies["wallet_auth_csrf"]["httpOnly"] is False

        signed_out = page.evaluate(
            """async (service) => {
                await auth.refresh();
                const after = await (await auth.fetchWithAuth(service + "/me")).json();
                await auth.signOut();
                const gone = await fetch(service + "/me", {credentials: "include"});
                return {after: after.code, gone: [gone.status, (await gone.json()).code]};
            }""",
            cookie_service,
        )
        assert signed_out["after"] == 0
        assert signed_out["gone"] == [401, 40112]
        assert not [c for c in context.cookies(cookie_service) if c["name"] == "wallet_auth"]

        # The service's own page in cookie mode says where the session is kept.
        own = context.new_page()
        own.goto(cookie_service + "/")
        own.get_by_role("button", name="Test Wallet").click()
        own.locator("#session").wait_for(state="visible")
        assert "HttpOnly cookie" in own.locator("#transport").inner_text()
        own.wait_for_function("document.getElementById('me').textContent.includes('eip155')")
    finally:
        context.close()
