"""Solana wallets: base58 ed25519 addresses, ed25519 signatures, SIWS and the off-chain envelope.

A Solana address is the base58 text of a 32-byte ed25519 public key, and a wallet's message
signature is plain ed25519 over the message bytes (``signMessage``, ``solana:signIn``). Hardware
wallets cannot sign arbitrary bytes: the Ledger Solana app signs an *off-chain message*, the text
wrapped in an envelope that starts with ``b"\\xffsolana offchain"`` (a byte no transaction can
start with). A signature over an envelope that wraps exactly the expected message, for exactly
this signer, is accepted too; the envelope layouts are listed in ``ENVELOPES``.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Collection

import nacl.exceptions
import nacl.signing

from ..base58 import decode_fixed
from ..errors import InvalidAddress, InvalidSignatureFormat, SignatureMismatch
from ..siws import CHAIN_IDS, CLUSTERS, SiwsMessage
from .base import ChainId

#: The signing domain every off-chain message starts with (Solana's off-chain message proposal).
SIGNING_DOMAIN = b"\xffsolana offchain"
#: Off-chain envelope layouts a signature may be over, besides the bare message:
#: ``v0-legacy`` (domain, version 0, format, u16 length: the Solana CLI and Ledger app 1.3-1.7),
#: ``v0`` (domain, version 0, a 32-byte application domain, format, signers, u16 length: the
#: Ledger app since 1.8; the application domain must be all zero) and ``v1`` (domain, version 1,
#: signers, then the message: what ``solana:signIn`` 1.1 asks wallets for).
ENVELOPES = ("v0-legacy", "v0", "v1")
#: Formats 0 (restricted ASCII) and 1 (limited UTF-8) are for envelopes up to one packet.
MAX_LEDGER_ENVELOPE = 1232
#: CAIP-2 ids of the public clusters: ``solana:`` and the first 32 characters of the genesis hash.
CAIP2_CHAIN_IDS = {
    "mainnet": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
    "devnet": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
    "testnet": "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z",
}

_ZERO_KEY = b"\0" * 32
_NO_APPLICATION_DOMAIN = b"\0" * 32
# Standard base64 of 64 bytes: 86 characters, the last with its 4 unused bits zero, then "==".
_BASE64_SIGNATURE_RE = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==")
# What the Ledger app shows as text under format 0: printable ASCII and line feeds.
_RESTRICTED_ASCII_RE = re.compile(rb"[\x20-\x7e\n]*")


@functools.lru_cache(maxsize=4096)
def _public_key(address: str) -> bytes | None:
    # Cached: a login decodes its address for the secret, for the login and for the proof.
    return decode_fixed(address, 32)


def parse_solana_address(value: object) -> str:
    """The address itself if it is the base58 text of a 32-byte key (``InvalidAddress`` if not).

    Base58 has one spelling per byte string, so the text is already canonical; the length rule
    refuses the spellings with a leading ``1`` too many or too few. The all-zero key (the System
    Program's address) is refused like Ethereum's zero address: no key signs for it.
    """
    key = _public_key(value) if isinstance(value, str) else None
    if key is None:
        raise InvalidAddress("wallet address is not the base58 text of a 32-byte public key")
    if key == _ZERO_KEY:
        raise InvalidAddress("the all-zero address cannot sign in")
    assert isinstance(value, str)
    return value


def parse_solana_signature(value: object) -> bytes:
    """The 64 bytes of a base58 or padded standard base64 signature (``InvalidSignatureFormat``).

    The two never overlap: base64 of 64 bytes always ends with ``==``, base58 never contains ``=``.
    """
    if isinstance(value, str):
        if value.endswith("="):
            if _BASE64_SIGNATURE_RE.fullmatch(value) is not None:
                return base64.b64decode(value)
        else:
            signature = decode_fixed(value, 64)
            if signature is not None:
                return signature
    raise InvalidSignatureFormat("signature must be the base58 or base64 text of 64 bytes")


def offchain_envelopes(
    message: bytes, public_key: bytes, layouts: Collection[str] = ENVELOPES
) -> list[bytes]:
    """Every off-chain envelope of ``layouts`` that wraps exactly ``message`` for one signer.

    The format byte is a label the wallet chooses: 0 when the text is printable ASCII and line
    feeds (what the Ledger app accepts as format 0), 1 otherwise or as well, and 2 only for an
    envelope too long for the first two.
    """
    envelopes: list[bytes] = []
    length = len(message)
    ascii_text = _RESTRICTED_ASCII_RE.fullmatch(message) is not None

    def formats(header: int) -> tuple[int, ...]:
        if header + length > MAX_LEDGER_ENVELOPE:
            return (2,)
        return (0, 1) if ascii_text else (1,)

    if 0 < length <= 0xFFFF - 85:  # a u16 length that is never zero
        size = length.to_bytes(2, "little")
        if "v0-legacy" in layouts:
            for fmt in formats(20):
                envelopes.append(SIGNING_DOMAIN + bytes((0, fmt)) + size + message)
        if "v0" in layouts:
            for fmt in formats(85):
                envelopes.append(
                    SIGNING_DOMAIN
                    + b"\0"
                    + _NO_APPLICATION_DOMAIN
                    + bytes((fmt, 1))
                    + public_key
                    + size
                    + message
                )
    if "v1" in layouts and length:
        envelopes.append(SIGNING_DOMAIN + b"\x01\x01" + public_key + message)
    return envelopes


def caip10_account_id(address: str, cluster: str) -> str | None:
    """The CAIP-10 account id of ``address`` on a public cluster (None for ``localnet``)."""
    caip2 = CAIP2_CHAIN_IDS.get(CHAIN_IDS.get(cluster, ""))
    return None if caip2 is None else f"{caip2}:{address}"


def _verifies(key: nacl.signing.VerifyKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(message, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


class SolanaVerifier:
    """``did_type`` "sol": ed25519 through libsodium, SIWS with exact binding, Ledger envelopes.

    ``chain_ids`` are the clusters a SIWS ``Chain ID`` may name (bare or ``solana:`` form;
    default mainnet only; None: any of ``CLUSTERS``). ``envelopes`` are the off-chain layouts a
    signature may be over besides the bare message (default all of ``ENVELOPES``; empty: none).
    """

    did_type = "sol"
    max_signature_length = 88  # base58 or base64 of 64 bytes: at most 88 characters

    def __init__(
        self,
        *,
        chain_ids: Collection[str] | None = ("mainnet",),
        envelopes: Collection[str] = ENVELOPES,
    ) -> None:
        if chain_ids is not None:
            if (
                isinstance(chain_ids, (str, bytes))
                or not chain_ids
                or not all(isinstance(c, str) and c in CHAIN_IDS for c in chain_ids)
            ):
                raise ValueError(
                    "chain_ids must be None (any cluster) or a non-empty set of clusters among "
                    f"{', '.join(CLUSTERS)} (or their 'solana:' forms), "
                    "e.g. chain_ids={'mainnet'}"
                )
            chain_ids = frozenset(CHAIN_IDS[c] for c in chain_ids)
        if isinstance(envelopes, (str, bytes)) or not all(e in ENVELOPES for e in envelopes):
            raise ValueError(
                f"envelopes must be a set of layouts among {', '.join(ENVELOPES)}, "
                "e.g. envelopes={'v0'}; envelopes=() accepts bare-message signatures only"
            )
        self.chain_ids: frozenset[str] | None = chain_ids
        self.envelopes: frozenset[str] = frozenset(envelopes)

    @property
    def default_chain_id(self) -> str:
        """The cluster of a login that names none (a raw-secret login): mainnet when allowed."""
        allowed = CLUSTERS if self.chain_ids is None else self.chain_ids
        return next(c for c in CLUSTERS if c in allowed)

    def account_id(self, address: str, chain_id: ChainId = None) -> str | None:
        """``solana:<genesis-hash prefix>:<address>`` (None on ``localnet``, which has none)."""
        cluster = chain_id if isinstance(chain_id, str) else self.default_chain_id
        return caip10_account_id(address, cluster)

    def normalize(self, address: object) -> str:
        """The base58 address itself (400 for any other text, and for the all-zero key)."""
        return parse_solana_address(address)

    def parse_signature(self, value: object) -> bytes:
        """64 bytes as base58 or padded base64 (400 otherwise, 63 and 65 bytes included)."""
        return parse_solana_signature(value)

    def check_sign_in(
        self,
        text: str,
        *,
        domain: str,
        uri: str,
        nonce: str,
        address: str,
        now: float,
        skew: float,
    ) -> ChainId:
        """Parse the SIWS message strictly and validate every binding; its cluster name."""
        message = SiwsMessage.parse(text)
        message.validate(
            domain=domain,
            uri=uri,
            nonce=nonce,
            address=address,
            chain_ids=self.chain_ids,
            now=now,
            skew=skew,
        )
        message.check_issuance(now=now, skew=skew)
        return message.cluster

    async def verify(
        self, message: bytes, signature: bytes, address: str, *, chain_id: ChainId = None
    ) -> None:
        """An ed25519 signature by ``address`` over ``message`` or an envelope of it (else 401).

        The chain does not enter the signature: one key is one address on every cluster.
        """
        public_key = _public_key(address) if isinstance(address, str) else None
        if public_key is None:
            raise InvalidAddress("wallet address is not the base58 text of a 32-byte public key")
        if not isinstance(signature, bytes) or len(signature) != 64:
            raise InvalidSignatureFormat("signature must be the base58 or base64 text of 64 bytes")
        if not isinstance(message, bytes):
            raise TypeError("message must be bytes")
        # libsodium refuses small-order and non-canonical keys, small-order R and a
        # non-canonical S inside every verification, so no key check is needed beforehand.
        key = nacl.signing.VerifyKey(public_key)
        if _verifies(key, message, signature):
            return
        for envelope in offchain_envelopes(message, public_key, self.envelopes):
            if _verifies(key, envelope, signature):
                return
        raise SignatureMismatch()


__all__ = [
    "CAIP2_CHAIN_IDS",
    "ENVELOPES",
    "MAX_LEDGER_ENVELOPE",
    "SIGNING_DOMAIN",
    "SolanaVerifier",
    "caip10_account_id",
    "offchain_envelopes",
    "parse_solana_address",
    "parse_solana_signature",
]
