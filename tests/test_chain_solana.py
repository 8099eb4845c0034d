"""The Solana chain verifier: base58, addresses, signatures, ed25519, Ledger envelopes, SIWS."""

from __future__ import annotations

import base64
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_wallet_auth.base58 import ALPHABET, b58decode, b58encode, decode_fixed, max_length
from asgi_wallet_auth.chains import ChainRegistry, ChainVerifier, EthereumVerifier
from asgi_wallet_auth.chains.solana import (
    CAIP2_CHAIN_IDS,
    ENVELOPES,
    SIGNING_DOMAIN,
    SolanaVerifier,
    caip10_account_id,
    offchain_envelopes,
    parse_solana_address,
    parse_solana_signature,
)
from asgi_wallet_auth.errors import (
    InvalidAddress,
    InvalidMessage,
    InvalidSignatureFormat,
    MessageExpired,
    MessageRejected,
    SignatureMismatch,
    WalletAuthError,
)
from tests.conftest import DOMAIN, T0, URI
from tests.solana_support import (
    ADDRESS,
    ISSUED,
    NONCE,
    OTHER,
    OTHER_ADDRESS,
    RFC8032_MESSAGE_2,
    RFC8032_PUBLIC_1,
    RFC8032_PUBLIC_2,
    RFC8032_SIGNATURE_1,
    RFC8032_SIGNATURE_2,
    WALLET,
    sign,
    siws_text,
)

ETH_ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
# Order of the ed25519 group (RFC 8032): adding it to S gives a second, non-canonical S.
ED25519_L = 2**252 + 27742317777372353535851937790883648493
PUBLIC_KEY = bytes(WALLET.verify_key)


def status(error: WalletAuthError) -> tuple[int, int]:
    return error.status, error.code


async def sign_in(
    verifier: SolanaVerifier,
    text: str,
    signature: str,
    *,
    address: str = ADDRESS,
    now: float = T0,
) -> Any:
    """The calls the login route makes, in its order, for a SIWS login."""
    registry = ChainRegistry({"eth": EthereumVerifier(), "sol": verifier})
    chain, canonical = registry.for_address(address)
    parsed = chain.parse_signature(signature)
    chain_id = chain.check_sign_in(
        text, domain=DOMAIN, uri=URI, nonce=NONCE, address=canonical, now=now, skew=60.0
    )
    await chain.verify(text.encode(), parsed, canonical, chain_id=chain_id)
    return chain_id


# -- base58 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, text",
    [
        (b"Hello World!", "2NEpo7TZRRrLZSi2U"),  # the base58 draft's vectors
        (bytes.fromhex("0000287fb4cd"), "11233QC4"),
        (b"", ""),
        (b"\0" * 32, "11111111111111111111111111111111"),  # Solana's System Program
        (
            bytes.fromhex("06ddf6e1d765a193d9cbe146ceeb79ac1cb485ed5f5b37913a8cf5857eff00a9"),
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",  # the SPL Token program
        ),
        (
            bytes.fromhex("069b8857feab8184fb687f634618c035dac439dc1aeb3b5598a0f00000000001"),
            "So11111111111111111111111111111111111111112",  # wrapped SOL
        ),
    ],
)
def test_base58_known_answers(data: bytes, text: str) -> None:
    assert b58encode(data) == text
    assert b58decode(text) == data


def test_base58_lengths_and_refusals() -> None:
    assert (max_length(32), max_length(64), max_length(5)) == (44, 88, 7)
    for bad in ("0", "O", "I", "l", " ", "+", "é", "abc\n"):
        with pytest.raises(ValueError):
            b58decode(bad)
    assert decode_fixed("2" * 10_000, 32) is None  # refused on length, before any arithmetic
    assert decode_fixed(None, 32) is None
    assert decode_fixed("", 32) is None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=90))
def test_base58_has_one_spelling_per_value(text: str) -> None:
    assert b58encode(b58decode(text)) == text


# -- addresses ------------------------------------------------------------------------------


def test_address_of_a_known_key() -> None:
    assert ADDRESS == "FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"
    assert b58decode(ADDRESS) == RFC8032_PUBLIC_1
    assert parse_solana_address(ADDRESS) == ADDRESS
    verifier = SolanaVerifier()
    assert verifier.normalize(ADDRESS) == ADDRESS  # the token check: normalize(sub) == sub
    assert verifier.normalize(OTHER_ADDRESS) == OTHER_ADDRESS
    low = b58encode(b"\0\0" + b"\x05" * 30)  # leading zero bytes are leading "1"s
    assert low.startswith("11") and parse_solana_address(low) == low


