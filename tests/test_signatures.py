"""Strict address and signature parsing, and EIP-191 recovery on the coincurve fast path."""

from __future__ import annotations

import hashlib
import random

import coincurve
import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_utils import to_checksum_address as reference_checksum_address

from asgi_wallet_auth import signatures
from asgi_wallet_auth.errors import InvalidAddress, InvalidSignatureFormat, SignatureMismatch
from asgi_wallet_auth.signatures import (
    SECP256K1_N,
    Signature,
    eip191_digest,
    keccak256,
    parse_address,
    parse_signature,
    public_key_to_address,
    recover_address,
    to_checksum_address,
    verify_wallet_signature,
)
from tests.conftest import OTHER_KEY, WALLET_KEY, sign_text

WALLET = Account.from_key(WALLET_KEY)
OTHER = Account.from_key(OTHER_KEY)
HALF_N = SECP256K1_N // 2
#: The field prime of secp256k1.
SECP256K1_P = 2**256 - 2**32 - 977
KECCAK_EMPTY = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
MESSAGE = b"Sign in to example.com"


def _sig_hex(r: int, s: int, v: int) -> str:
    return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))).hex()


def _split(signature: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(signature[2:])
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]


def _real_signature(message: bytes = MESSAGE, account: object = WALLET) -> str:
    signed = account.sign_message(encode_defunct(primitive=message))  # type: ignore[attr-defined]
    return "0x" + bytes(signed.signature).hex()


# --------------------------------------------------------------------------- parse_address


def test_lowercase_uppercase_and_eip55_forms_are_the_same_identity() -> None:
    eip55 = WALLET.address
    body = eip55[2:]
    assert body != body.lower() and body != body.upper()  # the fixture really is mixed-case
    assert parse_address(eip55) == eip55
    assert parse_address("0x" + body.lower()) == eip55
    assert parse_address("0x" + body.upper()) == eip55


def test_checksum_matches_eth_utils_on_many_random_addresses() -> None:
    rng = random.Random(55)
    for _ in range(200):
        body = rng.randbytes(20).hex()
        expected = reference_checksum_address("0x" + body)
        assert to_checksum_address(body) == expected
        assert parse_address("0x" + body) == expected
        assert parse_address("0x" + body.upper()) == expected
        assert parse_address(expected) == expected


@pytest.mark.parametrize("address", [WALLET.address, OTHER.address])
def test_mixed_case_address_with_any_single_letter_case_flipped_is_refused(address: str) -> None:
    body = address[2:]
    flipped_count = 0
    for i, c in enumerate(body):
        if not c.isalpha():
            continue
        forged = body[:i] + c.swapcase() + body[i + 1 :]
        if forged in (forged.lower(), forged.upper()):
            continue  # flipping the only letter of one case makes it a valid single-case form
        flipped_count += 1
        with pytest.raises(InvalidAddress):
            parse_address("0x" + forged)
    assert flipped_count > 10


def test_zero_address_is_refused() -> None:
    with pytest.raises(InvalidAddress):
        parse_address("0x" + "0" * 40)


_BODY = WALLET.address[2:]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x",
        "0x" + _BODY[:-1],  # 39 hex digits
        "0x" + _BODY + "a",  # 41 hex digits
        "0x" + _BODY + _BODY,
        _BODY,  # no 0x
        "00" + _BODY,
        "0X" + _BODY,
        "0X" + _BODY.lower(),
        "x" + _BODY,
        "0x" + _BODY[:-1] + "g",
        "0x" + _BODY[:-1] + "z",
        "0x" + "\u0660" * 40,  # Arabic-Indic digits: str.isdigit() but not hex
        "0x" + "\uff10" * 40,  # full-width zeros
        " " + WALLET.address,
        WALLET.address + " ",
        WALLET.address + "\n",
        "\t" + WALLET.address,
        "0x" + _BODY[:20] + " " + _BODY[21:],
        "0x " + _BODY,
        "0x" + "-" + _BODY[1:],
    ],
)
def test_malformed_address_text_is_refused(value: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        int(WALLET.address, 16),
        [WALLET.address],
        (WALLET.address,),
        {"address": WALLET.address},
        WALLET.address.encode(),
        bytes.fromhex(_BODY),
        bytearray(WALLET.address.encode()),
        True,
    ],
)
def test_non_string_address_is_refused(value: object) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(value)


