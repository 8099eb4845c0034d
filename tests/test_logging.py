"""No secret, token, signature or key ever reaches a log record or an error message."""

from __future__ import annotations

import logging

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth.errors import LoginRefused
from tests.conftest import SECRET_KEY, T0, WALLET_KEY, FakeClock, client_for, sign_text
from tests.helpers import make_auth, siwe_text


async def test_no_secret_token_or_signature_in_any_log_record_or_error(
    clock: FakeClock,
    wallet: LocalAccount,
    other_wallet: LocalAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    calls = {"n": 0}

    async def sometimes_refuse(request: object, user: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("hook crashed")
        if calls["n"] == 3:
            raise LoginRefused()

    sensitive: list[str] = [SECRET_KEY, WALLET_KEY, WALLET_KEY[2:]]
    bodies: list[str] = []
    async with client_for(make_auth(clock, on_login=sometimes_refuse)) as client:

        async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
            bodies.append(response.text)
            return response

        for attempt in range(3):
            secret = (
                await call("POST", "/login_random_secret", json={"wallet_address": wallet.address})
            ).json()["data"]
            signature = sign_text(wallet, secret)
            sensitive += [secret, signature, signature[2:]]
            # a wrong signer, a replay after success, and a success (or hook refusal)
            await call(
                "POST",
                "/login",
                json={
                    "login_random_secret": secret,
                    "signature": sign_text(other_wallet, secret),
                    "wallet_address": wallet.address,
                },
            )
            response = await call(
                "POST",
                "/login",
                json={
                    "login_random_secret": secret,
                    "signature": signature,
                    "wallet_address": wallet.address,
                },
            )
            await call(
                "POST",
                "/login",
                json={
                    "login_random_secret": secret,
                    "signature": signature,
                    "wallet_address": wallet.address,
                },
            )
            if attempt == 0:
                token = response.json()["data"]["access_token"]
                sensitive.append(token)
                refreshed = await call(
                    "GET", "/refresh", headers={"Authorization": f"Bearer {token}"}
                )
                sensitive.append(refreshed.json()["data"]["access_token"])
                await call("GET", "/refresh", headers={"Authorization": f"Bearer {token[:-3]}abc"})
        secret = (
            await call("POST", "/login_random_secret", json={"wallet_address": wallet.address})
        ).json()["data"]
        text = siwe_text(address=wallet.address, nonce=secret, issued_at=T0, domain="evil.com")
        signature = sign_text(wallet, text)
        sensitive += [secret, signature]
        await call(
            "POST",
            "/login",
            json={
                "login_random_secret": secret,
                "signature": signature,
                "wallet_address": wallet.address,
                "signature_content": text,
            },
        )

    assert caplog.records, "the flows above log something; the check below must have input"
    logged = (
        "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
        + "\n"
        + caplog.text
    )
    # Bodies carry the secret and the token to their owner by design; error bodies never do.
    error_bodies = "\n".join(b for b in bodies if '"code":0' not in b)
    for value in sensitive:
        assert value not in logged
        assert value not in error_bodies
