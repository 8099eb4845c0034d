"""Contract wallets on a real chain: EIP-1271, ERC-6492 and EIP-7702 accounts against anvil.

The verifier talks to anvil through a counting relay (tests/rpc_server.py), so each test also
checks what a login cost: no request at all for an EOA, one ``eth_call`` for a contract wallet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth.chains.ethereum import EthereumVerifier
from asgi_wallet_auth.errors import SignatureMismatch
from asgi_wallet_auth.rpc import ChainUnavailable, RpcClient
from tests.anvil_node import CHAIN_ID, AnvilNode
from tests.chain_kit import (
    COUNTERFACTUAL_SALT,
    DELEGATOR,
    OWNER,
    PREDEPLOYED_SALT,
    STRANGER,
    Wallets,
    code_at,
    deploy,
    sign,
    wrap_6492,
)
from tests.rpc_server import FakeNode, Reply, chain, forward, result, running

MESSAGE = b"example.com wants you to sign in with your Ethereum account:\nnonce 0123456789abcdef"


@pytest.fixture
def relay(anvil: AnvilNode) -> Iterator[FakeNode]:
    yield from running(forward(anvil.url))


@pytest.fixture
async def verifier(relay: FakeNode) -> AsyncIterator[EthereumVerifier]:
    async with RpcClient({CHAIN_ID: relay.url}, timeout=5.0) as rpc:
        yield EthereumVerifier(rpc=rpc)


async def check(verifier: EthereumVerifier, signature: bytes, address: str) -> None:
    await verifier.verify(
        MESSAGE, verifier.parse_signature("0x" + signature.hex()), address, chain_id=CHAIN_ID
    )


# Each kind of account: its address and how a key (its owner's, or a stranger's) signs for it.
KINDS: dict[str, Callable[[Wallets, LocalAccount], tuple[str, bytes]]] = {
    "deployed EIP-1271 wallet": lambda w, key: (w.deployed, sign(key, MESSAGE)),
    "counterfactual ERC-6492 wallet": lambda w, key: (
        w.counterfactual,
        wrap_6492(w.factory, w.deploy_call(COUNTERFACTUAL_SALT), sign(key, MESSAGE)),
    ),
    "ERC-6492 wrapper of a deployed wallet": lambda w, key: (
        w.predeployed,
        wrap_6492(w.factory, w.deploy_call(PREDEPLOYED_SALT), sign(key, MESSAGE)),
    ),
    # The delegated account's owner is its own key, behind the delegate's key-type byte.
    "EIP-7702 delegated EOA": lambda w, key: (
        DELEGATOR.address,
        b"\x01" + sign(DELEGATOR if key is OWNER else key, MESSAGE),
    ),
}


# -- ordinary wallets: no RPC ----------------------------------------------------------------


@pytest.mark.parametrize("account", [OWNER, DELEGATOR], ids=["EOA", "EIP-7702 EOA, own key"])
async def test_an_eoa_signs_in_without_a_single_rpc_request(
    verifier: EthereumVerifier, relay: FakeNode, wallets: Wallets, account: LocalAccount
) -> None:
    signature = sign(account, MESSAGE)
    await check(verifier, signature, account.address)
    # The v = 0/1 encoding is the same EOA signature.
    await check(verifier, signature[:64] + bytes((signature[64] - 27,)), account.address)
    assert relay.requests == []
    # The counter works: a contract wallet through the same relay is counted.
    await check(verifier, sign(OWNER, MESSAGE), wallets.deployed)
    assert relay.methods() == ["eth_chainId", "eth_call"]


# -- contract wallets ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_of_contract_wallet_signs_in_with_one_eth_call(
    verifier: EthereumVerifier, relay: FakeNode, wallets: Wallets, kind: str
) -> None:
    address, signature = KINDS[kind](wallets, OWNER)
    await check(verifier, signature, address)
    await check(verifier, signature, address)
    # The chain is checked once per node; each login costs exactly one eth_call.
    assert relay.methods() == ["eth_chainId", "eth_call", "eth_call"]
    # Logins that name no chain (raw secret, Web3MQ) use the default chain: anvil's.
    await verifier.verify(MESSAGE, verifier.parse_signature("0x" + signature.hex()), address)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_of_contract_wallet_refuses_another_key(
    verifier: EthereumVerifier, wallets: Wallets, kind: str
) -> None:
    address, signature = KINDS[kind](wallets, STRANGER)
    with pytest.raises(SignatureMismatch) as info:
        await check(verifier, signature, address)
    assert (info.value.status, info.value.code) == (401, 40101)


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_contract_wallet_signature_over_another_message_is_refused(
    verifier: EthereumVerifier, wallets: Wallets, kind: str
) -> None:
    address, signature = KINDS[kind](wallets, OWNER)
    with pytest.raises(SignatureMismatch):
        await verifier.verify(
            MESSAGE + b"!", verifier.parse_signature("0x" + signature.hex()), address
        )


async def test_a_counterfactual_signature_leaves_the_wallet_undeployed(
    verifier: EthereumVerifier, anvil: AnvilNode, wallets: Wallets
) -> None:
    address, signature = KINDS["counterfactual ERC-6492 wallet"](wallets, OWNER)
    await check(verifier, signature, address)
    assert code_at(anvil.url, address) == b""  # eth_call changed nothing


async def test_a_contract_that_is_not_a_wallet_is_refused(
    verifier: EthereumVerifier, wallets: Wallets
) -> None:
    with pytest.raises(SignatureMismatch):
        await check(verifier, sign(OWNER, MESSAGE), wallets.counter)


async def test_an_erc6492_wrapper_whose_factory_call_fails_is_refused(
    verifier: EthereumVerifier, wallets: Wallets
) -> None:
    broken = wrap_6492(wallets.factory, b"\xde\xad\xbe\xef", sign(OWNER, MESSAGE))
    with pytest.raises(SignatureMismatch):
        await check(verifier, broken, wallets.counterfactual)


async def test_an_erc6492_wrapper_that_deploys_another_wallet_is_refused(
    verifier: EthereumVerifier, wallets: Wallets
) -> None:
    # The factory call deploys the wallet at COUNTERFACTUAL_SALT, not the claimed address.
    _, signature = KINDS["counterfactual ERC-6492 wallet"](wallets, OWNER)
    with pytest.raises(SignatureMismatch):
        await check(verifier, signature, STRANGER.address)


async def test_an_eoa_signature_claimed_for_another_eoa_is_refused_after_one_call(
    verifier: EthereumVerifier, relay: FakeNode
) -> None:
    with pytest.raises(SignatureMismatch):
        await check(verifier, sign(OWNER, MESSAGE), STRANGER.address)
    assert relay.methods() == ["eth_chainId", "eth_call"]


# -- the node fails --------------------------------------------------------------------------


async def test_a_chain_without_a_node_is_503_for_contracts_and_fine_for_eoas(
    verifier: EthereumVerifier, relay: FakeNode, wallets: Wallets
) -> None:
    address, signature = KINDS["deployed EIP-1271 wallet"](wallets, OWNER)
    with pytest.raises(ChainUnavailable) as info:
        await verifier.verify(
            MESSAGE, verifier.parse_signature("0x" + signature.hex()), address, chain_id=1
        )
    assert info.value.status == 503
    await verifier.verify(
        MESSAGE, verifier.parse_signature("0x" + signature.hex()), OWNER.address, chain_id=1
    )
    assert relay.requests == []


async def test_a_node_of_another_chain_is_503(anvil: AnvilNode, wallets: Wallets) -> None:
    address, signature = KINDS["deployed EIP-1271 wallet"](wallets, OWNER)
    async with RpcClient({1: anvil.url}) as rpc:  # anvil is chain 31337
        verifier = EthereumVerifier(rpc=rpc)
        with pytest.raises(ChainUnavailable):
            await check_on(verifier, signature, address, 1)
        await check_on(verifier, sign(OWNER, MESSAGE), OWNER.address, 1)  # EOAs unaffected


async def check_on(verifier: EthereumVerifier, signature: bytes, address: str, chain: int) -> None:
    await verifier.verify(
        MESSAGE, verifier.parse_signature("0x" + signature.hex()), address, chain_id=chain
    )


BROKEN_NODES: dict[str, Callable[[dict[str, object]], Reply]] = {
    "reply not JSON": lambda r: Reply(b"<html>502 Bad Gateway</html>"),
    "reply too large": lambda r: result(r, "0x" + "01" * 70_000),
    "reply too slow": lambda r: Reply(hold=True),
    "validator answer of 32 bytes": lambda r: result(r, "0x" + "00" * 31 + "01"),
    "empty validator answer": lambda r: result(r, "0x"),
}


@pytest.mark.parametrize("fault", list(BROKEN_NODES))
async def test_a_broken_node_is_503_never_valid_nor_401(fault: str) -> None:
    # No anvil needed: any address the key does not recover to goes to the node.
    address, signature = STRANGER.address, sign(OWNER, MESSAGE)
    for node in running(chain(CHAIN_ID, BROKEN_NODES[fault])):
        async with RpcClient({CHAIN_ID: node.url}, timeout=0.5) as rpc:
            with pytest.raises(ChainUnavailable):
                await check(EthereumVerifier(rpc=rpc), signature, address)
        assert node.methods() == ["eth_chainId", "eth_call"]


async def test_a_node_stopped_mid_run_is_503_then_recovers_after_restart(
    contracts: dict[str, bytes],
) -> None:
    node = AnvilNode()
    node.start()
    try:
        wallets = deploy(node.url, CHAIN_ID, contracts)
        address, signature = KINDS["counterfactual ERC-6492 wallet"](wallets, OWNER)
        async with RpcClient({CHAIN_ID: node.url}, timeout=2.0) as rpc:
            verifier = EthereumVerifier(rpc=rpc)
            await check(verifier, signature, address)
            node.stop()
            with pytest.raises(ChainUnavailable):
                await check(verifier, signature, address)
            await check(verifier, sign(OWNER, MESSAGE), OWNER.address)  # EOAs still sign in
            node.start()  # same port; a fresh chain, set up again to the same addresses
            assert deploy(node.url, CHAIN_ID, contracts) == wallets
            await check(verifier, signature, address)
    finally:
        node.stop()
