"""ENS primary names against a small ENS on the real anvil node: the reverse record claimed
through a reverse registrar, verified forward, and every failure leaving the name out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import EthereumVerifier, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.ens import ENS_REGISTRY, NameSettings, is_normalized, namehash, reverse_node
from asgi_wallet_auth.identity import IdentitySettings
from asgi_wallet_auth.rpc import RpcClient
from tests.anvil_node import CHAIN_ID, free_port
from tests.chain_kit import call_data
from tests.chain_kit import rpc as rpc_call
from tests.conftest import FakeClock, client_for
from tests.helpers import login, make_auth
from tests.identity_chain import ALICE, BOB, CAROL, IdentityChain
from tests.identity_chain import namehash as reference_namehash


@pytest.fixture
async def rpc(anvil: Any) -> AsyncIterator[RpcClient]:
    client = RpcClient({CHAIN_ID: anvil.url})
    yield client
    await client.aclose()


def named(clock: FakeClock, rpc: RpcClient, chain: IdentityChain, **settings: Any) -> WalletAuth:
    names = NameSettings(chain_id=CHAIN_ID, registry=chain.registry, **settings)
    return make_auth(
        clock, chains=[EthereumVerifier(rpc=rpc)], identity=IdentitySettings(names=names)
    )


def app_for(auth: WalletAuth) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"display_name": request.user.display_name})

    return Starlette(
        routes=[Route("/me", me), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def display_name(auth: WalletAuth, account: Any) -> tuple[str, dict[str, Any]]:
    async with client_for(app_for(auth)) as client:
        data = await login(client, account, "/auth")
        me = await client.get("/me", headers={"authorization": f"Bearer {data['access_token']}"})
    assert me.status_code == 200
    return me.json()["display_name"], dict(auth.authenticate_token(data["access_token"]).claims)


def test_namehash_matches_eip_137_and_an_independent_implementation() -> None:
    assert namehash("") == bytes(32)
    assert (
        namehash("eth").hex() == "93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae"
    )
    assert (
        namehash("foo.eth").hex()
        == "de9b09fd7c5f901e23a3f19fecc54828e9c848539801e86591bd9801b019f84f"
    )
    for name in ("alice.eth", "a.b.c.d", "addr.reverse", "_x-1.eth"):
        assert namehash(name) == reference_namehash(name)
    assert reverse_node(ALICE.address) == reference_namehash(
        ALICE.address[2:].lower() + ".addr.reverse"
    )


def test_only_names_in_normalised_ascii_form_are_shown() -> None:
    for good in ("alice.eth", "a-b.eth", "__x.eth", "1.eth", "sub.alice.eth"):
        assert is_normalized(good), good
    for bad in (
        "Alice.eth",
        "alice",
        "alice..eth",
        "a_b.eth",
        "ab--c.eth",
        "ália.eth",
        "",
        "a" * 256,
        None,
    ):
        assert not is_normalized(bad), bad


async def test_a_verified_primary_name_is_the_display_name(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    chain.name_forward("alice", ALICE.address)
    chain.name_reverse(ALICE, "alice.eth")
    # The reverse registrar really claimed the node the service reads.
    data = call_data("owner(bytes32)", ["bytes32"], [reverse_node(ALICE.address)])
    with httpx.Client() as http:
        call = {"to": chain.registry, "data": "0x" + data.hex()}
        owner = rpc_call(http, chain.url, "eth_call", [call, "latest"])
    assert owner[-40:] == chain.reverse[2:].lower()
    shown, claims = await display_name(named(clock, rpc, chain), ALICE)
    assert shown == "alice.eth" and claims["ens_name"] == "alice.eth"
    assert claims["sub"] == ALICE.address  # the name is for display: the identity is unchanged


async def test_a_reverse_record_that_the_name_does_not_confirm_is_left_out(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    chain.name_forward("bobby", ALICE.address)  # bobby.eth points at someone else
    chain.name_reverse(BOB, "bobby.eth")
    shown, claims = await display_name(named(clock, rpc, chain), BOB)
    assert shown == BOB.address and "ens_name" not in claims


async def test_a_name_not_in_normalised_form_is_left_out(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    chain.name_reverse(CAROL, "Carol.eth")  # upper case: not what ENS would resolve
    shown, claims = await display_name(named(clock, rpc, chain), CAROL)
    assert shown == CAROL.address and "ens_name" not in claims


async def test_no_record_or_no_node_means_no_name_and_the_login_goes_on(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock, wallet: Any
) -> None:
    shown, claims = await display_name(named(clock, rpc, identity_chain), wallet)
    assert shown == wallet.address and "ens_name" not in claims
    down = RpcClient({CHAIN_ID: f"http://127.0.0.1:{free_port()}"}, timeout=1.0)
    try:
        identity_chain.name_forward("alice", ALICE.address)
        identity_chain.name_reverse(ALICE, "alice.eth")
        auth = make_auth(
            clock,
            chains=[EthereumVerifier(rpc=rpc)],
            identity=IdentitySettings(
                names=NameSettings(rpc=down, chain_id=CHAIN_ID, registry=identity_chain.registry)
            ),
        )
        shown, claims = await display_name(auth, ALICE)
        assert shown == ALICE.address and "ens_name" not in claims
    finally:
        await down.aclose()


async def test_names_are_cached_for_their_time(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    chain.name_forward("alice", ALICE.address)
    chain.name_reverse(ALICE, "alice.eth")
    auth = named(clock, rpc, chain, cache_ttl=300)
    assert (await display_name(auth, ALICE))[0] == "alice.eth"
    chain.name_reverse(ALICE, "alice2.eth")  # unconfirmed: once looked up again, no name
    clock.advance(100)
    assert (await display_name(auth, ALICE))[0] == "alice.eth"
    clock.advance(201)
    assert (await display_name(auth, ALICE))[0] == ALICE.address
    chain.name_reverse(ALICE, "alice.eth")


async def test_name_settings_are_checked(rpc: RpcClient, clock: FakeClock) -> None:
    assert NameSettings().registry == ENS_REGISTRY
    with pytest.raises(ValueError, match="registry"):
        NameSettings(registry="0x12")
    with pytest.raises(ValueError, match="no URL for"):
        make_auth(
            clock,
            chains=[EthereumVerifier(rpc=rpc)],
            identity=IdentitySettings(names=NameSettings()),
        )
    with pytest.raises(ValueError, match="rpc=RpcClient"):
        make_auth(clock, identity=IdentitySettings(names=NameSettings()))