@pytest.mark.parametrize(
    "address",
    [
        None,
        7,
        b"FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z",
        "",
        ETH_ADDRESS,
        ADDRESS.replace("F", "0", 1),
        ADDRESS.replace("F", "O", 1),
        ADDRESS + " ",
        " " + ADDRESS,
        ADDRESS + "\n",
        "1" + ADDRESS,  # an extra leading zero byte: 33 bytes
        ADDRESS[:-3],
        b58encode(b"\x05" * 31),
        b58encode(b"\x05" * 33),
        b58encode(b"\0\0" + b"\x05" * 30)[1:],  # one leading "1" dropped: 31 bytes
        "11111111111111111111111111111111",  # the all-zero key
        "2" * 45,
        "2" * 100_000,
    ],
)
def test_address_refusals(address: object) -> None:
    with pytest.raises(InvalidAddress) as caught:
        SolanaVerifier().normalize(address)
    assert status(caught.value) == (400, 40002)


# -- signatures -----------------------------------------------------------------------------

SIGNATURE = sign("hello")


def test_signature_in_base58_and_base64() -> None:
    b58 = b58encode(SIGNATURE)
    b64 = base64.b64encode(SIGNATURE).decode()
    assert len(b64) == 88 and b64.endswith("==")
    assert parse_solana_signature(b58) == parse_solana_signature(b64) == SIGNATURE
    zeros = b58encode(b"\0" * 64)
    assert zeros == "1" * 64 and parse_solana_signature(zeros) == b"\0" * 64


def _non_canonical_base64() -> str:
    text = base64.b64encode(SIGNATURE).decode()
    last = text[-3]
    sibling = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    index = sibling.index(last) + 1  # same two meaningful bits, a non-zero unused bit
    return text[:-3] + sibling[index] + "=="


@pytest.mark.parametrize(
    "signature",
    [
        None,
        SIGNATURE,  # bytes, not text
        "",
        b58encode(SIGNATURE[:63]),
        b58encode(SIGNATURE + b"\x01"),
        base64.b64encode(SIGNATURE[:63]).decode(),
        base64.b64encode(SIGNATURE + b"\x01").decode(),
        base64.b64encode(SIGNATURE).decode().rstrip("="),  # unpadded
        base64.urlsafe_b64encode(b"\xff" * 64).decode(),  # the URL-safe alphabet
        _non_canonical_base64(),
        "0x" + SIGNATURE.hex(),
        SIGNATURE.hex(),
        b58encode(SIGNATURE) + " ",
        "1" + b58encode(SIGNATURE),  # 65 bytes
        "=" * 88,
        "2" * 10_000,
    ],
)
def test_signature_refusals(signature: object) -> None:
    with pytest.raises(InvalidSignatureFormat) as caught:
        SolanaVerifier().parse_signature(signature)
    assert status(caught.value) == (400, 40003)


# -- verification ---------------------------------------------------------------------------


async def test_rfc8032_known_answers() -> None:
    verifier = SolanaVerifier()
    assert bytes(WALLET.verify_key) == RFC8032_PUBLIC_1
    assert sign(b"") == RFC8032_SIGNATURE_1
    await verifier.verify(b"", RFC8032_SIGNATURE_1, b58encode(RFC8032_PUBLIC_1))
    await verifier.verify(RFC8032_MESSAGE_2, RFC8032_SIGNATURE_2, b58encode(RFC8032_PUBLIC_2))
    with pytest.raises(SignatureMismatch):
        await verifier.verify(RFC8032_MESSAGE_2, RFC8032_SIGNATURE_1, b58encode(RFC8032_PUBLIC_1))


async def test_raw_secret_signature() -> None:
    verifier = SolanaVerifier()
    await verifier.verify(NONCE.encode(), verifier.parse_signature(b58encode(sign(NONCE))), ADDRESS)


@pytest.mark.parametrize(
    "message, signature, address",
    [
        (b"hello", sign("hello", OTHER), ADDRESS),  # another key's signature
        (b"hello!", SIGNATURE, ADDRESS),  # another message
        (b"hello", SIGNATURE, OTHER_ADDRESS),  # another address
        (b"hello", bytes([SIGNATURE[0] ^ 1]) + SIGNATURE[1:], ADDRESS),
        (b"hello", SIGNATURE[:32] + bytes([SIGNATURE[32] ^ 1]) + SIGNATURE[33:], ADDRESS),
        (b"hello", b"\0" * 64, ADDRESS),
    ],
)
async def test_wrong_signatures(message: bytes, signature: bytes, address: str) -> None:
    with pytest.raises(SignatureMismatch) as caught:
        await SolanaVerifier().verify(message, signature, address)
    assert status(caught.value) == (401, 40101)


