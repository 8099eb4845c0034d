"""The direct JWS path's pieces against the references they replace.

``es256_der`` against ``cryptography``'s ``encode_dss_signature``; ``signature_reader`` against
the one canonical base64url spelling; ``split`` against the token shapes it must refuse.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from asgi_wallet_auth.errors import TokenInvalid
from asgi_wallet_auth.jws import (
    Signer,
    decode,
    es256_der,
    es256_raw,
    signature_reader,
    split,
    verify_table,
)
from asgi_wallet_auth.keys import SigningKey

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HALF = N // 2


def raw(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (1, 1),
        (N - 1, HALF),
        (2**255 + 1, 2**254),  # r's top bit set: DER needs a zero byte in front
        (2**200, 2**8),  # leading zero bytes dropped from both
        (0x7F << 248, 0x80 << 240),  # 0x7F leads r as is; 0x80 in s's second byte
        (2**255 - 1, HALF - 1),
        (0x80, 0x7F),  # one-byte INTEGERs, one of them with its top bit set
    ],
)
def test_es256_der_is_what_encode_dss_signature_writes(r: int, s: int) -> None:
    assert es256_der(raw(r, s)) == encode_dss_signature(r, s)


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (N, 1), (2**256 - 1, 1), (1, HALF + 1), (1, N - 1), (1, 2**256 - 1)],
)
def test_es256_der_refuses_what_is_out_of_range_or_high_s(r: int, s: int) -> None:
    assert es256_der(raw(r, s)) is None


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_es256_der_refuses_another_length(length: int) -> None:
    assert es256_der(bytes([1]) * length) is None


@pytest.mark.parametrize("size", [32, 48, 64])
def test_signature_reader_reads_the_canonical_spelling(size: int) -> None:
    signature = bytes(range(256 - size, 256))
    assert signature_reader(size)(b64url(signature)) == signature


def test_signature_reader_refuses_every_other_spelling() -> None:
    # 0xFB 0xEF 0xFF spells "--__" in base64url, "++//" in standard base64.
    signature = bytes([0xFB, 0xEF, 0xFF] * 21 + [0x10])
    read = signature_reader(64)
    canonical = b64url(signature)
    assert read(canonical) == signature
    assert len(canonical) % 4 == 2  # 4 spare bits in the last character, all zero
    spare_bit_set = canonical[:-1] + ALPHABET[ALPHABET.index(canonical[-1]) | 1 : ][:1]
    assert base64.urlsafe_b64decode(spare_bit_set + b"==") == signature  # a real twin
    for variant in (
        canonical + b"==",  # padded
        canonical[:-1],  # short
        canonical + b"A",  # long
        spare_bit_set,
        canonical.replace(b"-", b"+"),  # the standard alphabet
        canonical.replace(b"_", b"/"),
        canonical[:10] + b"." + canonical[11:],
        canonical[:10] + b" " + canonical[11:],
        canonical[:10] + b"=" + canonical[11:],
    ):
        assert read(variant) is None, variant


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",  # one dot
        ".b.c",  # no header
        "é.b.c",  # not ASCII
        "a" * 5000 + ".b.c",  # longer than any token
        b"a.b.c",  # not text
        None,
    ],
)
def test_split_refuses_what_is_no_compact_jws(token: object) -> None:
    assert split(token) is None


def test_split_gives_the_header_text_and_the_signed_bytes() -> None:
    assert split("aGVhZA.cGF5bG9hZA.c2ln") == (
        "aGVhZA",
        b"aGVhZA.cGF5bG9hZA",
        b"cGF5bG9hZA",
        b"c2ln",
    )


ED_PRIVATE = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.mark.parametrize("claims", [b"{}", b'{"sub":"x"}', b'{"a":"' + b"b" * 3000 + b'"}'])
def test_ed25519_signatures_are_the_ones_cryptography_writes(claims: bytes) -> None:
    # Ed25519 is deterministic: libsodium and OpenSSL must write the very same bytes.
    token = Signer(SigningKey.from_key(ED_PRIVATE)).encode(claims)
    signing_input, _, segment = token.encode().rpartition(b".")
    assert segment == b64url(ED_PRIVATE.sign(signing_input))


def test_ed25519_verification_refuses_what_cryptography_refuses() -> None:
    key = SigningKey.from_key(ED_PRIVATE)
    ((header, verify),) = [
        (h, v) for h, v in verify_table([key]).items() if h.startswith("eyJhbGciOiJFZDI1NTE5")
    ]
    token = Signer(key).encode(b'{"sub":"x"}')
    signing_input, _, segment = token.encode().rpartition(b".")
    signature = base64.urlsafe_b64decode(segment + b"==")
    assert verify(signing_input, segment)
    public = ED_PRIVATE.public_key()
    for index in range(64):
        for bit in (0x01, 0x80):
            forged = bytearray(signature)
            forged[index] ^= bit
            with pytest.raises(InvalidSignature):
                public.verify(bytes(forged), signing_input)
            assert not verify(signing_input, b64url(bytes(forged)))
    assert not verify(signing_input + b"x", segment)
    assert header.startswith("eyJ")


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (1, 1),
        (N - 1, HALF),
        (N - 1, HALF + 1),  # high-S: written as n - s
        (N - 1, N - 1),
        (2**255 + 1, 2**255),  # both top bits set: 33-byte INTEGERs in DER
        (2**200, 2**8),  # short INTEGERs: padded back to 32 bytes
        (0x80, 0x7F),
    ],
)
def test_es256_raw_is_decode_dss_signature_written_low_s(r: int, s: int) -> None:
    low_s = s if s <= HALF else N - s
    assert es256_raw(encode_dss_signature(r, s)) == raw(r, low_s)
    assert decode_dss_signature(encode_dss_signature(r, s)) == (r, s)


def test_es256_tokens_verify_with_cryptography_and_are_low_s() -> None:
    private = ec.derive_private_key(0x1D2C3B4A5F6E7D8C9BAAB9C8D7E6F50413223140516, ec.SECP256R1())
    signer = Signer(SigningKey.from_key(private))
    public = private.public_key()
    for n in range(64):  # OpenSSL's s is random: about half of these were high-S as signed
        token = signer.encode(b'{"n":%d}' % n)
        signing_input, _, segment = token.encode().rpartition(b".")
        signature = base64.urlsafe_b64decode(segment + b"==")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        assert s <= HALF
        public.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("spelling", "pyjwt_refuses"),
    [
        (lambda p: p + b"==", False),  # padded: PyJWT takes it, we do not
        (lambda p: p[:8] + b"!" + p[8:], True),  # not base64: lenient decoders skip it
        (lambda p: p[:8] + b" " + p[8:], True),
        (lambda p: p.replace(b"-", b"+").replace(b"_", b"/"), True),  # the standard alphabet
    ],
)
def test_a_payload_signed_with_the_secret_in_another_spelling_is_refused(
    spelling: Any, pyjwt_refuses: bool
) -> None:
    # Whoever holds an HMAC secret can sign any bytes: the payload's spelling is checked too,
    # at least as strictly as PyJWT (the reference) checks it.
    secret = bytes(range(64))
    table = verify_table([SigningKey.hmac(secret)])
    (header,) = table
    payload = b64url(b'{"sub":"??>>~~"}')  # spells "-" and "_" in base64url
    assert b"-" in payload and b"_" in payload

    def signed(text: bytes) -> str:
        signing_input = header.encode() + b"." + text
        mac = hmac.digest(secret, signing_input, "sha256")
        return (signing_input + b"." + b64url(mac)).decode()

    assert decode(signed(payload), table) == {"sub": "??>>~~"}
    token = signed(spelling(payload))
    with pytest.raises(TokenInvalid):
        decode(token, table)
    if pyjwt_refuses:
        with pytest.raises(jwt.InvalidTokenError):
            jwt.decode(token, secret, algorithms=["HS256"])
