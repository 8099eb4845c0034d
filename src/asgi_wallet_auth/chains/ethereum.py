"""Ethereum wallets: EIP-55 addresses, EIP-191 ``personal_sign`` and EIP-4361 sign-in messages."""

from __future__ import annotations

from collections.abc import Collection

from ..signatures import Signature, parse_address, parse_signature, verify_wallet_signature
from ..siwe import SiweMessage
from .base import ChainId


class EthereumVerifier:
    """``did_type`` "eth": recovery on the coincurve fast path, EIP-4361 with exact binding.

    ``chain_ids`` limits the EIP-4361 ``Chain ID`` a message may state (None: any chain).
    """

    did_type = "eth"
    max_signature_length = 132  # 0x + 65 bytes in hex

    def __init__(self, *, chain_ids: Collection[int] | None = None) -> None:
        if chain_ids is not None:
            chain_ids = frozenset(chain_ids)
            if not chain_ids or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in chain_ids
            ):
                raise ValueError(
                    "chain_ids must be None (any chain) or a non-empty set of positive chain ids, "
                    "e.g. chain_ids={1}"
                )
        self.chain_ids: frozenset[int] | None = chain_ids

    def normalize(self, address: object) -> str:
        """The EIP-55 form of the address (400 for anything else, and for the zero address)."""
        return parse_address(address)

    def parse_signature(self, value: object) -> Signature:
        """0x + 130 hex, v in {0, 1, 27, 28}, r and s in range, low s (400 otherwise)."""
        return parse_signature(value)

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
        """Parse the EIP-4361 message strictly and validate every binding; its chain id."""
        message = SiweMessage.parse(text)
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
        return message.chain_id

    async def verify(
        self, message: bytes, signature: Signature, address: str, *, chain_id: ChainId = None
    ) -> None:
        """EIP-191 recovery of ``message`` must give ``address`` (401 otherwise)."""
        verify_wallet_signature(message, signature, address)


__all__ = ["EthereumVerifier"]