# --------------------------------------------------------------------------- parse_signature


@pytest.mark.parametrize("v", [0, 1, 27, 28])
def test_signature_recovery_byte_in_accepted_set_is_parsed(v: int) -> None:
    r, s, _ = _split(_real_signature())
    parsed = parse_signature(_sig_hex(r, s, v))
    assert parsed == Signature(r, s, v % 27)
    assert parsed.to_compact() == r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v % 27,))


@pytest.mark.parametrize("v", [2, 3, 4, 26, 29, 30, 35, 36, 37, 38, 127, 255])
def test_signature_recovery_byte_outside_0_1_27_28_is_refused(v: int) -> None:
    r, s, _ = _split(_real_signature())
    with pytest.raises(InvalidSignatureFormat):
        parse_signature(_sig_hex(r, s, v))


_GOOD_SIG = _real_signature()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x",
        "0x" + _GOOD_SIG[2:130],  # 64-byte compact form (EIP-2098 length), no v byte
        "0x" + _GOOD_SIG[2:] + "0",  # 131 hex digits
        "0x" + _GOOD_SIG[2:-1],  # 129 hex digits
        "0x" + _GOOD_SIG[2:] + "00",  # 66 bytes
        _GOOD_SIG[2:],  # no 0x
        "0X" + _GOOD_SIG[2:],
        "0x" + _GOOD_SIG[2:-1] + "g",
        "0x" + "z" * 130,
        _GOOD_SIG + "\n",
        " " + _GOOD_SIG,
        _GOOD_SIG[:40] + " " + _GOOD_SIG[41:],
        "0x" + "\uff11" * 130,
    ],
)
def test_malformed_signature_text_is_refused(value: str) -> None:
    with pytest.raises(InvalidSignatureFormat):
        parse_signature(value)


@pytest.mark.parametrize(
    "value",
    [None, 0, int(_GOOD_SIG, 16), _GOOD_SIG.encode(), bytes.fromhex(_GOOD_SIG[2:]), [_GOOD_SIG]],
)
def test_non_string_signature_is_refused(value: object) -> None:
    with pytest.raises(InvalidSignatureFormat):
        parse_signature(value)


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (0, 1),
        (1, 0),
        (0, 0),
        (SECP256K1_N, 1),
        (SECP256K1_N + 1, 1),
        (2**256 - 1, 1),
        (1, HALF_N + 1),
        (1, SECP256K1_N - 1),
        (1, SECP256K1_N),
        (1, 2**256 - 1),
    ],
)
def test_out_of_range_or_high_s_scalars_are_refused(r: int, s: int) -> None:
    for v in (0, 27):
        with pytest.raises(InvalidSignatureFormat):
            parse_signature(_sig_hex(r, s, v))


def test_scalar_range_boundaries_are_accepted() -> None:
    assert parse_signature(_sig_hex(1, 1, 27)) == Signature(1, 1, 0)
    assert parse_signature(_sig_hex(SECP256K1_N - 1, HALF_N, 28)) == Signature(
        SECP256K1_N - 1, HALF_N, 1
    )


