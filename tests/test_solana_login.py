"""Solana wallets through the same routes and the same middleware as Ethereum wallets."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import nacl.signing
import pytest
from Crypto.Hash import SHA3_224
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import EthereumVerifier, SolanaVerifier, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.base58 import b58encode
from tests.conftest import URI, FakeClock, client_for, sign_text
from tests.helpers import make_auth
from tests.security.support import NOW_MS, assert_refused, assert_token
from tests.solana_support import ADDRESS, OTHER, OTHER_ADDRESS, WALLET, sign, siws_text

# The CAIP-2 reference of Solana mainnet: the first 32 characters of its genesis hash.
MAINNET_ACCOUNT = f"solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{ADDRESS}"


def both_chains(clock: FakeClock, **kwargs: Any) -> WalletAuth:
    return make_auth(
        clock,
        chains=[EthereumVerifier(), SolanaVerifier(chain_ids={"mainnet", "devnet"})],
        **kwargs,
    )


def app_for(auth: WalletAuth) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse(
            {
                "address": user.address,
                "did_type": user.did_type,
                "account_id": user.account_id,
                "userid": user.userid,
            }
        )

    return Starlette(
        routes=[Route("/me", me), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def secret_for(client: httpx.AsyncClient, address: str) -> str:
    response = await client.post("/auth/login_random_secret", json={"wallet_address": address})
    assert response.status_code == 200, response.text
    secret: str = response.json()["data"]
    return secret


def siws_for(secret: str, *, chain: str = "mainnet", address: str = ADDRESS, **kw: Any) -> str:
    fields = [
        ("URI", kw.pop("uri", URI)),
        ("Version", "1"),
        ("Chain ID", chain),
        ("Nonce", secret),
        ("Issued At", "2026-01-01T00:00:00.000Z"),
    ]
    return siws_text(address=address, fields=fields, **kw)


async def stored(auth: WalletAuth) -> int:
    return len(auth.user_store)  # type: ignore[arg-type]


async def test_a_raw_secret_signed_by_a_solana_key_logs_in(clock: FakeClock) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, ADDRESS)
        body = {
            "login_random_secret": secret,
            "signature": b58encode(sign(secret)),
            "wallet_address": ADDRESS,
        }
        data = assert_token(await client.post("/auth/login", json=body))
        assert (data["wallet_address"], data["did_type"], data["did_value"]) == (
            ADDRESS,
            "sol",
            ADDRESS,
        )
        me = await client.get("/me", headers={"authorization": f"Bearer {data['access_token']}"})
        assert me.json() == {
            "address": ADDRESS,
            "did_type": "sol",
            "account_id": MAINNET_ACCOUNT,
            "userid": ADDRESS,
        }
        # The token refreshes as any other.
        token = data["access_token"]
        refreshed = await client.get("/auth/refresh", headers={"authorization": f"Bearer {token}"})
        assert assert_token(refreshed)["did_type"] == "sol"


@pytest.mark.parametrize("encode", [b58encode, lambda s: base64.b64encode(s).decode()])
async def test_a_siws_message_logs_in_with_either_signature_encoding(
    clock: FakeClock, encode: Any
) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, ADDRESS)
        text = siws_for(secret, chain="devnet")
        body = {
            "login_random_secret": secret,
            "signature": encode(sign(text)),
            "wallet_address": ADDRESS,
            "signature_content": text,
        }
        data = assert_token(await client.post("/auth/login", json=body))
        me = await client.get("/me", headers={"authorization": f"Bearer {data['access_token']}"})
        assert me.json()["account_id"] == f"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1:{ADDRESS}"


async def test_ethereum_logins_name_their_chain_too(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, wallet.address)
        body = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        data = assert_token(await client.post("/auth/login", json=body))
        me = await client.get("/me", headers={"authorization": f"Bearer {data['access_token']}"})
        assert me.json()["account_id"] == f"eip155:1:{wallet.address}"
        assert me.json()["did_type"] == "eth"


def _login_body(secret: str, **changes: Any) -> dict[str, Any]:
    text = siws_for(secret)
    body = {
        "login_random_secret": secret,
        "signature": b58encode(sign(text)),
        "wallet_address": ADDRESS,
        "signature_content": text,
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda s: {"signature": b58encode(sign(siws_for(s), OTHER))}, 401, 40101),
        (lambda s: {"wallet_address": "0OIl" + ADDRESS[4:]}, 400, 40002),
        (lambda s: {"wallet_address": b58encode(b"\x01" * 31)}, 400, 40002),
        (lambda s: {"signature": b58encode(b"\x01" * 63)}, 400, 40003),
        (lambda s: {"signature": base64.b64encode(b"\x01" * 65).decode()}, 400, 40003),
        (lambda s: {"signature": "not base58 or base64!"}, 400, 40003),
        (lambda s: _signed(siws_for(s, address=OTHER_ADDRESS)), 401, 40103),
        (lambda s: _signed(siws_for(s, domain="evil.com")), 401, 40103),
        (lambda s: _signed(siws_for(s, uri="https://evil.com")), 401, 40103),
        (lambda s: _signed(siws_for("A" * 40)), 401, 40103),
        (lambda s: _signed(siws_for(s, chain="testnet")), 401, 40103),
        (lambda s: _signed(siws_for(s) + "\nNonce: " + s), 400, 40004),
        (lambda s: _signed(siws_for(s, statement="x" * 9000)), 400, 40001),
    ],
)
async def test_every_refusal_changes_nothing(
    clock: FakeClock, change: Any, status: int, code: int
) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, ADDRESS)
        response = await client.post("/auth/login", json=_login_body(secret, **change(secret)))
        assert_refused(response, status, code)
        assert await stored(auth) == 0
        # The secret was not burnt: the genuine login still works.
        assert_token(await client.post("/auth/login", json=_login_body(secret)))


def _signed(text: str) -> dict[str, str]:
    return {"signature_content": text, "signature": b58encode(sign(text))}


async def test_a_replayed_secret_is_refused(clock: FakeClock) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, ADDRESS)
        assert_token(await client.post("/auth/login", json=_login_body(secret)))
        assert_refused(await client.post("/auth/login", json=_login_body(secret)), 401, 40102)


async def test_a_secret_never_crosses_chains(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = both_chains(clock)
    async with client_for(app_for(auth)) as client:
        eth_secret = await secret_for(client, wallet.address)
        sol_secret = await secret_for(client, ADDRESS)
        # An Ethereum address's secret, redeemed by the Solana key: nothing under that key.
        assert_refused(await client.post("/auth/login", json=_login_body(eth_secret)), 401, 40102)
        # A Solana address's secret, redeemed by the Ethereum wallet.
        body = {
            "login_random_secret": sol_secret,
            "signature": sign_text(wallet, sol_secret),
            "wallet_address": wallet.address,
        }
        assert_refused(await client.post("/auth/login", json=body), 401, 40102)
        # The Ethereum address with a Solana signature: the grammar of the claimed chain.
        body = {
            "login_random_secret": eth_secret,
            "signature": b58encode(sign(eth_secret)),
            "wallet_address": wallet.address,
        }
        assert_refused(await client.post("/auth/login", json=body), 400, 40003)
        assert await stored(auth) == 0
        # Both secrets are intact for their own wallets.
        assert_token(await client.post("/auth/login", json=_login_body(sol_secret)))


async def test_solana_is_refused_where_it_is_not_configured(clock: FakeClock) -> None:
    auth = make_auth(clock)
    async with client_for(auth) as client:
        response = await client.post("/login_random_secret", json={"wallet_address": ADDRESS})
        assert_refused(response, 400, 40002)


def _web3mq_body(
    device: nacl.signing.SigningKey,
    userid: str,
    wallet: nacl.signing.SigningKey = WALLET,
) -> dict[str, Any]:
    address = b58encode(bytes(wallet.verify_key))
    pubkey = bytes(device.verify_key).hex()
    text = userid + "ed25519" + pubkey + "sol" + address + str(NOW_MS)
    nonce = SHA3_224.new(text.encode()).hexdigest()
    content = "\n".join(
        [
            "Web3MQ wants you to sign in with your Solana account:",
            address,
            "For Web3MQ register",
            f"URI: {URI}",
            "Version: 1",
            f"Nonce: {nonce}",
            "Issued At: 01/01/2026 00:00",
        ]
    )
    return {
        "userid": userid,
        "did_type": "sol",
        "did_value": address,
        "timestamp": NOW_MS,
        "pubkey_type": "ed25519",
        "pubkey_value": pubkey,
        "signature_content": content,
        "did_signature": b58encode(sign(content, wallet)),
    }


async def test_web3mq_user_login_takes_a_solana_did(clock: FakeClock) -> None:
    auth = both_chains(clock)
    device = nacl.signing.SigningKey(bytes(range(32)))
    async with client_for(app_for(auth)) as client:
        body = _web3mq_body(device, "user:sol-alice")
        data = assert_token(await client.post("/auth/api/user_login/", json=body))
        assert (data["userid"], data["did_type"], data["did_value"]) == (
            "user:sol-alice",
            "sol",
            ADDRESS,
        )
        record = await auth.user_store.get("user:sol-alice")
        assert record is not None and record.did_type == "sol"
        # Another Solana wallet cannot take a userid that spells this wallet's address.
        squat = _web3mq_body(device, ADDRESS, wallet=OTHER)
        assert_refused(await client.post("/auth/api/user_login/", json=squat), 409, 40901)
        assert await auth.user_store.get(ADDRESS) is None
        assert await auth.user_store.get_by_address(OTHER_ADDRESS) is None
