"""Tokens and a small ENS on the real anvil node, for the gate and primary-name tests.

Deployed by a deployer of their own (a fixed key), so they never disturb the contract-wallet
tests' addresses; the wallets that hold tokens and names are fixed keys too, and pay their own
gas (funded with anvil's ``anvil_setBalance``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from tests.chain_kit import call_data, hex_of, rpc

IDENTITY_DEPLOYER: LocalAccount = Account.from_key("0x" + "1d" * 32)
ALICE: LocalAccount = Account.from_key("0x" + "a1" * 32)
BOB: LocalAccount = Account.from_key("0x" + "b0" * 32)
CAROL: LocalAccount = Account.from_key("0x" + "c4" * 32)


def namehash(name: str) -> bytes:
    """EIP-137's namehash, written here apart from the module under test."""
    node = b"\0" * 32
    for label in reversed(name.split(".")) if name else []:
        node = keccak(node + keccak(text=label))
    return node


class Sender:
    """Raw signed transactions of one account to one node; anvil mines each at once."""

    def __init__(self, url: str, chain_id: int, account: LocalAccount) -> None:
        self.url, self.chain_id, self.account = url, chain_id, account
        self.client = httpx.Client(verify=False)  # noqa: S501 - plain http on loopback

    def close(self) -> None:
        self.client.close()

    def rpc(self, method: str, params: list[Any]) -> Any:
        return rpc(self.client, self.url, method, params)

    def transact(self, to: str | None, data: bytes) -> dict[str, Any]:
        address = self.account.address
        nonce = int(self.rpc("eth_getTransactionCount", [address, "pending"]), 16)
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "gas": 3_000_000,
            "value": 0,
            "data": data,
        }
        if to is not None:
            tx["to"] = to
        signed = Account.sign_transaction(tx, self.account.key)
        tx_hash = self.rpc("eth_sendRawTransaction", [hex_of(bytes(signed.raw_transaction))])
        deadline = time.monotonic() + 10
        while True:  # bounded: anvil mines at once but may answer before it has
            receipt: dict[str, Any] | None = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        assert receipt is not None and receipt["status"] == "0x1", receipt
        return receipt

    def call(self, to: str, signature: str, types: list[str], values: list[Any]) -> None:
        self.transact(to, call_data(signature, types, values))

    def create(self, code: bytes, args: bytes = b"") -> str:
        receipt = self.transact(None, code + args)
        return to_checksum_address(receipt["contractAddress"])


@dataclass(frozen=True)
class IdentityChain:
    """Where the identity mocks are, and how to act on them."""

    url: str
    chain_id: int
    erc20: str
    erc721: str
    erc1155: str
    registry: str
    resolver: str
    reverse: str
    contracts: dict[str, bytes]

    def deploy(self, name: str) -> str:
        """A fresh instance of the mock ``name`` (a test's own token: no shared balances)."""
        sender = Sender(self.url, self.chain_id, IDENTITY_DEPLOYER)
        try:
            return sender.create(self.contracts[name])
        finally:
            sender.close()

    def send(self, account: LocalAccount, to: str, signature: str, *args: Any) -> None:
        """One transaction of ``account``: ``signature`` called on ``to`` with ``args``."""
        types = signature[signature.index("(") + 1 : -1].split(",") if "()" not in signature else []
        sender = Sender(self.url, self.chain_id, account)
        try:
            sender.call(to, signature, types, list(args))
        finally:
            sender.close()

    def name_forward(self, label: str, address: str) -> None:
        """``<label>.eth`` resolves to ``address`` (the deployer owns ``eth``)."""
        self.send(
            IDENTITY_DEPLOYER,
            self.registry,
            "setSubnodeOwner(bytes32,bytes32,address)",
            namehash("eth"),
            keccak(text=label),
            IDENTITY_DEPLOYER.address,
        )
        node = namehash(f"{label}.eth")
        self.send(
            IDENTITY_DEPLOYER, self.registry, "setResolver(bytes32,address)", node, self.resolver
        )
        self.send(IDENTITY_DEPLOYER, self.resolver, "setAddr(bytes32,address)", node, address)

    def name_reverse(self, account: LocalAccount, name: str) -> None:
        """``account`` sets its own reverse record through the reverse registrar."""
        self.send(account, self.reverse, "setName(string)", name)


def deploy_identity(url: str, chain_id: int, contracts: dict[str, bytes]) -> IdentityChain:
    """Deploy the tokens and the ENS mocks; wire ``addr.reverse`` to the reverse registrar."""
    deployer = Sender(url, chain_id, IDENTITY_DEPLOYER)
    try:
        for account in (IDENTITY_DEPLOYER, ALICE, BOB, CAROL):
            deployer.rpc("anvil_setBalance", [account.address, hex(10**21)])
        erc20 = deployer.create(contracts["MockERC20"])
        erc721 = deployer.create(contracts["MockERC721"])
        erc1155 = deployer.create(contracts["MockERC1155"])
        registry = deployer.create(contracts["MockENSRegistry"])
        resolver = deployer.create(contracts["MockResolver"], encode(["address"], [registry]))
        reverse = deployer.create(
            contracts["MockReverseRegistrar"], encode(["address", "address"], [registry, resolver])
        )
        me = IDENTITY_DEPLOYER.address
        sub = "setSubnodeOwner(bytes32,bytes32,address)"
        types = ["bytes32", "bytes32", "address"]
        deployer.call(registry, sub, types, [b"\0" * 32, keccak(text="reverse"), me])
        deployer.call(registry, sub, types, [namehash("reverse"), keccak(text="addr"), reverse])
        deployer.call(registry, sub, types, [b"\0" * 32, keccak(text="eth"), me])
    finally:
        deployer.close()
    return IdentityChain(
        url, chain_id, erc20, erc721, erc1155, registry, resolver, reverse, contracts
    )
