"""Ethereum wallets: EIP-55 addresses, EIP-191 ``personal_sign`` and EIP-4361 sign-in messages.

Every wallet is first tried as an EOA (ecrecover on the coincurve fast path, no I/O). With a
JSON-RPC client configured, a signature that does not recover to the claimed address, or that
carries the ERC-6492 suffix, is then put to ERC-6492's universal validator in one deployless
``eth_call``: deployed EIP-1271 wallets, counterfactual ERC-6492 wallets and EIP-7702 accounts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidSignatureFormat, SignatureMismatch
from ..signatures import (
    SECP256K1_N,
    Signature,
    eip191_digest,
    parse_address,
    parse_signature,
    recover_address,
    verify_wallet_signature,
)
from ..siwe import SiweMessage
from .base import ChainId
from .erc6492 import INVALID, VALID, validator_call_data

if TYPE_CHECKING:  # the RPC client needs httpx, an optional dependency
    from ..rpc import RpcClient

logger = logging.getLogger("asgi_wallet_auth.chains")

_HALF_N = SECP256K1_N // 2
_HEX_RE = re.compile(r"0x[0-9a-fA-F]*")  # an even length is checked apart: a repeated pair is slow
#: A signature field's length without RPC: 0x + 65 bytes.
EOA_SIGNATURE_LENGTH = 132


@dataclass(frozen=True, slots=True)
class EthereumSignature:
    """A signature as sent (``raw``), with its EOA form (``eoa``) where it has one."""

    raw: bytes
    #: None where ecrecover cannot apply: not 65 bytes, outside the EOA grammar, or ERC-6492.
    eoa: Signature | None


class EthereumVerifier:
    """``did_type`` "eth": recovery on the coincurve fast path, EIP-4361 with exact binding.

    ``chain_ids`` limits the EIP-4361 ``Chain ID`` a message may state (None: any chain).
    ``rpc`` (an ``asgi_wallet_auth.rpc.RpcClient``) turns on contract wallets; a login that
    names no chain (raw secret, Web3MQ) is checked on ``default_chain_id``, by default the
    client's only chain. ``max_signature_bytes`` caps a contract wallet's signature.
    """

    did_type = "eth"

    def __init__(
        self,
        *,
        chain_ids: Collection[int] | None = None,
        rpc: RpcClient | None = None,
        default_chain_id: int | None = None,
        max_signature_bytes: int = 16 * 1024,
    ) -> None:
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
        if (
            isinstance(max_signature_bytes, bool)
            or not isinstance(max_signature_bytes, int)
            or not 65 <= max_signature_bytes <= 1024 * 1024
        ):
            raise ValueError("max_signature_bytes must be an integer in [65, 1048576], e.g. 16384")
        self.max_signature_bytes = max_signature_bytes
        self.rpc = rpc
        self.default_chain_id = self._default_chain(rpc, default_chain_id)

    @staticmethod
    def _default_chain(rpc: RpcClient | None, default_chain_id: int | None) -> int | None:
        if rpc is None:
            if default_chain_id is not None:
                raise ValueError(
                    "default_chain_id only applies to contract wallets: pass rpc=RpcClient(...) "
                    "too, or drop default_chain_id"
                )
            return None
        from ..rpc import RpcClient  # here, not at import: only a service with RPC needs httpx

        if not isinstance(rpc, RpcClient):
            raise ValueError(
                "rpc must be an asgi_wallet_auth.rpc.RpcClient, e.g. RpcClient({1: url})"
            )
        if default_chain_id is None:
            if len(rpc.chain_ids) != 1:
                raise ValueError(
                    "rpc serves several chains: name the one for logins without a Chain ID, "
                    f"e.g. default_chain_id={min(rpc.chain_ids)}"
                )
            (default_chain_id,) = rpc.chain_ids
        if default_chain_id not in rpc.chain_ids or isinstance(default_chain_id, bool):
            raise ValueError(
                f"default_chain_id {default_chain_id!r} has no RPC URL; "
                f"use one of {sorted(rpc.chain_ids)} or add its URL to the RpcClient"
            )
        return default_chain_id

    async def startup(self) -> None:
        """Ask each RPC node its chain id: a node of another chain stops startup (``ValueError``);
        one that does not answer is logged, since ordinary wallets sign in without it."""
        if self.rpc is None:
            return
        from ..rpc import ChainUnavailable

        try:
            await self.rpc.check()
        except ChainUnavailable as exc:
            logging.getLogger("asgi_wallet_auth").warning(
                "contract wallets unavailable until the RPC node answers: %s", exc.msg
            )

    async def aclose(self) -> None:
        """Close the RPC connection pools."""
        if self.rpc is not None:
            await self.rpc.aclose()

    @property
    def max_signature_length(self) -> int:
        """The longest signature text (``0x`` + hex) a route reads for this verifier."""
        return EOA_SIGNATURE_LENGTH if self.rpc is None else 2 + 2 * self.max_signature_bytes

    def account_id(self, address: str, chain_id: ChainId = None) -> str:
        """``eip155:<chain>:<address>``; a login naming no chain counts as ``default_chain_id``
        (Ethereum mainnet, 1, where no RPC chain is configured)."""
        chain = chain_id if isinstance(chain_id, int) else (self.default_chain_id or 1)
        return f"eip155:{chain}:{address}"

    def normalize(self, address: object) -> str:
        """The EIP-55 form of the address (400 for anything else, and for the zero address)."""
        return parse_address(address)

    def parse_signature(self, value: object) -> Signature | EthereumSignature:
        """0x + 130 hex, v in {0, 1, 27, 28}, r and s in range, low s (400 otherwise).

        With ``rpc``: any whole number of bytes up to ``max_signature_bytes``, since a contract
        wallet's signature has its own format; only the high-s twin of an EOA signature is still
        refused, so that no ECDSA signature gains a second valid form.
        """
        if self.rpc is None:
            return parse_signature(value)
        if isinstance(value, str) and len(value) == EOA_SIGNATURE_LENGTH:
            try:  # the common case, an EOA's signature, at the cost of the plain grammar
                return EthereumSignature(bytes.fromhex(value[2:]), parse_signature(value))
            except InvalidSignatureFormat:
                pass  # some other 65 bytes: a contract's, a high-s twin or no hex at all
        if (
            not isinstance(value, str)
            or len(value) > 2 + 2 * self.max_signature_bytes
            or len(value) % 2
            or _HEX_RE.fullmatch(value) is None
        ):
            raise InvalidSignatureFormat(
                "signature must be 0x and whole bytes in hex, "
                f"at most {self.max_signature_bytes} bytes"
            )
        raw = bytes.fromhex(value[2:])
        if len(raw) == 65 and raw[64] in (0, 1, 27, 28):
            # Outside the EOA grammar (which returned above) with an EOA's v: refuse the one
            # shape that is another EOA signature's malleable twin; the rest (r or s zero or out
            # of range) no key made, and only a contract can accept.
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
            if 0 < r < SECP256K1_N and _HALF_N < s < SECP256K1_N:
                raise InvalidSignatureFormat("signature is not in canonical low-s form")
        # ERC-6492 wrapped or any other length or form: for the chain's validator to judge.
        return EthereumSignature(raw, None)

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
        self,
        message: bytes,
        signature: Signature | EthereumSignature,
        address: str,
        *,
        chain_id: ChainId = None,
    ) -> None:
        """EIP-191 recovery of ``message`` must give ``address``; with ``rpc``, else the chain's
        ERC-6492 validator must answer valid (401 otherwise, 503 if the node cannot answer)."""
        rpc = self.rpc
        if rpc is None:
            eoa = signature if isinstance(signature, Signature) else signature.eoa
            if eoa is None:
                raise SignatureMismatch()
            verify_wallet_signature(message, eoa, address)
            return
        if isinstance(signature, Signature):  # parsed by the EOA grammar alone: rebuild its bytes
            raw = signature.to_compact()[:64] + bytes((signature.recovery_id + 27,))
            signature = EthereumSignature(raw, signature)
        if signature.eoa is not None:
            try:
                if recover_address(message, signature.eoa) == address:
                    return
            except SignatureMismatch:
                pass  # no EOA key made it; a contract may still accept these bytes
        await self._verify_by_call(rpc, message, signature.raw, address, chain_id)

    async def _verify_by_call(
        self, rpc: RpcClient, message: bytes, raw: bytes, address: str, chain_id: ChainId
    ) -> None:
        from ..rpc import ChainUnavailable

        chain = self.default_chain_id if chain_id is None else chain_id
        if isinstance(chain, bool) or not isinstance(chain, int):
            raise ChainUnavailable("no node is configured for this chain")
        result = await rpc.eth_call(
            chain, validator_call_data(address, eip191_digest(message), raw)
        )
        if result.reverted or result.output == INVALID:
            raise SignatureMismatch()
        if result.output != VALID:
            # Our validator returns exactly one byte; anything else is not its answer.
            logger.warning("chain %s: the signature validator returned an unexpected reply", chain)
            raise ChainUnavailable()


__all__ = ["EOA_SIGNATURE_LENGTH", "EthereumSignature", "EthereumVerifier"]
