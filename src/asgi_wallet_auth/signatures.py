"""Strict wallet-address and EIP-191 signature handling on the coincurve fast path.

eth-account's ``recover_message`` gives the same answers (the tests compare both on many random
keys) but spends most of its time in generic plumbing; here the digest, the recovery and the
address are computed directly, with every input checked before any curve arithmetic runs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import coincurve

from .errors import InvalidAddress, InvalidSignatureFormat, SignatureMismatch

try:  # A C keccak: about 2 us a hash, against about 11 us through pycryptodome's wrapper.
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        """Return the Keccak-256 digest (Ethereum's hash, not FIPS SHA3-256) of ``data``."""
        return _keccak_256(data).digest()  # type: ignore[no-any-return]

except ImportError:  # pragma: no cover - exercised only where safe-pysha3 cannot be installed
    from Crypto.Hash import keccak as _keccak

    def keccak256(data: bytes) -> bytes:
        """Return the Keccak-256 digest (Ethereum's hash, not FIPS SHA3-256) of ``data``."""
        return _keccak.new(digest_bits=256, data=data).digest()  # type: ignore[no-any-return,unused-ignore]


# The order of secp256k1; EIP-2 requires s <= n/2 so that each signature has exactly one form.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2

_HEX_DIGITS = b"0123456789abcdefABCDEF"
_SIGNATURE_RE = re.compile(r"0x[0-9a-fA-F]{130}")
ZERO_ADDRESS = "0x" + "0" * 40


# Byte tables for EIP-55: 0x20 (the ASCII case bit) where a digest nibble is >= 8, and where an
# address character is a letter; XOR-ing their AND into the text upper-cases exactly those letters.
_HIGH_NIBBLE = bytes.maketrans(b"0123456789abcdef", b"\0" * 8 + b"\x20" * 8)
_HEX_LETTER = bytes.maketrans(b"0123456789abcdef", b"\0" * 10 + b"\x20" * 6)


@functools.lru_cache(maxsize=4096)
def to_checksum_address(address_hex40: str) -> str:
    """EIP-55 form of 40 hex digits (any case, no ``0x``).

    Cached: a wallet's address is checksummed for its secret request, its login and the
    recovered signer, and the cache turns the repeats into a lookup.
    """
    lower = address_hex40.lower().encode("ascii")
    digest = keccak256(lower).hex()[:40].encode("ascii")
    flip = int.from_bytes(digest.translate(_HIGH_NIBBLE), "big") & int.from_bytes(
        lower.translate(_HEX_LETTER), "big"
    )
    return "0x" + (int.from_bytes(lower, "big") ^ flip).to_bytes(40, "big").decode("ascii")


def parse_address(value: object) -> str:
    """Validate a wallet address and return its EIP-55 form.

    All-lowercase and all-uppercase hex are accepted as the same identity; a mixed-case address
    must carry a correct EIP-55 checksum (a wrong one is most likely a typo). The zero address is
    refused: no key signs for it.
    """
    if not isinstance(value, str) or len(value) != 42:
        raise InvalidAddress()
    # The cache's keys are plain text: a str subclass (its own __eq__ or __hash__) is copied.
    return _eip55_form(value if type(value) is str else str.__str__(value))


@functools.lru_cache(maxsize=4096)
def _eip55_form(value: str) -> str:
    # Cached by the whole text (refusals are not cached): a wallet's address is read at its
    # secret request and its login, and the subject of every token it presents is checked
    # against its canonical form on first sight.
    # 0x and 40 hex digits, without a regular expression: the regex engine's cold code cost
    # more than the check itself.
    if (
        not value.isascii()
        or not value.startswith("0x")
        or value[2:].encode("ascii").translate(None, _HEX_DIGITS)
    ):
        raise InvalidAddress()
    body = value[2:]
    checksummed = to_checksum_address(body)
    # The canonical form itself needs no case comparisons: the common case goes first.
    if checksummed != value and body != body.lower() and body != body.upper():
        raise InvalidAddress("wallet address has an invalid EIP-55 checksum")
    if checksummed == ZERO_ADDRESS:
        raise InvalidAddress("the zero address cannot sign in")
    return checksummed


@dataclass(frozen=True, slots=True)
class Signature:
    """A parsed secp256k1 signature: ``r``, ``s`` and the recovery id (0 or 1)."""

    r: int
    s: int
    recovery_id: int

    def __post_init__(self) -> None:
        # Checked here too, so a Signature built by hand cannot skip what parse_signature enforces.
        if self.recovery_id not in (0, 1):
            raise InvalidSignatureFormat("signature recovery byte must be 0, 1, 27 or 28")
        if not 0 < self.r < SECP256K1_N or not 0 < self.s <= _HALF_N:
            raise InvalidSignatureFormat("signature is not in canonical low-s form")

    def to_compact(self) -> bytes:
        """The 65-byte ``r || s || recid`` form that coincurve expects."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes((self.recovery_id,))


def parse_signature(value: object) -> Signature:
    """Parse ``0x`` + 130 hex digits into a signature, refusing every non-canonical form.

    v must be 0, 1, 27 or 28 (EIP-155 style v values belong to transactions, not messages); r and s
    must lie in [1, n-1] and s must be in the lower half of the order (EIP-2), so a signature has no
    malleable twin that could pass as a different value.
    """
    if not isinstance(value, str) or _SIGNATURE_RE.fullmatch(value) is None:
        raise InvalidSignatureFormat()
    raw = bytes.fromhex(value[2:])
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    v = raw[64]
    return Signature(r, s, v - 27 if v in (27, 28) else v)


def eip191_digest(message: bytes) -> bytes:
    """The ``personal_sign`` digest: keccak256 of the EIP-191 version-0x45 prefix and message."""
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def public_key_to_address(uncompressed: bytes) -> str:
    """EIP-55 address of a 65-byte uncompressed secp256k1 public key."""
    return to_checksum_address(keccak256(uncompressed[1:])[-20:].hex())


def recover_address(message: bytes, signature: Signature | str) -> str:
    """Recover the EIP-55 address that signed ``message`` with ``personal_sign``.

    Raises ``InvalidSignatureFormat`` for a malformed signature and ``SignatureMismatch`` when the
    curve refuses it (no point for r, a point at infinity): every failure is a refusal, whatever
    coincurve raises.
    """
    sig = parse_signature(signature) if isinstance(signature, str) else signature
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            sig.to_compact(), eip191_digest(message), hasher=None
        )
        uncompressed = public_key.format(compressed=False)
        if not isinstance(uncompressed, bytes) or len(uncompressed) != 65:
            raise SignatureMismatch()
        # Never derive an identity from a point that is not on the curve, whatever returned it.
        coincurve.PublicKey(uncompressed)
    except Exception as exc:  # coincurve raises ValueError, TypeError or its own errors
        raise SignatureMismatch() from exc
    return public_key_to_address(uncompressed)


def verify_wallet_signature(message: bytes, signature: Signature | str, address: str) -> None:
    """Refuse unless ``signature`` over ``message`` recovers exactly to EIP-55 ``address``."""
    if recover_address(message, signature) != address:
        raise SignatureMismatch()


__all__ = [
    "SECP256K1_N",
    "Signature",
    "eip191_digest",
    "keccak256",
    "parse_address",
    "parse_signature",
    "public_key_to_address",
    "recover_address",
    "to_checksum_address",
    "verify_wallet_signature",
]