def test_high_s_twin_of_a_real_signature_is_refused_while_the_original_passes() -> None:
    original = _real_signature()
    r, s, v = _split(original)
    assert s <= HALF_N  # eth-account signs canonically
    twin_s, twin_v = SECP256K1_N - s, 27 + (1 - (v - 27))
    twin = _sig_hex(r, twin_s, twin_v)

    assert recover_address(MESSAGE, original) == WALLET.address
    verify_wallet_signature(MESSAGE, original, WALLET.address)
    # The twin is a mathematically valid signature by the same key, so only the low-s rule stops it.
    twin_compact = r.to_bytes(32, "big") + twin_s.to_bytes(32, "big") + bytes([twin_v - 27])
    twin_key = coincurve.PublicKey.from_signature_and_message(
        twin_compact, eip191_digest(MESSAGE), hasher=None
    )
    assert public_key_to_address(twin_key.format(compressed=False)) == WALLET.address
    with pytest.raises(InvalidSignatureFormat):
        Signature(r, twin_s, twin_v - 27)  # not even constructible by hand
    with pytest.raises(InvalidSignatureFormat):
        parse_signature(twin)
    with pytest.raises(InvalidSignatureFormat):
        recover_address(MESSAGE, twin)
    with pytest.raises(InvalidSignatureFormat):
        verify_wallet_signature(MESSAGE, twin, WALLET.address)


# --------------------------------------------------------------------------- recovery


def _messages(rng: random.Random, count: int) -> list[bytes]:
    fixed = [
        b"",
        "h\u00e9llo w\u00f6rld \u2713 \U0001f98a \u65e5\u672c\u8a9e".encode(),
        rng.randbytes(1000),
        b"\x00" * 32,
        b"\x19Ethereum Signed Message:\n5hello",
    ]
    return fixed + [rng.randbytes(rng.randrange(0, 300)) for _ in range(count - len(fixed))]


def test_recovery_agrees_with_eth_account_on_many_random_keys_and_messages() -> None:
    rng = random.Random(20240101)
    messages = _messages(rng, 200)
    for message in messages:
        account = Account.from_key(rng.randbytes(32))
        signable = encode_defunct(primitive=message)
        raw = bytes(account.sign_message(signable).signature)
        assert raw[64] in (27, 28)
        for v in (raw[64], raw[64] - 27):
            encoded = raw[:64] + bytes((v,))
            expected = Account.recover_message(signable, signature=encoded)
            assert expected == account.address
            assert recover_address(message, "0x" + encoded.hex()) == expected
            assert recover_address(message, parse_signature("0x" + encoded.hex())) == expected
            verify_wallet_signature(message, "0x" + encoded.hex(), expected)


def test_text_signature_from_conftest_helper_recovers_to_the_signer() -> None:
    text = "example.com wants you to sign in with your Ethereum account:\n" + WALLET.address
    assert recover_address(text.encode(), sign_text(WALLET, text)) == WALLET.address


def _fake_from_signature(behaviour: object, calls: list[int]) -> object:
    def fake(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if isinstance(behaviour, BaseException):
            raise behaviour
        return behaviour

    return fake


class _CustomCurveError(Exception):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("no point"),
        TypeError("bad type"),
        RuntimeError("lib failure"),
        _CustomCurveError("surprise"),
        ArithmeticError("boom"),
    ],
)
def test_any_exception_from_coincurve_recovery_is_a_signature_mismatch(
    monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(
        signatures.coincurve.PublicKey,
        "from_signature_and_message",
        _fake_from_signature(exc, calls),
    )
    with pytest.raises(SignatureMismatch) as excinfo:
        recover_address(MESSAGE, _real_signature())
    assert calls == [1]
    assert excinfo.value.__cause__ is exc
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE, _real_signature(), WALLET.address)


class _FakeKey:
    def __init__(self, formatted: object) -> None:
        self.formatted = formatted

    def format(self, compressed: bool = True) -> object:
        if isinstance(self.formatted, BaseException):
            raise self.formatted
        return self.formatted


