"""Compact JWS on a direct path: one fixed header per key, one MAC or signature per token.

Every token this package issues has the header ``{"alg":...,"kid":...,"typ":"JWT"}`` serialized
one way, so verification looks the header segment up as a string: a header we did not issue (a
``jku``, ``x5u`` or ``jwk``, an unknown ``kid``, another ``alg``, ``none``, ``crit``, another
spelling) finds no key and is refused before anything is decoded. PyJWT stays the reference:
the tests check every token issued here against it.
"""

from __future__ import annotations

import binascii
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import Any

import nacl.bindings
import nacl.exceptions
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import TokenInvalid
from .keys import SigningKey, b64url

#: Takes the signing input (``header.payload`` as ASCII bytes) and the signature segment (its
#: base64url text, as ASCII bytes): each key checks the segment's one canonical spelling itself,
#: since it alone knows how long its signatures are.
VerifyFn = Callable[[bytes, bytes], bool]
SignFn = Callable[[bytes], bytes]
#: Header segment (base64url text) -> the verification of the one key it names.
VerifyTable = Mapping[str, VerifyFn]

MAX_TOKEN_LENGTH = 4096
_HASHES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
# The group order of P-256: a signature's r and s lie in [1, n-1], and s in the low half. As
# 32-byte big-endian strings, so that the range checks compare bytes instead of building ints
# (bytes of equal length order as the numbers they spell).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF = _P256_ORDER // 2
_ORDER_BYTES = _P256_ORDER.to_bytes(32, "big")
_HALF_BYTES = _P256_HALF.to_bytes(32, "big")
_ZERO_BYTES = bytes(32)
# DER prefixes by length: an INTEGER of up to 33 bytes, a SEQUENCE of up to 70.
_DER_INTEGER = [b"\x02" + bytes((n,)) for n in range(34)]
_DER_SEQUENCE = [b"\x30" + bytes((n,)) for n in range(71)]
_ECDSA = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))
_TOKEN_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# A canonical encoding leaves the spare low bits of the last character zero: 4 of them when the
# length is 2 mod 4, 2 when it is 3 mod 4; 1 mod 4 is never a valid length. Anything else would
# be a second spelling of the same signature.
_SPARE_MASK = {0: 0, 2: 0x0F, 3: 0x03}
# The 6-bit value of each base64url character, indexed by its byte.
_SEXTET = bytearray(256)
for _index, _char in enumerate(_TOKEN_ALPHABET):
    _SEXTET[_char] = _index
# bytes.translate: str.translate costs several times more on a token-sized segment.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url(data: bytes) -> bytes:
    # keys.b64url's bytes, in C calls only: every token issued goes through it twice.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def header_segment(algorithm: str, kid: str | None) -> str:
    """The one header segment this package writes for ``algorithm`` and ``kid``."""
    header: dict[str, str] = {"alg": algorithm}
    if kid is not None:
        header["kid"] = kid
    header["typ"] = "JWT"
    return b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))


def signature_reader(size: int) -> Callable[[bytes], bytes | None]:
    """Decodes the segment of a ``size``-byte signature, or None unless it is its one spelling."""
    length = (size * 4 + 2) // 3
    mask = _SPARE_MASK[length % 4]
    sextet = _SEXTET
    alphabet = _TOKEN_ALPHABET
    to_standard = _TO_STANDARD
    a2b = binascii.a2b_base64

    def read(segment: bytes) -> bytes | None:
        # The exact length, base64url characters only, no spare bit set: the canonical spelling,
        # so that no token has a twin that verifies too.
        if len(segment) != length or segment.translate(None, alphabet):
            return None
        if sextet[segment[-1]] & mask:
            return None
        return a2b(segment.translate(to_standard) + b"==")

    return read


