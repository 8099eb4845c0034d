"""The Ethereum verifier's configuration and signature grammar with and without an RPC client.

No node is needed: parsing never does I/O, and an EOA's signature is settled by recovery alone.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from asgi_wallet_auth.chains.erc6492 import MAGIC_SUFFIX, is_wrapped, validator_call_data
from asgi_wallet_auth.chains.ethereum import (
    EOA_SIGNATURE_LENGTH,
    EthereumSignature,
    EthereumVerifier,
)
from asgi_wallet_auth.errors import InvalidSignatureFormat, SignatureMismatch, WalletAuthError
from asgi_wallet_auth.rpc import ChainUnavailable, RpcClient
from asgi_wallet_auth.signatures import SECP256K1_N, Signature, parse_signature
from tests.conftest import OTHER_KEY, WALLET_KEY

WALLET = Account.from_key(WALLET_KEY)
OTHER = Account.from_key(OTHER_KEY)
HALF_N = SECP256K1_N // 2
MESSAGE = b"Sign in to example.com"
#: Nothing listens here; a test that reached it would fail with a 503.
NOWHERE = "http://127.0.0.1:9/"


def signed(message: bytes = MESSAGE, account: Any = WALLET) -> bytes:
    return bytes(account.sign_message(encode_defunct(primitive=message)).signature)


def rsv(r: int, s: int, v: int) -> str:
    return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))).hex()


GOOD = "0x" + signed().hex()
R, S = int(GOOD[2:66], 16), int(GOOD[66:130], 16)


@pytest.fixture
def with_rpc() -> EthereumVerifier:
    # Never opened (parsing does no I/O), so there is no pool to close.
    return EthereumVerifier(rpc=RpcClient({1: NOWHERE}))


# -- without RPC nothing changes ------------------------------------------------------------

ANY_INPUT: list[object] = [
    GOOD,
    GOOD[:-2] + "00",
    rsv(R, S, 0),
    rsv(R, S, 31),
    rsv(R, SECP256K1_N - S, 28),
    rsv(0, S, 27),
    rsv(R, 0, 27),
    "0x",
    "",
    GOOD + "00",
    GOOD[:-1],
    GOOD[2:],
    "0X" + GOOD[2:],
    " " + GOOD,
    "0x" + "\uff11" * 130,
    "0x" + "00" * 33 + MAGIC_SUFFIX.hex(),
    "0x" + "ab" * 200,
    None,
    7,
    GOOD.encode(),
    [GOOD],
]


@pytest.mark.parametrize("value", ANY_INPUT)
def test_without_rpc_parsing_is_exactly_the_eoa_grammar(value: object) -> None:
    verifier = EthereumVerifier()
    try:
        expected: object = parse_signature(value)
    except WalletAuthError as error:
        with pytest.raises(type(error)) as info:
            verifier.parse_signature(value)
        assert (info.value.code, info.value.msg) == (error.code, error.msg)
    else:
        assert verifier.parse_signature(value) == expected
    assert verifier.max_signature_length == EOA_SIGNATURE_LENGTH


async def test_without_rpc_verification_is_recovery_alone() -> None:
    verifier = EthereumVerifier()
    await verifier.verify(MESSAGE, verifier.parse_signature(GOOD), WALLET.address)
    with pytest.raises(SignatureMismatch):
        await verifier.verify(MESSAGE, verifier.parse_signature(GOOD), OTHER.address)
    # A contract-shaped signature handed over by other means cannot pass either.
    with pytest.raises(SignatureMismatch):
        await verifier.verify(MESSAGE, EthereumSignature(b"\x01" * 66, None), WALLET.address)


# -- with RPC: any length, still no malleable twin ------------------------------------------


@pytest.mark.parametrize("v", [0, 1, 27, 28])
def test_with_rpc_an_eoa_signature_keeps_its_bytes_and_its_eoa_form(
    with_rpc: EthereumVerifier, v: int
) -> None:
    value = rsv(R, S, v)
    parsed = with_rpc.parse_signature(value)
    assert parsed == EthereumSignature(bytes.fromhex(value[2:]), Signature(R, S, v % 27))


@pytest.mark.parametrize(
    "value",
    [
        rsv(R, S, 31),  # Safe's eth_sign form
        rsv(R, S, 2),
        rsv(0, S, 27),
        rsv(R, 0, 27),
        rsv(SECP256K1_N, S, 27),
        rsv(R, SECP256K1_N, 27),  # s out of range is no twin of anything
        "0x",  # an approved-hash wallet may sign with nothing
        GOOD + "02",  # 66 bytes: a trailing type byte
        "0x" + "00" * 33 + MAGIC_SUFFIX.hex(),  # 65 bytes ending in the ERC-6492 suffix
        "0x" + "ab" * 200 + MAGIC_SUFFIX.hex(),
        "0x" + "AB" * 16_384,  # the cap exactly, upper case
    ],
)
def test_with_rpc_a_signature_outside_the_eoa_grammar_is_a_contract_signature(
    with_rpc: EthereumVerifier, value: str
) -> None:
    parsed = with_rpc.parse_signature(value)
    assert parsed == EthereumSignature(bytes.fromhex(value[2:]), None)


@pytest.mark.parametrize("v", [0, 1, 27, 28])
def test_with_rpc_the_high_s_twin_of_an_eoa_signature_is_still_refused(
    with_rpc: EthereumVerifier, v: int
) -> None:
    for s in (SECP256K1_N - S, HALF_N + 1, SECP256K1_N - 1):
        with pytest.raises(InvalidSignatureFormat, match="low-s"):
            with_rpc.parse_signature(rsv(R, s, v))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x0",
        GOOD[:-1],
        GOOD[2:],
        "0X" + GOOD[2:],
        " " + GOOD,
        GOOD + "\n",
        "0x" + "zz",
        "0x" + "\u0660" * 2,
        "0x" + "ab" * 16_385,  # one byte over the cap
        None,
        1,
        GOOD.encode(),
        bytearray(b"\x00" * 65),
    ],
)
def test_with_rpc_malformed_signatures_are_still_400(
    with_rpc: EthereumVerifier, value: object
) -> None:
    with pytest.raises(InvalidSignatureFormat) as info:
        with_rpc.parse_signature(value)
    assert (info.value.status, info.value.code) == (400, 40003)
    assert "ab" * 8 not in info.value.msg  # the refusal never echoes the input


async def test_with_rpc_an_eoa_needs_no_node(with_rpc: EthereumVerifier) -> None:
    # The node URL is dead: any request would be a 503, so passing proves none was made.
    await with_rpc.verify(MESSAGE, with_rpc.parse_signature(GOOD), WALLET.address)
    await with_rpc.verify(MESSAGE, parse_signature(GOOD), WALLET.address)  # a bare Signature
    await with_rpc.verify(MESSAGE, with_rpc.parse_signature(GOOD), WALLET.address, chain_id=5)
    assert with_rpc.max_signature_length == 2 + 2 * 16_384


# -- configuration -------------------------------------------------------------------------


async def test_contract_wallet_settings_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="rpc="):
        EthereumVerifier(default_chain_id=1)
    with pytest.raises(ValueError, match="RpcClient"):
        EthereumVerifier(rpc=object())  # type: ignore[arg-type]
    for size in (64, 2**20 + 1, True, 100.0):
        with pytest.raises(ValueError, match="max_signature_bytes"):
            EthereumVerifier(max_signature_bytes=size)  # type: ignore[arg-type]
    async with RpcClient({1: NOWHERE, 10: "http://127.0.0.1:10/"}) as two:
        with pytest.raises(ValueError, match="default_chain_id=1"):
            EthereumVerifier(rpc=two)
        with pytest.raises(ValueError, match="has no RPC URL"):
            EthereumVerifier(rpc=two, default_chain_id=137)
        with pytest.raises(ValueError, match="has no RPC URL"):
            EthereumVerifier(rpc=two, default_chain_id=True)  # type: ignore[arg-type]
        assert EthereumVerifier(rpc=two, default_chain_id=10).default_chain_id == 10
    async with RpcClient({137: NOWHERE}) as one:
        assert EthereumVerifier(rpc=one).default_chain_id == 137


# -- the validator call ----------------------------------------------------------------------


def test_validator_arguments_are_abi_encoded_address_hash_bytes() -> None:
    from eth_abi import decode

    from asgi_wallet_auth.chains.erc6492 import VALIDATOR_CREATION_CODE

    digest = bytes(range(32))
    for signature in (b"", b"\x01", bytes(32), bytes(range(65)), bytes(100)):
        data = validator_call_data(WALLET.address, digest, signature)
        assert data.startswith(VALIDATOR_CREATION_CODE)
        args = data[len(VALIDATOR_CREATION_CODE) :]
        assert len(args) % 32 == 0
        assert decode(["address", "bytes32", "bytes"], args) == (
            WALLET.address.lower(),
            digest,
            signature,
        )


def test_the_erc6492_suffix_is_recognised_only_at_the_end() -> None:
    assert is_wrapped(MAGIC_SUFFIX) and is_wrapped(b"\x00" + MAGIC_SUFFIX)
    assert not is_wrapped(MAGIC_SUFFIX[1:]) and not is_wrapped(MAGIC_SUFFIX + b"\x00")


@pytest.mark.parametrize("chain_id", ["mainnet", True, 1.0])
async def test_a_chain_id_that_is_no_eip155_integer_has_no_node(
    with_rpc: EthereumVerifier, chain_id: object
) -> None:
    contract_signature = with_rpc.parse_signature(GOOD + "02")
    with pytest.raises(ChainUnavailable) as info:
        await with_rpc.verify(MESSAGE, contract_signature, WALLET.address, chain_id=chain_id)  # type: ignore[arg-type]
    assert info.value.msg == "no node is configured for this chain"
    assert info.value.status == 503


def test_the_chain_verifiers_import_no_http_client() -> None:
    # httpx is the rpc extra: only a service that builds an RpcClient needs it.
    code = "import sys, asgi_wallet_auth.chains; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