async def test_non_canonical_s_is_refused() -> None:
    s = int.from_bytes(SIGNATURE[32:], "little")
    malleated = SIGNATURE[:32] + (s + ED25519_L).to_bytes(32, "little")
    with pytest.raises(SignatureMismatch):
        await SolanaVerifier().verify(b"hello", malleated, ADDRESS)


async def test_small_order_key_cannot_sign_for_everything() -> None:
    """The identity point as key and R, with S = 0, satisfies the bare verification equation
    for every message; libsodium refuses small-order keys and R, so it proves nothing."""
    identity = (1).to_bytes(32, "little")
    address = SolanaVerifier().normalize(b58encode(identity))  # a well-formed address...
    for message in (b"hello", NONCE.encode()):
        with pytest.raises(SignatureMismatch):  # ...that no signature is accepted for
            await SolanaVerifier().verify(message, identity + b"\0" * 32, address)


async def test_verify_refuses_what_parsing_would() -> None:
    verifier = SolanaVerifier()
    with pytest.raises(InvalidAddress):
        await verifier.verify(b"hello", SIGNATURE, ETH_ADDRESS)
    with pytest.raises(InvalidSignatureFormat):
        await verifier.verify(b"hello", SIGNATURE[:63], ADDRESS)
    with pytest.raises(TypeError):
        await verifier.verify("hello", SIGNATURE, ADDRESS)  # type: ignore[arg-type]


# -- off-chain message envelopes ------------------------------------------------------------


def legacy_v0(message: bytes, fmt: int) -> bytes:
    """Solana CLI / Ledger app 1.3-1.7: domain, version 0, format, u16 LE length, message."""
    return SIGNING_DOMAIN + bytes([0, fmt]) + len(message).to_bytes(2, "little") + message


def spec_v0(message: bytes, fmt: int, *, domain: bytes = b"\0" * 32, signers: bytes = b"") -> bytes:
    """Ledger app 1.8+: domain, version 0, application domain, format, signers, length, message."""
    signers = signers or PUBLIC_KEY
    count = len(signers) // 32
    return (
        SIGNING_DOMAIN
        + b"\0"
        + domain
        + bytes([fmt, count])
        + signers
        + len(message).to_bytes(2, "little")
        + message
    )


def v1(message: bytes) -> bytes:
    """``solana:signIn`` 1.1: domain, version 1, signers, message (no format, no length)."""
    return SIGNING_DOMAIN + b"\x01\x01" + PUBLIC_KEY + message


SIWS = siws_text()


def test_envelope_bytes_known_answer() -> None:
    envelope = legacy_v0(b"hi", 0)
    assert envelope.hex() == "ff736f6c616e61206f6666636861696e" + "00" + "00" + "0200" + "6869"
    assert offchain_envelopes(b"hi", PUBLIC_KEY) == [
        legacy_v0(b"hi", 0),
        legacy_v0(b"hi", 1),
        spec_v0(b"hi", 0),
        spec_v0(b"hi", 1),
        v1(b"hi"),
    ]
    assert offchain_envelopes("ü".encode(), PUBLIC_KEY, {"v0-legacy"}) == [
        legacy_v0("ü".encode(), 1)
    ]
    long = b"a" * 1300  # past one packet: only the extended format
    assert offchain_envelopes(long, PUBLIC_KEY, {"v0-legacy", "v0"}) == [
        legacy_v0(long, 2),
        spec_v0(long, 2),
    ]
    assert offchain_envelopes(b"", PUBLIC_KEY) == []


@pytest.mark.parametrize(
    "envelope",
    [
        legacy_v0(SIWS.encode(), 0),
        legacy_v0(SIWS.encode(), 1),
        spec_v0(SIWS.encode(), 0),
        spec_v0(SIWS.encode(), 1),
        v1(SIWS.encode()),
    ],
    ids=["v0-legacy/ascii", "v0-legacy/utf8", "v0/ascii", "v0/utf8", "v1"],
)
async def test_ledger_signed_sign_in(envelope: bytes) -> None:
    """The wallet returns the SIWS text and a signature over its envelope: accepted."""
    signature = b58encode(sign(envelope))
    assert await sign_in(SolanaVerifier(), SIWS, signature) == "mainnet"