def _hmac_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    assert key.secret is not None
    # Keyed once: each token copies the prepared state instead of keying HMAC again.
    prepared = hmac.new(key.secret, digestmod=_HASHES[key.algorithm])
    compare = hmac.compare_digest
    read = signature_reader(prepared.digest_size)

    def sign(signing_input: bytes) -> bytes:
        mac = prepared.copy()
        mac.update(signing_input)
        return mac.digest()

    def verify(signing_input: bytes, segment: bytes) -> bool:
        signature = read(segment)
        if signature is None:
            return False
        mac = prepared.copy()
        mac.update(signing_input)
        return compare(mac.digest(), signature)

    return sign, verify


def es256_raw(der: bytes) -> bytes:
    """The 64-byte ``r || s`` JWS form of a DER P-256 signature from OpenSSL, written low-S.

    Low-S is the one spelling of a signature that our verification accepts. Read by hand from
    the DER (``30 len 02 rlen r 02 slen s``, lengths in one byte for P-256): a fraction of the
    cost of ``decode_dss_signature``, which the tests hold it to.
    """
    r_length = der[3]
    r = der[4 : 4 + r_length]
    s = der[6 + r_length :]
    r = r[-32:].rjust(32, b"\x00")
    s = s[-32:].rjust(32, b"\x00")
    if s > _HALF_BYTES:
        s = (_P256_ORDER - int.from_bytes(s, "big")).to_bytes(32, "big")
    return r + s


def es256_der(signature: bytes) -> bytes | None:
    """The DER form of a 64-byte ``r || s`` P-256 signature; None unless r and s are in range.

    High-S is the malleated twin of a valid signature: refused, as is r or s out of [1, n-1].
    Built by hand (minimal INTEGERs, a zero byte in front of a set top bit): a fraction of the
    cost of two ints and ``encode_dss_signature``, which the tests hold it to.
    """
    r = signature[:32]
    s = signature[32:]
    if len(s) != 32 or not (_ZERO_BYTES < r < _ORDER_BYTES and _ZERO_BYTES < s <= _HALF_BYTES):
        return None
    r = r.lstrip(b"\x00")
    s = s.lstrip(b"\x00")
    if r[0] > 0x7F:
        r = b"\x00" + r
    if s[0] > 0x7F:
        s = b"\x00" + s
    body = _DER_INTEGER[len(r)] + r + _DER_INTEGER[len(s)] + s
    return _DER_SEQUENCE[len(body)] + body


def _es256_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    public = key.public_key
    private = key.private_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    verify_der = public.verify
    read = signature_reader(64)

    def sign(signing_input: bytes) -> bytes:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return es256_raw(private.sign(signing_input, _ECDSA))

    def verify(signing_input: bytes, segment: bytes) -> bool:
        signature = read(segment)
        if signature is None:
            return False
        der = es256_der(signature)
        if der is None:
            return False
        try:
            # Hashed by hashlib, handed over prehashed: a little less than cryptography's own
            # digest object per call.
            verify_der(der, sha256(signing_input).digest(), _ECDSA_PREHASHED)
        except InvalidSignature:
            return False
        return True

    return sign, verify


def _ed25519_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    # libsodium (PyNaCl) signs and verifies: about half of OpenSSL's time for Ed25519 here, with
    # the same deterministic signatures (the tests compare both), and a stricter verification:
    # it also refuses small-order points and non-canonical keys, so it accepts nothing that
    # cryptography would refuse.
    public = key.public_key
    private = key.private_key
    assert isinstance(public, ed25519.Ed25519PublicKey)
    raw_public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    secret = b""
    if private is not None:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        secret = nacl.bindings.crypto_sign_seed_keypair(seed)[1]
    read = signature_reader(64)
    sign_combined = nacl.bindings.crypto_sign
    open_combined = nacl.bindings.crypto_sign_open
    refused = (nacl.exceptions.CryptoError, ValueError, TypeError)

    def sign(signing_input: bytes) -> bytes:
        assert secret, "an Ed25519 key without its private half cannot sign"
        return sign_combined(signing_input, secret)[:64]

    def verify(signing_input: bytes, segment: bytes) -> bool:
        signature = read(segment)
        if signature is None:
            return False
        try:
            open_combined(signature + signing_input, raw_public)
        except refused:
            return False
        return True

    return sign, verify


