"""Contract-wallet verification against a local anvil node, and the EOA path with RPC configured.

    python benchmarks/contract_wallets.py [--rounds 7] [--number 300]

Needs anvil and solc from tests/js/chain (scripts/ci-chain.sh). Two kinds of figure, each a
median of same-run ratios (interleaved rounds, as in benchmarks/run.py):

- each contract wallet's ``EthereumVerifier.verify`` against one bare ``eth_call`` round trip
  of the same node with the same data (httpx on a kept-alive connection, the reply parsed and
  nothing else): what the verifier adds to the one call it needs (target: at most 1.2x);
- the EOA path, with and without an RPC client configured, against the coincurve floor: an
  ordinary wallet must cost what it cost before contract wallets existed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from run import LOOP, Row, compare, recovery_candidates

from asgi_wallet_auth.chains.erc6492 import validator_call_data
from asgi_wallet_auth.chains.ethereum import EthereumVerifier
from asgi_wallet_auth.rpc import RpcClient
from asgi_wallet_auth.signatures import eip191_digest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test setup: anvil, the mock wallets and their deployment

from tests.anvil_node import CHAIN_ID, AnvilNode, compile_contracts  # noqa: E402
from tests.chain_kit import (  # noqa: E402
    COUNTERFACTUAL_SALT,
    DELEGATOR,
    OWNER,
    Wallets,
    deploy,
    sign,
    wrap_6492,
)

MESSAGE = b"c0ffee" * 7  # a secret-sized message, as in benchmarks/run.py


def kinds(wallets: Wallets) -> dict[str, tuple[str, bytes]]:
    return {
        "EIP-1271 deployed": (wallets.deployed, sign(OWNER, MESSAGE)),
        "ERC-6492 counterfactual": (
            wallets.counterfactual,
            wrap_6492(
                wallets.factory, wallets.deploy_call(COUNTERFACTUAL_SALT), sign(OWNER, MESSAGE)
            ),
        ),
        "EIP-7702 delegated": (DELEGATOR.address, b"\x01" + sign(DELEGATOR, MESSAGE)),
    }


def contract_candidates(
    url: str, verifier: EthereumVerifier, bare: httpx.AsyncClient, address: str, signature: bytes
) -> dict[str, Callable[[], Any]]:
    data = validator_call_data(address, eip191_digest(MESSAGE), signature)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_call",
        "params": [{"data": "0x" + data.hex()}, "latest"],
    }
    text = "0x" + signature.hex()

    async def bare_call() -> None:
        reply = (await bare.post(url, json=body)).json()
        assert reply["result"] == "0x01"

    async def verify() -> None:
        await verifier.verify(MESSAGE, verifier.parse_signature(text), address)

    return {"bare eth_call, same data": bare_call, "EthereumVerifier parse + verify": verify}


def eoa_candidates(
    plain: EthereumVerifier, with_rpc: EthereumVerifier
) -> dict[str, Callable[[], Any]]:
    text = "0x" + sign(OWNER, MESSAGE).hex()
    candidates = recovery_candidates()

    async def verify(verifier: EthereumVerifier) -> None:
        await verifier.verify(MESSAGE, verifier.parse_signature(text), OWNER.address)

    async def without_rpc() -> None:
        await verify(plain)

    async def with_rpc_configured() -> None:
        await verify(with_rpc)

    return {
        "coincurve floor": candidates["coincurve floor"],
        "recover_address": candidates["asgi-wallet-auth recover_address"],
        "EthereumVerifier parse + verify, no RPC": without_rpc,
        "EthereumVerifier parse + verify, RPC configured": with_rpc_configured,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=300, help="calls per round and candidate")
    args = parser.parse_args()
    try:
        contracts = compile_contracts()
        node = AnvilNode()
    except BaseException as exc:  # the test helpers skip where anvil or solc is missing
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    node.start()
    rows: list[Row] = []
    try:
        wallets = deploy(node.url, CHAIN_ID, contracts)
        rpc = RpcClient({CHAIN_ID: node.url})
        bare = httpx.AsyncClient()
        verifier = EthereumVerifier(rpc=rpc)
        LOOP.run_until_complete(rpc.check())
        for kind, (address, signature) in kinds(wallets).items():
            candidates = contract_candidates(node.url, verifier, bare, address, signature)
            rows += compare(kind, candidates, "bare eth_call, same data", args.number, args.rounds)
        eoa = eoa_candidates(EthereumVerifier(), verifier)
        rows += compare("EOA", eoa, "coincurve floor", args.number * 20, args.rounds)
        LOOP.run_until_complete(rpc.aclose())
        LOOP.run_until_complete(bare.aclose())
    finally:
        node.stop()
    print("| group | candidate | median us | ratio | anchor |")
    print("|---|---|---:|---:|---|")
    for row in rows:
        print(
            f"| {row.group} | {row.name} | {row.median_us:.1f} | {row.ratio:.2f}x | {row.anchor} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