@pytest.mark.parametrize(
    "formatted",
    [
        b"\x04" + b"\x01" * 63,  # 64 bytes
        b"\x04" + b"\x01" * 65,  # 66 bytes
        b"\x02" + b"\x01" * 32,  # a compressed key
        b"",
        bytearray(b"\x04" + b"\x01" * 64),  # right length, not bytes
        memoryview(b"\x04" + b"\x01" * 64),
        "\x04" + "\x01" * 64,  # a str of length 65
        [4] + [1] * 64,
        None,
        ValueError("cannot serialize"),
    ],
)
def test_recovered_key_with_wrong_serialization_is_a_signature_mismatch(
    monkeypatch: pytest.MonkeyPatch, formatted: object
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(
        coincurve.PublicKey,
        "from_signature_and_message",
        _fake_from_signature(_FakeKey(formatted), calls),
    )
    with pytest.raises(SignatureMismatch):
        recover_address(MESSAGE, _real_signature())
    assert calls == [1]


def _first_r_that_is_not_a_curve_x() -> int:
    r = 1
    # Euler's criterion: r^3 + 7 is a non-residue mod p, so no point has x == r.
    while pow((r**3 + 7) % SECP256K1_P, (SECP256K1_P - 1) // 2, SECP256K1_P) != SECP256K1_P - 1:
        r += 1
    return r


@pytest.mark.parametrize("v", [0, 1, 27, 28])
def test_r_that_is_not_an_x_coordinate_is_a_mismatch_not_a_crash(v: int) -> None:
    r = _first_r_that_is_not_a_curve_x()
    assert r < SECP256K1_N
    signature = _sig_hex(r, 12345, v)
    assert parse_signature(signature) == Signature(r, 12345, v % 27)  # well formed
    with pytest.raises(SignatureMismatch):
        recover_address(MESSAGE, signature)
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE, signature, WALLET.address)


def test_signature_by_another_key_is_a_mismatch_and_the_right_key_passes() -> None:
    mine, theirs = _real_signature(MESSAGE, WALLET), _real_signature(MESSAGE, OTHER)
    assert verify_wallet_signature(MESSAGE, mine, WALLET.address) is None
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE, theirs, WALLET.address)
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE, mine, OTHER.address)


def test_signature_over_another_message_is_a_mismatch() -> None:
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE + b"!", _real_signature(MESSAGE), WALLET.address)


def test_signature_with_flipped_recovery_id_does_not_verify() -> None:
    r, s, v = _split(_real_signature())
    flipped = _sig_hex(r, s, 55 - v)  # 27 <-> 28
    with pytest.raises(SignatureMismatch):
        verify_wallet_signature(MESSAGE, flipped, WALLET.address)


# --------------------------------------------------------------------------- hashing


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"hello",
        b"0",
        b"\n\n",
        "sign in \u2713 \U0001f98a".encode(),
        bytes(range(256)) * 4,
        b"x" * 1000,
    ],
)
def test_eip191_digest_matches_eth_account(message: bytes) -> None:
    digest = eip191_digest(message)
    assert digest == bytes(_hash_eip191_message(encode_defunct(primitive=message)))
    prefix = b"\x19Ethereum Signed Message:\n" + str(len(message)).encode()
    assert digest == keccak256(prefix + message)
    assert len(digest) == 32


def test_eip191_digest_of_text_matches_eth_account_text_encoding() -> None:
    text = "Sign in \u00e0 example.com \u2014 nonce 42"
    expected = bytes(_hash_eip191_message(encode_defunct(text=text)))
    assert eip191_digest(text.encode("utf-8")) == expected


def test_keccak256_is_ethereum_keccak_not_fips_sha3() -> None:
    assert keccak256(b"").hex() == KECCAK_EMPTY
    assert keccak256(b"") != hashlib.sha3_256(b"").digest()
    # A second known vector: keccak256("abc").
    assert (
        keccak256(b"abc").hex()
        == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_the_address_cache_never_answers_for_a_str_subclass_by_its_own_hash() -> None:
    # parse_address caches by text; a subclass that hashes and compares like another address
    # must still be checked as what it spells, and the answer is plain text.
    canonical = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert parse_address(canonical) == canonical

    class Impostor(str):
        def __hash__(self) -> int:
            return hash(canonical)

        def __eq__(self, other: object) -> bool:
            return True

    spelled = Impostor("0x" + "0" * 40)
    with pytest.raises(InvalidAddress, match="zero address"):
        parse_address(spelled)
    lower = parse_address(Impostor(canonical.lower()))
    assert type(lower) is str and lower == canonical