async def test_ledger_signed_raw_secret() -> None:
    verifier = SolanaVerifier()
    signature = sign(legacy_v0(NONCE.encode(), 0))
    await verifier.verify(NONCE.encode(), signature, ADDRESS)


OTHER_SIWS = siws_text(statement="Sign in to Elsewhere").encode()


@pytest.mark.parametrize(
    "envelope",
    [
        legacy_v0(OTHER_SIWS, 1),  # wraps another message
        legacy_v0(SIWS.encode() + b" ", 1),
        legacy_v0(SIWS.encode(), 2),  # the extended format for a short message
        legacy_v0(SIWS.encode(), 3),
        SIGNING_DOMAIN + b"\0\x01" + (len(SIWS) + 1).to_bytes(2, "little") + SIWS.encode(),
        b"\xffsolana offchaim" + legacy_v0(SIWS.encode(), 1)[16:],
        SIGNING_DOMAIN + b"\x02" + legacy_v0(SIWS.encode(), 1)[17:],  # version 2
        spec_v0(SIWS.encode(), 1, domain=b"\x01" * 32),  # an application domain
        spec_v0(SIWS.encode(), 1, signers=bytes(OTHER.verify_key)),  # another signer
        spec_v0(SIWS.encode(), 1, signers=PUBLIC_KEY + bytes(OTHER.verify_key)),
        SIGNING_DOMAIN + b"\x01\x01" + bytes(OTHER.verify_key) + SIWS.encode(),
        SIGNING_DOMAIN + b"\x01\x02" + PUBLIC_KEY + PUBLIC_KEY + SIWS.encode(),
        SIWS.encode() + b"\n",
    ],
)
async def test_envelope_refusals(envelope: bytes) -> None:
    with pytest.raises(SignatureMismatch):
        await sign_in(SolanaVerifier(), SIWS, b58encode(sign(envelope)))


async def test_envelopes_can_be_limited_or_switched_off() -> None:
    signature = sign(spec_v0(SIWS.encode(), 1))
    await SolanaVerifier(envelopes={"v0"}).verify(SIWS.encode(), signature, ADDRESS)
    for envelopes in ((), {"v0-legacy", "v1"}):
        with pytest.raises(SignatureMismatch):
            await SolanaVerifier(envelopes=envelopes).verify(SIWS.encode(), signature, ADDRESS)
    bare = sign(SIWS)
    await SolanaVerifier(envelopes=()).verify(SIWS.encode(), bare, ADDRESS)


# -- sign-in messages through the verifier --------------------------------------------------


async def test_siws_login_as_the_routes_make_it() -> None:
    for encode in (b58encode, lambda data: base64.b64encode(data).decode()):
        assert await sign_in(SolanaVerifier(), SIWS, encode(sign(SIWS))) == "mainnet"


@pytest.mark.parametrize(
    "chain_id, chain_ids, expected",
    [
        ("solana:mainnet", ("mainnet",), "mainnet"),
        ("devnet", ("solana:devnet",), "devnet"),
        ("solana:localnet", None, "localnet"),
        ("testnet", ("mainnet", "testnet"), "testnet"),
    ],
)
async def test_chain_ids(chain_id: str, chain_ids: Any, expected: str) -> None:
    fields = [("URI", URI), ("Version", "1"), ("Chain ID", chain_id)]
    text = siws_text(fields=[*fields, ("Nonce", NONCE), ("Issued At", "2026-01-01T00:00:00Z")])
    verifier = SolanaVerifier(chain_ids=chain_ids)
    assert await sign_in(verifier, text, b58encode(sign(text))) == expected


async def test_refused_chain() -> None:
    text = SIWS.replace("Chain ID: mainnet", "Chain ID: solana:devnet")
    with pytest.raises(MessageRejected, match="chain id") as caught:
        await sign_in(SolanaVerifier(), text, b58encode(sign(text)))
    assert status(caught.value) == (401, 40103)


