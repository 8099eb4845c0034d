"""The wallets the command-line client signs with: one small class per chain.

Each builds its chain's sign-in message (EIP-4361, or SIWS on Solana) and signs text the way
that chain's wallets do, so the login flow in ``asgi_wallet_auth.client`` is the same for all.
"""

from __future__ import annotations

from typing import Protocol

from .client_key import UsageError, account
from .grammar import format_rfc3339
from .siwe import SiweError, SiweMessage


class WalletSigner(Protocol):
    """A local wallet: its address, its sign-in message, and its signature over text."""

    @property
    def address(self) -> str:
        """The address the service is asked for a secret for."""
        ...

    def sign_in_text(
        self, *, nonce: str, domain: str, uri: str, issued_at: float, statement: str | None
    ) -> str:
        """The chain's sign-in message for this login; ``UsageError`` naming a bad field."""
        ...

    def sign(self, text: str) -> str:
        """The signature of ``text`` as the service reads it."""
        ...


class EthereumSigner:
    """A secp256k1 key: EIP-4361 messages, EIP-191 ``personal_sign`` as ``0x`` + 130 hex."""

    def __init__(self, key: bytes, *, chain_id: int = 1) -> None:
        self._account = account(key, source="the private key")
        self.chain_id = chain_id

    @property
    def address(self) -> str:
        """The EIP-55 address."""
        return str(self._account.address)

    def sign_in_text(
        self, *, nonce: str, domain: str, uri: str, issued_at: float, statement: str | None
    ) -> str:
        """An EIP-4361 message whose nonce is the secret."""
        try:
            return str(
                SiweMessage(
                    domain=domain,
                    address=self.address,
                    statement=statement,
                    uri=uri,
                    version="1",
                    chain_id=self.chain_id,
                    nonce=nonce,
                    issued_at=format_rfc3339(issued_at),
                )
            )
        except SiweError as exc:
            raise UsageError(f"cannot build the sign-in message: {exc}") from None

    def sign(self, text: str) -> str:
        """EIP-191 ``personal_sign`` of ``text``."""
        from eth_account.messages import encode_defunct

        signature: str = self._account.sign_message(encode_defunct(text=text)).signature.hex()
        return signature if signature.startswith("0x") else "0x" + signature


class SolanaSigner:
    """An ed25519 key: SIWS messages, signatures in base58 as Solana wallets give them."""

    def __init__(self, seed: bytes, *, cluster: str = "mainnet") -> None:
        import nacl.signing

        from .base58 import b58encode

        self._key = nacl.signing.SigningKey(seed)
        self._address = b58encode(bytes(self._key.verify_key))
        self.cluster = cluster

    @property
    def address(self) -> str:
        """The base58 public key."""
        return self._address

    def sign_in_text(
        self, *, nonce: str, domain: str, uri: str, issued_at: float, statement: str | None
    ) -> str:
        """A SIWS message whose nonce is the secret."""
        from .siws import SiwsError, SiwsMessage

        try:
            return str(
                SiwsMessage.from_fields(
                    {
                        "domain": domain,
                        "address": self._address,
                        "statement": statement,
                        "uri": uri,
                        "version": "1",
                        "chain_id": self.cluster,
                        "nonce": nonce,
                        "issued_at": format_rfc3339(issued_at),
                    }
                )
            )
        except SiwsError as exc:
            raise UsageError(f"cannot build the sign-in message: {exc}") from None

    def sign(self, text: str) -> str:
        """The ed25519 signature of the UTF-8 text, in base58."""
        from .base58 import b58encode

        return b58encode(bytes(self._key.sign(text.encode("utf-8")).signature))


__all__ = ["EthereumSigner", "SolanaSigner", "WalletSigner"]
