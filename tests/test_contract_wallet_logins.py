"""Contract wallets through every login route, on a real chain (anvil).

Each kind of account (deployed EIP-1271 wallet, counterfactual ERC-6492 wallet, a wrapped
signature of a deployed one, an EIP-7702-delegated EOA) logs in with the raw secret, with an
EIP-4361 message and through Web3MQ's user login; every refusal leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import nacl.signing
import pytest
from Crypto.Hash import SHA3_224
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import EthereumVerifier, WalletAuth
from asgi_wallet_auth.rpc import RpcClient
from asgi_wallet_auth.signatures import to_checksum_address
from tests.anvil_node import CHAIN_ID
from tests.chain_kit import (
    COUNTERFACTUAL_SALT,
    DELEGATOR,
    OWNER,
    PREDEPLOYED_SALT,
    STRANGER,
    Wallets,
    sign,
    wrap_6492,
)
from tests.conftest import T0, URI, FakeClock, client_for
from tests.helpers import make_auth, siwe_text
from tests.rpc_server import FakeNode, Reply, forward, running
from tests.security.support import NOW_MS, assert_refused, assert_token

# How each kind of account signs ``message`` with ``key`` (its owner's, or a stranger's).
Signer = Callable[[Wallets, LocalAccount, bytes], tuple[str, bytes]]
KINDS: dict[str, Signer] = {
    "deployed EIP-1271 wallet": lambda w, key, m: (w.deployed, sign(key, m)),
    "counterfactual ERC-6492 wallet": lambda w, key, m: (
        w.counterfactual,
        wrap_6492(w.factory, w.deploy_call(COUNTERFACTUAL_SALT), sign(key, m)),
    ),
    "ERC-6492 wrapper of a deployed wallet": lambda w, key, m: (
        w.predeployed,
        wrap_6492(w.factory, w.deploy_call(PREDEPLOYED_SALT), sign(key, m)),
    ),
    "EIP-7702 delegated EOA": lambda w, key, m: (
        DELEGATOR.address,
        b"\x01" + sign(DELEGATOR if key is OWNER else key, m),
    ),
}


@pytest.fixture
def relay(anvil: Any) -> Iterator[FakeNode]:
    yield from running(forward(anvil.url))


@pytest.fixture
async def auth(clock: FakeClock, relay: FakeNode) -> AsyncIterator[WalletAuth]:
    rpc = RpcClient({CHAIN_ID: relay.url}, timeout=5.0)
    service = make_auth(clock, chains=[EthereumVerifier(rpc=rpc, chain_ids={CHAIN_ID})])
    await service.startup()
    try:
        yield service
    finally:
        await service.aclose()


def hexed(signature: bytes) -> str:
    return "0x" + signature.hex()


async def secret_for(client: httpx.AsyncClient, address: str) -> str:
    response = await client.post("/login_random_secret", json={"wallet_address": address})
    assert response.status_code == 200, response.text
    secret: str = response.json()["data"]
    return secret


async def raw_login(
    client: httpx.AsyncClient, wallets: Wallets, kind: str, key: LocalAccount
) -> tuple[str, httpx.Response]:
    address, _ = KINDS[kind](wallets, key, b"")
    secret = await secret_for(client, address)
    _, signature = KINDS[kind](wallets, key, secret.encode())
    body = {"login_random_secret": secret, "signature": hexed(signature), "wallet_address": address}
    return secret, await client.post("/login", json=body)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_logs_in_with_the_raw_secret(
    auth: WalletAuth, wallets: Wallets, relay: FakeNode, kind: str
) -> None:
    async with client_for(auth) as client:
        _, response = await raw_login(client, wallets, kind, OWNER)
    data = assert_token(response)
    address = to_checksum_address(KINDS[kind](wallets, OWNER, b"")[0][2:])
    assert data["wallet_address"] == address
    claims = auth.authenticate_token(data["access_token"]).claims
    assert claims["account_id"] == f"eip155:{CHAIN_ID}:{address}"
    assert relay.methods().count("eth_call") == 1  # one call a contract-wallet login
    assert await auth.user_store.get_by_address(address) is not None


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_logs_in_with_an_eip4361_message(
    auth: WalletAuth, wallets: Wallets, kind: str
) -> None:
    address = to_checksum_address(KINDS[kind](wallets, OWNER, b"")[0][2:])
    async with client_for(auth) as client:
        secret = await secret_for(client, address)
        text = siwe_text(address=address, nonce=secret, issued_at=T0, chain_id=CHAIN_ID)
        _, signature = KINDS[kind](wallets, OWNER, text.encode())
        body = {
            "login_random_secret": secret,
            "signature": hexed(signature),
            "wallet_address": address,
            "signature_content": text,
        }
        assert_token(await client.post("/login", json=body))


def web3mq_body(address: str, sign_for: Callable[[bytes], bytes]) -> dict[str, Any]:
    device = nacl.signing.SigningKey(b"\x07" * 32)
    pubkey = bytes(device.verify_key).hex()
    userid = "user:contract"
    nonce = SHA3_224.new(
        (userid + "ed25519" + pubkey + "eth" + address + str(NOW_MS)).encode()
    ).hexdigest()
    content = "\n".join(
        [
            "Web3MQ wants you to sign in with your Ethereum account:",
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
        "did_type": "eth",
        "did_value": address,
        "timestamp": NOW_MS,
        "pubkey_type": "ed25519",
        "pubkey_value": pubkey,
        "signature_content": content,
        "did_signature": hexed(sign_for(content.encode())),
    }


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_registers_through_web3mq_user_login(
    auth: WalletAuth, wallets: Wallets, kind: str
) -> None:
    address = to_checksum_address(KINDS[kind](wallets, OWNER, b"")[0][2:])
    async with client_for(auth) as client:
        stranger = web3mq_body(address, lambda m: KINDS[kind](wallets, STRANGER, m)[1])
        assert_refused(await client.post("/api/user_login/", json=stranger), 401, 40101)
        assert await auth.user_store.get("user:contract") is None
        owner = web3mq_body(address, lambda m: KINDS[kind](wallets, OWNER, m)[1])
        data = assert_token(await client.post("/api/user_login/", json=owner))
    assert data["did_value"] == address
    record = await auth.user_store.get("user:contract")
    assert record is not None and record.address == address


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_strangers_signature_is_refused_and_burns_nothing(
    auth: WalletAuth, wallets: Wallets, kind: str
) -> None:
    async with client_for(auth) as client:
        secret, response = await raw_login(client, wallets, kind, STRANGER)
        assert_refused(response, 401, 40101)
        address, _ = KINDS[kind](wallets, OWNER, b"")
        assert await auth.user_store.get_by_address(to_checksum_address(address[2:])) is None
        # The secret was not consumed: the owner's signature over it still logs in.
        _, signature = KINDS[kind](wallets, OWNER, secret.encode())
        body = {
            "login_random_secret": secret,
            "signature": hexed(signature),
            "wallet_address": address,
        }
        assert_token(await client.post("/login", json=body))


async def test_a_contract_that_is_not_a_wallet_is_refused(
    auth: WalletAuth, wallets: Wallets
) -> None:
    async with client_for(auth) as client:
        secret = await secret_for(client, wallets.counter)
        body = {
            "login_random_secret": secret,
            "signature": hexed(sign(OWNER, secret.encode())),
            "wallet_address": wallets.counter,
        }
        assert_refused(await client.post("/login", json=body), 401, 40101)


async def test_an_rpc_outage_is_503_with_nothing_stored_then_service_returns(
    auth: WalletAuth, wallets: Wallets, relay: FakeNode
) -> None:
    forwarding = relay.script
    kind = "deployed EIP-1271 wallet"
    async with client_for(auth) as client:
        address, _ = KINDS[kind](wallets, OWNER, b"")
        secret = await secret_for(client, address)
        _, signature = KINDS[kind](wallets, OWNER, secret.encode())
        body = {
            "login_random_secret": secret,
            "signature": hexed(signature),
            "wallet_address": address,
        }
        relay.script = lambda request: Reply(b"upstream down", 502)
        assert_refused(await client.post("/login", json=body), 503, 50302)
        assert await auth.user_store.get_by_address(to_checksum_address(address[2:])) is None
        relay.script = forwarding  # the node is back: the same secret still works
        assert_token(await client.post("/login", json=body))


async def test_an_ordinary_wallet_needs_no_rpc_even_when_the_node_is_down(
    auth: WalletAuth, relay: FakeNode, wallet: LocalAccount
) -> None:
    relay.requests.clear()  # startup asked the node its chain id; nothing after that
    forwarding = relay.script
    relay.script = lambda request: Reply(b"upstream down", 502)
    try:
        async with client_for(auth) as client:
            secret = await secret_for(client, wallet.address)
            body = {
                "login_random_secret": secret,
                "signature": hexed(sign(wallet, secret.encode())),
                "wallet_address": wallet.address,
            }
            assert_token(await client.post("/login", json=body))
    finally:
        relay.script = forwarding  # its teardown closes the relay's own client
    assert relay.requests == []


async def test_startup_refuses_an_rpc_url_of_another_chain(clock: FakeClock, anvil: Any) -> None:
    rpc = RpcClient({1: anvil.url}, timeout=5.0)  # anvil answers 31337
    service = make_auth(clock, chains=[EthereumVerifier(rpc=rpc)])
    with pytest.raises(ValueError, match="chain"):
        await service.startup()
    await service.aclose()