@pytest.mark.parametrize(
    "text, signer, error, code",
    [
        (SIWS, OTHER, SignatureMismatch, 40101),  # wrong key
        (SIWS.replace(ADDRESS, OTHER_ADDRESS), WALLET, MessageRejected, 40103),  # not the signer
        (SIWS.replace(DOMAIN, "evil.example", 1), WALLET, MessageRejected, 40103),
        (SIWS.replace(URI, "https://evil.example"), WALLET, MessageRejected, 40103),
        (SIWS.replace(NONCE, "A" * 24), WALLET, MessageRejected, 40103),
        (SIWS.replace(ISSUED, "2026-01-01T00:05:00Z"), WALLET, MessageExpired, 40104),
        (SIWS + "\nExpiration Time: 2025-12-31T23:58:59Z", WALLET, MessageExpired, 40104),
        (SIWS + "\nNonce: " + NONCE, WALLET, InvalidMessage, 40004),  # a duplicate field
        (SIWS.replace("Solana", "Ethereum"), WALLET, InvalidMessage, 40004),
        (SIWS + "\n- " + "a" * 8192, WALLET, InvalidMessage, 40004),  # over the size cap
    ],
)
async def test_sign_in_refusals(
    text: str, signer: nacl.signing.SigningKey, error: type[WalletAuthError], code: int
) -> None:
    with pytest.raises(error) as caught:
        await sign_in(SolanaVerifier(), text, b58encode(sign(text, signer)))
    assert caught.value.code == code
    assert NONCE not in caught.value.msg


# -- configuration, registry, CAIP ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"chain_ids": "mainnet"}, "chain_ids={'mainnet'}"),
        ({"chain_ids": ()}, "non-empty"),
        ({"chain_ids": {"mainnet-beta"}}, "mainnet, devnet, testnet, localnet"),
        ({"chain_ids": {1}}, "clusters"),
        ({"envelopes": "v0"}, "envelopes={'v0'}"),
        ({"envelopes": {"v2"}}, "v0-legacy, v0, v1"),
    ],
)
def test_configuration_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        SolanaVerifier(**kwargs)


def test_defaults_and_default_chain() -> None:
    verifier = SolanaVerifier()
    assert verifier.did_type == "sol"
    assert verifier.chain_ids == {"mainnet"}
    assert verifier.envelopes == set(ENVELOPES)
    assert verifier.default_chain_id == "mainnet"
    assert SolanaVerifier(chain_ids=None).default_chain_id == "mainnet"
    assert SolanaVerifier(chain_ids={"solana:localnet", "devnet"}).default_chain_id == "devnet"
    assert isinstance(verifier, ChainVerifier)


def test_registry_tells_the_chains_apart() -> None:
    registry = ChainRegistry({"eth": EthereumVerifier(), "sol": SolanaVerifier()})
    chain, address = registry.for_address(ADDRESS)
    assert (chain.did_type, address) == ("sol", ADDRESS)
    chain, address = registry.for_address(ETH_ADDRESS.lower())
    assert (chain.did_type, address) == ("eth", ETH_ADDRESS)
    with pytest.raises(InvalidAddress):
        registry.for_address("not an address")
    assert registry.for_did_type("sol").did_type == "sol"


def test_each_chain_refuses_the_other_chains_signatures() -> None:
    """A secret's nonce key holds the canonical address, and the two grammars are disjoint:
    a secret issued to one chain's address is never found under the other's, and neither
    chain's signature text parses as the other's."""
    eth, sol = EthereumVerifier(), SolanaVerifier()
    with pytest.raises(InvalidSignatureFormat):
        eth.parse_signature(b58encode(SIGNATURE))
    with pytest.raises(InvalidSignatureFormat):
        sol.parse_signature("0x" + "11" * 64 + "1b")
    with pytest.raises(InvalidAddress):
        eth.normalize(ADDRESS)
    with pytest.raises(InvalidAddress):
        sol.normalize(ETH_ADDRESS)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=32, max_size=32))
def test_address_grammars_never_overlap(data: bytes) -> None:
    address = b58encode(data)
    if data != b"\0" * 32:
        assert SolanaVerifier().normalize(address) == address
    assert "0" not in address  # every Ethereum address starts with "0x"
    with pytest.raises(InvalidAddress):
        EthereumVerifier().normalize(address)


def test_caip10_account_ids() -> None:
    assert caip10_account_id(ADDRESS, "mainnet") == f"{CAIP2_CHAIN_IDS['mainnet']}:{ADDRESS}"
    assert caip10_account_id(ADDRESS, "solana:devnet") == (
        f"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1:{ADDRESS}"
    )
    assert caip10_account_id(ADDRESS, "localnet") is None
    assert caip10_account_id(ADDRESS, "nope") is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET + "0OIl=+/ \n", max_size=100) | st.text(max_size=100))
def test_fuzz_address_and_signature_grammar(text: str) -> None:
    """Any text is either accepted as itself / 64 bytes, or refused with the documented 400."""
    verifier = SolanaVerifier()
    try:
        assert verifier.normalize(text) == text
    except InvalidAddress as error:
        assert status(error) == (400, 40002)
    try:
        assert len(verifier.parse_signature(text)) == 64
    except InvalidSignatureFormat as error:
        assert status(error) == (400, 40003)
