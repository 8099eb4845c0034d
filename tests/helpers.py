"""Builders shared by the route tests: services, SIWE texts and complete logins."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.compat import settings_from_keywords
from tests.conftest import DOMAIN, SECRET_KEY, URI, FakeClock, sign_text


def make_auth(clock: FakeClock, **overrides: Any) -> WalletAuth:
    """A ``WalletAuth`` on the test domain with the injected clock."""
    settings: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "domain": DOMAIN,
        "uri": URI,
        "clock": clock,
    }
    settings.update(overrides)
    # Tests name settings by their flat 0.1 keywords for brevity; the service is built from
    # the settings objects they belong to, as an application writes it today.
    return WalletAuth(**settings_from_keywords(**settings))


def iso(ts: float) -> str:
    """RFC 3339 UTC text of a Unix time, as wallets write it."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def siwe_text(
    *,
    address: str,
    nonce: str,
    issued_at: float,
    domain: str = DOMAIN,
    uri: str = URI,
    chain_id: int = 1,
    statement: str | None = "Sign in to Example",
    expiration: float | None = None,
    not_before: float | None = None,
) -> str:
    """An EIP-4361 message, written out by hand so the tests do not trust our renderer."""
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        lines += [statement, ""]
    lines += [
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {iso(issued_at)}",
    ]
    if expiration is not None:
        lines.append(f"Expiration Time: {iso(expiration)}")
    if not_before is not None:
        lines.append(f"Not Before: {iso(not_before)}")
    return "\n".join(lines)


async def get_secret(client: httpx.AsyncClient, address: str, prefix: str = "") -> str:
    """Ask the service for a login secret for ``address``."""
    response = await client.post(f"{prefix}/login_random_secret", json={"wallet_address": address})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    secret = body["data"]
    assert isinstance(secret, str)
    return secret


async def login(
    client: httpx.AsyncClient, account: LocalAccount, prefix: str = ""
) -> dict[str, Any]:
    """A complete raw-secret login; returns the success ``data``."""
    secret = await get_secret(client, account.address, prefix)
    response = await client.post(
        f"{prefix}/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def login_at(base: str, account: LocalAccount) -> str:
    """A complete raw-secret login against a running service at ``base``; its access token."""
    secret = httpx.post(
        f"{base}/login_random_secret", json={"wallet_address": account.address}, timeout=10
    ).json()["data"]
    response = httpx.post(
        f"{base}/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["access_token"]
    return token


def assert_error(response: httpx.Response, status: int, code: int | None = None) -> dict[str, Any]:
    """A refusal: ``status``, the envelope with a non-zero ``code`` (``code`` if given)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "msg", "data"}
    assert body["data"] is None
    assert body["code"] != 0
    if code is not None:
        assert body["code"] == code
    assert isinstance(body["msg"], str) and body["msg"]
    return body
