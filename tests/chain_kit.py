"""Put the mock wallets on a real anvil chain with raw signed transactions, and sign as them.

Everything is deterministic: fixed keys, and a fresh chain gives every contract the same address
(a deployer's address and nonce fix it), so a restarted node is set up again identically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from asgi_wallet_auth.chains.erc6492 import MAGIC_SUFFIX
from tests.conftest import OTHER_KEY, WALLET_KEY

OWNER: LocalAccount = Account.from_key(WALLET_KEY)
STRANGER: LocalAccount = Account.from_key(OTHER_KEY)
#: Pays for the deployments; funded with anvil's own ``anvil_setBalance``.
DEPLOYER: LocalAccount = Account.from_key("0x" + "d3" * 32)
#: An EOA that delegates to ``TypedKeyDelegate`` with EIP-7702.
DELEGATOR: LocalAccount = Account.from_key("0x" + "7702" * 16)
COUNTERFACTUAL_SALT = b"\x01" * 32
PREDEPLOYED_SALT = b"\x02" * 32


def rpc(client: httpx.Client, url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call; its result (the test fails on an error)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    reply = client.post(url, json=body, timeout=10).json()
    assert "error" not in reply, reply["error"]
    return reply["result"]


def hex_of(data: bytes) -> str:
    return "0x" + data.hex()


def sign(account: LocalAccount, message: bytes) -> bytes:
    """An EIP-191 ``personal_sign`` signature, 65 bytes with v in {27, 28}."""
    return bytes(account.sign_message(encode_defunct(primitive=message)).signature)


def call_data(signature: str, types: list[str], values: list[Any]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def wrap_6492(factory: str, factory_call: bytes, signature: bytes) -> bytes:
    """ERC-6492's wrapper: ``abi.encode(factory, calldata, signature) ++ magic``."""
    return encode(["address", "bytes", "bytes"], [factory, factory_call, signature]) + MAGIC_SUFFIX


@dataclass(frozen=True)
class Wallets:
    """Where the deployment put each kind of account."""

    factory: str
    #: An OwnedWallet of OWNER, deployed.
    deployed: str
    #: The OwnedWallet of OWNER that the factory would put at COUNTERFACTUAL_SALT: no code.
    counterfactual: str
    #: The OwnedWallet of OWNER at PREDEPLOYED_SALT, deployed through the factory.
    predeployed: str
    #: A contract with no isValidSignature.
    counter: str
    #: TypedKeyDelegate, the code DELEGATOR points at.
    delegate: str

    def deploy_call(self, salt: bytes, owner: str = OWNER.address) -> bytes:
        """The factory calldata that deploys OWNER's wallet at ``salt``."""
        return call_data("deploy(address,bytes32)", ["address", "bytes32"], [owner, salt])


class Deployer:
    """Sends DEPLOYER's raw signed transactions to one node; anvil mines each at once."""

    def __init__(self, url: str, chain_id: int) -> None:
        self.url = url
        self.chain_id = chain_id
        # One client for every call: building one costs tens of milliseconds (TLS setup).
        self.client = httpx.Client(verify=False)  # noqa: S501 - plain http

    def rpc(self, method: str, params: list[Any]) -> Any:
        return rpc(self.client, self.url, method, params)

    def __enter__(self) -> Deployer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def transact(self, **fields: Any) -> dict[str, Any]:
        nonce = int(self.rpc("eth_getTransactionCount", [DEPLOYER.address, "pending"]), 16)
        tx = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "gas": 3_000_000,
            "value": 0,
            **fields,
        }
        signed = Account.sign_transaction(tx, DEPLOYER.key)
        tx_hash = self.rpc("eth_sendRawTransaction", [hex_of(bytes(signed.raw_transaction))])
        deadline = time.monotonic() + 10
        while True:  # anvil mines each transaction at once, but answers before it has
            receipt: dict[str, Any] | None = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        assert receipt is not None and receipt["status"] == "0x1", receipt
        return receipt

    def create(self, code: bytes, args: bytes = b"") -> str:
        receipt = self.transact(data=code + args)
        return to_checksum_address(receipt["contractAddress"])

    def code_at(self, address: str) -> bytes:
        return bytes.fromhex(self.rpc("eth_getCode", [address, "latest"])[2:])

    def setup(self, contracts: dict[str, bytes]) -> Wallets:
        """Deploy every mock and delegate DELEGATOR with a type-4 (EIP-7702) transaction."""
        self.rpc("anvil_setBalance", [DEPLOYER.address, hex(10**21)])
        owner_arg = encode(["address"], [OWNER.address])
        deployed = self.create(contracts["OwnedWallet"], owner_arg)
        factory = self.create(contracts["WalletFactory"])
        counter = self.create(contracts["Counter"])
        delegate = self.create(contracts["TypedKeyDelegate"])
        wallets = Wallets(
            factory=factory,
            deployed=deployed,
            counterfactual=self.predict(factory, COUNTERFACTUAL_SALT),
            predeployed=self.predict(factory, PREDEPLOYED_SALT),
            counter=counter,
            delegate=delegate,
        )
        self.transact(to=factory, data=wallets.deploy_call(PREDEPLOYED_SALT))
        authorization = Account.sign_authorization(
            {"chainId": self.chain_id, "address": delegate, "nonce": 0}, DELEGATOR.key
        )
        # Sent to a plain address: the authorization list, not the call, is what matters.
        self.transact(to=DEPLOYER.address, data=b"", authorizationList=[authorization])
        # The setup is what the tests believe it is.
        assert self.code_at(wallets.counterfactual) == b""
        assert self.code_at(wallets.predeployed) != b""
        assert self.code_at(DELEGATOR.address) == b"\xef\x01\x00" + bytes.fromhex(delegate[2:])
        return wallets

    def predict(self, factory: str, salt: bytes) -> str:
        data = call_data("predict(address,bytes32)", ["address", "bytes32"], [OWNER.address, salt])
        result = self.rpc("eth_call", [{"to": factory, "data": hex_of(data)}, "latest"])
        return to_checksum_address("0x" + result[-40:])


def deploy(url: str, chain_id: int, contracts: dict[str, bytes]) -> Wallets:
    """Set a fresh chain up (``Deployer.setup``)."""
    with Deployer(url, chain_id) as deployer:
        return deployer.setup(contracts)


def code_at(url: str, address: str) -> bytes:
    """The code at ``address`` on the node at ``url``."""
    with Deployer(url, 0) as deployer:
        return deployer.code_at(address)
