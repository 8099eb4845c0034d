"""Gates on chain state against the real anvil node: token contracts deployed there, scopes in
the token and ``request.auth``, balance changes after the cache time, and every failure closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import EthereumVerifier, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.gates import (
    CustomRule,
    Erc20Balance,
    Erc721Owner,
    Erc1155Balance,
    GateSettings,
    merge_scopes,
)
from asgi_wallet_auth.identity import IdentitySettings
from asgi_wallet_auth.rpc import RpcClient
from tests.anvil_node import CHAIN_ID, free_port
from tests.conftest import FakeClock, client_for
from tests.helpers import login, make_auth
from tests.identity_chain import ALICE, BOB, CAROL, IdentityChain
from tests.rpc_server import FakeNode, Reply

pytestmark = pytest.mark.usefixtures("identity_chain")


def app_for(auth: WalletAuth) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"scopes": list(request.auth.scopes)})

    @requires("holder")
    async def vault(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/me", me), Route("/vault", vault), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


@pytest.fixture
async def rpc(anvil: Any) -> AsyncIterator[RpcClient]:
    client = RpcClient({CHAIN_ID: anvil.url})
    yield client
    await client.aclose()


def gated(clock: FakeClock, rpc: RpcClient, *rules: Any, **settings: Any) -> WalletAuth:
    return make_auth(
        clock,
        chains=[EthereumVerifier(rpc=rpc)],
        identity=IdentitySettings(gates=GateSettings(rules, **settings)),
        revocation=True,
    )


async def scopes_of(client: httpx.AsyncClient, token: str) -> list[str]:
    response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    scopes: list[str] = response.json()["scopes"]
    return scopes


async def refresh(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/auth/refresh", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_each_kind_of_holding_grants_its_scope_and_a_stranger_gets_none(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    erc20, erc721, erc1155 = (chain.deploy(n) for n in ("MockERC20", "MockERC721", "MockERC1155"))
    chain.send(ALICE, erc20, "mint(address,uint256)", ALICE.address, 1000)
    chain.send(ALICE, erc721, "mint(address,uint256)", ALICE.address, 7)
    chain.send(ALICE, erc1155, "mint(address,uint256,uint256)", ALICE.address, 3, 2)
    chain.send(BOB, erc20, "mint(address,uint256)", BOB.address, 499)  # one short
    chain.send(BOB, erc1155, "mint(address,uint256,uint256)", BOB.address, 3, 1)
    auth = gated(
        clock,
        rpc,
        Erc20Balance("holder", erc20, 500, chain_id=CHAIN_ID),
        Erc721Owner("collector", erc721, chain_id=CHAIN_ID),
        Erc721Owner("token7", erc721, token_id=7, chain_id=CHAIN_ID),
        Erc721Owner("token8", erc721, token_id=8, chain_id=CHAIN_ID),  # nobody owns it: reverts
        Erc1155Balance("ticket", erc1155, token_id=3, minimum=2, chain_id=CHAIN_ID),
    )
    async with client_for(app_for(auth)) as client:
        alice = await login(client, ALICE, "/auth")
        bob = await login(client, BOB, "/auth")
        assert await scopes_of(client, alice["access_token"]) == [
            "authenticated",
            "collector",
            "holder",
            "ticket",
            "token7",
        ]
        assert await scopes_of(client, bob["access_token"]) == ["authenticated"]
        # Starlette's @requires reads the same scopes.
        ok = await client.get(
            "/vault", headers={"authorization": f"Bearer {alice['access_token']}"}
        )
        no = await client.get("/vault", headers={"authorization": f"Bearer {bob['access_token']}"})
    assert ok.status_code == 200 and no.status_code == 403
    claims = auth.authenticate_token(alice["access_token"]).claims
    assert claims["scope"] == "collector holder ticket token7"
    assert "scope" not in auth.authenticate_token(bob["access_token"]).claims


async def test_a_balance_change_shows_at_refresh_once_the_cache_time_has_passed(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    token = chain.deploy("MockERC20")
    auth = gated(clock, rpc, Erc20Balance("holder", token, 10, chain_id=CHAIN_ID), cache_ttl=60)
    async with client_for(app_for(auth)) as client:
        data = await login(client, CAROL, "/auth")
        assert await scopes_of(client, data["access_token"]) == ["authenticated"]
        chain.send(CAROL, token, "mint(address,uint256)", CAROL.address, 10)
        clock.advance(30)  # within the cache time: the old answer stands
        data = await refresh(client, data["access_token"])
        assert await scopes_of(client, data["access_token"]) == ["authenticated"]
        clock.advance(31)
        data = await refresh(client, data["access_token"])
        assert await scopes_of(client, data["access_token"]) == ["authenticated", "holder"]
        chain.send(CAROL, token, "transfer(address,uint256)", BOB.address, 10)  # sold
        clock.advance(61)
        data = await refresh(client, data["access_token"])
        assert await scopes_of(client, data["access_token"]) == ["authenticated"]


async def test_an_unreachable_node_grants_no_scope_and_the_login_goes_on(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    token = chain.deploy("MockERC20")
    chain.send(ALICE, token, "mint(address,uint256)", ALICE.address, 5)
    down = RpcClient({CHAIN_ID: f"http://127.0.0.1:{free_port()}"}, timeout=1.0)
    rule = Erc20Balance("holder", token, 1, chain_id=CHAIN_ID)
    # The verifier keeps the working node: only the gates read through the dead one.
    auth = make_auth(
        clock,
        chains=[EthereumVerifier(rpc=rpc)],
        identity=IdentitySettings(gates=GateSettings([rule], rpc=down)),
    )
    try:
        async with client_for(app_for(auth)) as client:
            data = await login(client, ALICE, "/auth")
            assert await scopes_of(client, data["access_token"]) == ["authenticated"]
            # The same rule through the working node grants it.
            up = make_auth(
                clock,
                chains=[EthereumVerifier(rpc=rpc)],
                identity=IdentitySettings(gates=GateSettings([rule])),
            )
        async with client_for(app_for(up)) as client:
            data = await login(client, ALICE, "/auth")
            assert await scopes_of(client, data["access_token"]) == ["authenticated", "holder"]
    finally:
        await down.aclose()


async def test_a_slow_or_lying_node_grants_no_scope(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock
) -> None:
    chain = identity_chain
    token = chain.deploy("MockERC20")
    chain.send(ALICE, token, "mint(address,uint256)", ALICE.address, 5)
    rule = Erc20Balance("holder", token, 1, chain_id=CHAIN_ID)

    def held(request: dict[str, Any]) -> Reply:
        if request["method"] == "eth_chainId":
            return Reply(
                f'{{"jsonrpc":"2.0","id":{request["id"]},"result":"{hex(CHAIN_ID)}"}}'.encode()
            )
        return Reply(hold=True)

    def short(request: dict[str, Any]) -> Reply:  # answers a balance of 31 bytes
        value = hex(CHAIN_ID) if request["method"] == "eth_chainId" else "0x" + "ff" * 31
        return Reply(f'{{"jsonrpc":"2.0","id":{request["id"]},"result":"{value}"}}'.encode())

    for script, timeout in ((held, 0.3), (short, 5.0)):
        with FakeNode(script) as node:
            bad = RpcClient({CHAIN_ID: node.url}, timeout=5.0)
            auth = make_auth(
                clock,
                chains=[EthereumVerifier(rpc=rpc)],
                identity=IdentitySettings(gates=GateSettings([rule], rpc=bad, timeout=timeout)),
            )
            try:
                async with client_for(app_for(auth)) as client:
                    data = await login(client, ALICE, "/auth")
                    assert await scopes_of(client, data["access_token"]) == ["authenticated"]
            finally:
                await bad.aclose()


async def test_a_custom_rule_grants_only_on_exactly_true(clock: FakeClock, rpc: RpcClient) -> None:
    async def staff(address: str, rpc: RpcClient | None) -> bool:
        return address == ALICE.address

    async def truthy(address: str, rpc: RpcClient | None) -> Any:
        return 1  # not True: refused

    async def broken(address: str, rpc: RpcClient | None) -> bool:
        raise RuntimeError("the allow-list service is down")

    auth = gated(
        clock,
        rpc,
        CustomRule("staff", staff),
        CustomRule("truthy", truthy),
        CustomRule("broken", broken),
    )
    async with client_for(app_for(auth)) as client:
        alice = await login(client, ALICE, "/auth")
        bob = await login(client, BOB, "/auth")
        assert await scopes_of(client, alice["access_token"]) == ["authenticated", "staff"]
        assert await scopes_of(client, bob["access_token"]) == ["authenticated"]


async def test_a_hooks_scopes_are_kept_beside_the_gates(
    identity_chain: IdentityChain, rpc: RpcClient, clock: FakeClock, wallet: LocalAccount
) -> None:
    async def on_login(request: Request, user: Any) -> dict[str, Any]:
        return {"scope": "staff holder"}  # a hook may not grant a gate's scope itself

    token = identity_chain.deploy("MockERC20")
    auth = make_auth(
        clock,
        chains=[EthereumVerifier(rpc=rpc)],
        identity=IdentitySettings(
            gates=GateSettings([Erc20Balance("holder", token, 1, chain_id=CHAIN_ID)])
        ),
        on_login=on_login,
    )
    async with client_for(app_for(auth)) as client:
        data = await login(client, wallet, "/auth")
        assert await scopes_of(client, data["access_token"]) == ["authenticated", "staff"]


def test_scopes_merge_keeping_what_no_gate_owns() -> None:
    gates = frozenset({"holder", "ticket"})
    assert merge_scopes("staff holder", gates, frozenset({"ticket"})) == "staff ticket"
    assert merge_scopes(None, gates, frozenset()) is None
    assert merge_scopes(7, gates, frozenset({"holder"})) == "holder"


async def test_gates_are_checked_at_construction(rpc: RpcClient, clock: FakeClock) -> None:
    token = "0x" + "11" * 20
    with pytest.raises(ValueError, match="no URL for"):
        gated(clock, rpc, Erc20Balance("holder", token, 1, chain_id=1))
    with pytest.raises(ValueError, match="rpc=RpcClient"):
        make_auth(clock, identity=IdentitySettings(gates=GateSettings([Erc721Owner("x", token)])))
    for bad in ("two words", "authenticated", 'quo"te', ""):
        with pytest.raises(ValueError, match="scope token"):
            Erc20Balance(bad, token, 1)
    with pytest.raises(ValueError, match="minimum"):
        Erc20Balance("holder", token, 0)
    with pytest.raises(ValueError, match="contract"):
        Erc721Owner("holder", "0x123")
    with pytest.raises(ValueError, match="non-empty list"):
        GateSettings([])
    # A custom rule alone needs no node.
    make_auth(clock, identity=IdentitySettings(gates=GateSettings([CustomRule("a", _never)])))


async def _never(address: str, rpc: RpcClient | None) -> bool:
    return False