def _pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    if key.secret is not None:
        return _hmac_pair(key)
    if key.algorithm == "ES256":
        return _es256_pair(key)
    return _ed25519_pair(key)


class Signer:
    """Signs claims under one key's fixed header."""

    def __init__(self, key: SigningKey) -> None:
        if not key.can_sign:
            raise ValueError(f"key {key.kid!r} cannot sign: it has no secret or private key")
        self.kid = key.kid
        self.algorithm = key.algorithm
        self._prefix = (header_segment(key.algorithm, key.kid) + ".").encode("ascii")
        self._sign = _pair(key)[0]

    def encode(self, claims_json: bytes) -> str:
        """The compact JWS of ``claims_json`` (the payload's exact bytes)."""
        signing_input = self._prefix + _b64url(claims_json)
        return (signing_input + b"." + _b64url(self._sign(signing_input))).decode("ascii")


def verify_table(
    keys: Iterable[SigningKey], *, unkeyed: SigningKey | None = None
) -> dict[str, VerifyFn]:
    """Header segment -> verification, for ``keys`` (each in a verifying state).

    An Ed25519 key answers to both its RFC 9864 name and ``EdDSA``. ``unkeyed``: an HMAC key that
    also answers to the kid-less header of 0.1 tokens, so an upgrade logs nobody out.
    """
    table: dict[str, VerifyFn] = {}
    for key in keys:
        verify = _pair(key)[1]
        names = ("Ed25519", "EdDSA") if key.algorithm == "Ed25519" else (key.algorithm,)
        for name in names:
            table[header_segment(name, key.kid)] = verify
    if unkeyed is not None:
        table[header_segment(unkeyed.algorithm, None)] = _pair(unkeyed)[1]
    return table


#: A token taken apart: its header segment (text, the key table's key), its signing input
#: (``header.payload``), its payload segment and its signature segment (ASCII bytes).
Parts = tuple[str, bytes, bytes, bytes]


def split(token: object) -> Parts | None:
    """A compact JWS taken apart (see ``Parts``); None unless it is ASCII text with two dots.

    The segments' characters are checked where that matters and no earlier: the header by the
    key table (its exact text), the signature by its key (its one spelling), the payload once
    its signature holds (``verified_claims``).
    """
    if type(token) is not str or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    data = token.encode("ascii")
    first = data.find(b".")
    last = data.rfind(b".")
    if first <= 0 or last == first:
        return None
    return token[:first], data[:last], data[first + 1 : last], data[last + 1 :]


def verified_claims(verify: VerifyFn, parts: Parts) -> dict[str, Any]:
    """The payload object of a token whose signature ``verify`` accepts; ``TokenInvalid`` else."""
    _, signing_input, payload, signature = parts
    # Base64url characters only, as every JOSE library requires: a holder of a shared secret
    # could sign anything, and the lenient decoder below would skip what is not base64.
    if not verify(signing_input, signature) or payload.translate(None, _TOKEN_ALPHABET):
        raise TokenInvalid()
    try:
        claims = orjson.loads(binascii.a2b_base64(payload.translate(_TO_STANDARD) + b"=="))
    except (orjson.JSONDecodeError, binascii.Error):
        raise TokenInvalid() from None
    if type(claims) is not dict:
        raise TokenInvalid()
    return claims


def decode(token: object, table: VerifyTable) -> dict[str, Any]:
    """The claims of a token signed by one of ``table``'s keys (signature only; no claim checks)."""
    parts = split(token)
    if parts is None:
        raise TokenInvalid()
    verify = table.get(parts[0])
    if verify is None:
        raise TokenInvalid()
    return verified_claims(verify, parts)


__all__ = [
    "MAX_TOKEN_LENGTH",
    "Parts",
    "Signer",
    "VerifyFn",
    "VerifyTable",
    "decode",
    "es256_der",
    "es256_raw",
    "header_segment",
    "signature_reader",
    "split",
    "verified_claims",
    "verify_table",
]
