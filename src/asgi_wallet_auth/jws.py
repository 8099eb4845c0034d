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
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import TokenInvalid
from .keys import SigningKey, b64url

#: Takes the signing input (``header.payload`` as ASCII bytes) and the raw signature.
VerifyFn = Callable[[bytes, bytes], bool]
SignFn = Callable[[bytes], bytes]
#: Header segment (base64url text) -> the verification of the one key it names.
VerifyTable = Mapping[str, VerifyFn]

MAX_TOKEN_LENGTH = 4096
_HASHES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
# The group order of P-256: a signature's r and s lie in [1, n-1], and s in the low half.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF = _P256_ORDER // 2
_ECDSA = ec.ECDSA(hashes.SHA256())
_TOKEN_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# A canonical encoding leaves the spare low bits of the last character zero: 4 of them when the
# length is 2 mod 4, 2 when it is 3 mod 4; 1 mod 4 is never a valid length. Anything else would
# be a second spelling of the same token.
_SPARE_MASK = {0: 0, 2: 0x0F, 3: 0x03}
_ALPHABET_INDEX = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)}
# bytes.translate: str.translate costs several times more on a token-sized segment.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def header_segment(algorithm: str, kid: str | None) -> str:
    """The one header segment this package writes for ``algorithm`` and ``kid``."""
    header: dict[str, str] = {"alg": algorithm}
    if kid is not None:
        header["kid"] = kid
    header["typ"] = "JWT"
    return b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))


def _b64(segment: str) -> bytes:
    # The characters were checked by split(); a2b_base64 ignores the padding it does not need.
    try:
        return binascii.a2b_base64(segment.encode("ascii").translate(_TO_STANDARD) + b"==")
    except binascii.Error:  # a length of 1 mod 4
        raise TokenInvalid() from None


def _decode(segment: str) -> bytes:
    # Only the canonical spelling of a signature: spare bits left non-zero would make a twin.
    mask = _SPARE_MASK.get(len(segment) % 4)
    if mask is None or _ALPHABET_INDEX[segment[-1]] & mask:
        raise TokenInvalid()
    return _b64(segment)


# -- per algorithm ---------------------------------------------------------------------------


def _hmac_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    assert key.secret is not None
    # Keyed once: each token copies the prepared state instead of keying HMAC again.
    prepared = hmac.new(key.secret, digestmod=_HASHES[key.algorithm])
    compare = hmac.compare_digest

    def sign(signing_input: bytes) -> bytes:
        mac = prepared.copy()
        mac.update(signing_input)
        return mac.digest()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        mac = prepared.copy()
        mac.update(signing_input)
        return compare(mac.digest(), signature)

    return sign, verify


def _es256_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    public = key.public_key
    private = key.private_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    verify_der = public.verify

    def sign(signing_input: bytes) -> bytes:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(signing_input, _ECDSA))
        if s > _P256_HALF:  # low-S: the one spelling of a signature that verifiers accept
            s = _P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        # High-S is the malleated twin of a valid signature: refused, as is r or s out of range.
        if not (0 < r < _P256_ORDER and 0 < s <= _P256_HALF):
            return False
        try:
            verify_der(encode_dss_signature(r, s), signing_input, _ECDSA)
        except InvalidSignature:
            return False
        return True

    return sign, verify


def _ed25519_pair(key: SigningKey) -> tuple[SignFn, VerifyFn]:
    public = key.public_key
    private = key.private_key
    assert isinstance(public, ed25519.Ed25519PublicKey)
    verify_raw = public.verify

    def sign(signing_input: bytes) -> bytes:
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return private.sign(signing_input)

    def verify(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            verify_raw(signature, signing_input)
        except InvalidSignature:
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
        signing_input = self._prefix + b64url(claims_json).encode("ascii")
        return signing_input.decode("ascii") + "." + b64url(self._sign(signing_input))


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


def split(token: object) -> tuple[str, str, str] | None:
    """The three segments of a compact JWS made of base64url characters; None otherwise."""
    if type(token) is not str or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    # Deleting every base64url character must leave exactly the two dots: a bytes.translate
    # does that in a fraction of a regular expression's time on a token-sized string.
    if token.encode("ascii").translate(None, _TOKEN_ALPHABET) != b"..":
        return None
    header, payload, signature = token.split(".")
    if not header or not payload or not signature:
        return None
    return header, payload, signature


def verified_claims(verify: VerifyFn, header: str, payload: str, signature: str) -> dict[str, Any]:
    """The payload object of a token whose signature ``verify`` accepts; ``TokenInvalid`` else."""
    signing_input = f"{header}.{payload}".encode("ascii")
    if not verify(signing_input, _decode(signature)):
        raise TokenInvalid()
    try:
        # No spelling check here: the payload's text is what was signed, so another spelling of
        # it has failed the signature already.
        claims = orjson.loads(_b64(payload))
    except orjson.JSONDecodeError:
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
    return verified_claims(verify, *parts)


__all__ = [
    "MAX_TOKEN_LENGTH",
    "Signer",
    "VerifyFn",
    "VerifyTable",
    "decode",
    "header_segment",
    "split",
    "verified_claims",
    "verify_table",
]
