"""The one interface every chain's wallets are verified through, and the registry of chains.

Every login route (the secret flow's raw secret and sign-in message, Web3MQ's user login) and the
token check ask a ``ChainVerifier`` the same four questions; a new chain is one module with one
class implementing them, registered once in a ``ChainRegistry``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidRequest, WalletAuthError

#: A chain id as its sign-in message states it: an EIP-155 integer for Ethereum, a cluster name
#: (``mainnet``, ``devnet``, ...) for Solana. None: the verifier's configured default chain.
ChainId = int | str | None


@runtime_checkable
class ChainVerifier(Protocol):
    """One chain's wallets: address grammar, signature grammar, sign-in message, proof.

    ``did_type`` is the name the chain goes by on the wire (Web3MQ's ``did_type``, the token's
    ``did_type`` claim). Grammar methods raise ``InvalidRequest`` (400) and run before anything
    costly; ``verify`` raises ``AuthenticationFailed`` (401) for a signature that is not the
    address's, or ``StoreUnavailable`` (503) where proving it needs a service that did not answer.
    """

    @property
    def did_type(self) -> str:
        """The chain's name on the wire (``eth``, ``sol``)."""
        ...

    @property
    def max_signature_length(self) -> int:
        """The longest signature text accepted (a longer one is refused before it is parsed)."""
        ...

    def normalize(self, address: object) -> str:
        """The canonical text of ``address`` (EIP-55, base58, ...); 400 if malformed."""
        ...

    def parse_signature(self, value: object) -> Any:
        """The signature in the form ``verify`` takes; ``InvalidRequest`` if malformed."""
        ...

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
        """Parse and validate this chain's sign-in message; return the chain it names.

        Binds the message to this service (domain, URI), to the login (nonce, address) and to
        the clock (issued, expiry, not-before with ``skew``); allowed chains are the verifier's
        own setting.
        """
        ...

    async def verify(
        self, message: bytes, signature: Any, address: str, *, chain_id: ChainId = None
    ) -> None:
        """Return only if ``signature`` over ``message`` proves control of ``address``."""
        ...

    def account_id(self, address: str, chain_id: ChainId = None) -> str | None:
        """The CAIP-10 account id (``eip155:1:0x...``, ``solana:<ref>:<base58>``), if any.

        ``chain_id`` None: the chain a login that names none is checked on.
        """
        ...


@runtime_checkable
class ServiceConnections(Protocol):
    """A verifier that talks to services (RPC nodes): checked at startup, closed at shutdown."""

    async def startup(self) -> None:
        """Check the connections; ``ValueError`` for a misconfiguration that must stop startup."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


class ChainRegistry(Mapping[str, ChainVerifier]):
    """The chains a service accepts, by ``did_type``; the first one is the default.

    An address is matched to its chain by asking each verifier in turn to normalize it: chains'
    address grammars do not overlap (``0x`` + 40 hex is never base58 of 32 bytes), and when none
    accepts it the default chain's refusal is the answer.
    """

    def __init__(self, verifiers: Mapping[str, ChainVerifier]) -> None:
        if not verifiers:
            raise ValueError("at least one chain is required, e.g. chains=[EthereumVerifier()]")
        for name, verifier in verifiers.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"a chain's did_type must be a non-empty string; got {name!r}")
            if not isinstance(verifier, ChainVerifier):
                raise ValueError(
                    f"the verifier for {name!r} must implement ChainVerifier "
                    "(did_type, max_signature_length, normalize, parse_signature, check_sign_in, "
                    "verify)"
                )
        self._verifiers = dict(verifiers)

    def __getitem__(self, did_type: str) -> ChainVerifier:
        return self._verifiers[did_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._verifiers)

    def __len__(self) -> int:
        return len(self._verifiers)

    def for_did_type(self, did_type: object) -> ChainVerifier:
        """The verifier of ``did_type``; 400 naming the supported ones otherwise."""
        verifier = self._verifiers.get(did_type) if isinstance(did_type, str) else None
        if verifier is None:
            raise InvalidRequest("unsupported did_type; supported: " + ", ".join(sorted(self)))
        return verifier

    def for_address(self, address: object) -> tuple[ChainVerifier, str]:
        """The chain whose address grammar ``address`` fits, and its canonical form."""
        first: WalletAuthError | None = None
        for verifier in self._verifiers.values():
            try:
                return verifier, verifier.normalize(address)
            except WalletAuthError as error:
                first = first or error
        assert first is not None  # the registry is never empty
        raise first


__all__ = ["ChainId", "ChainRegistry", "ChainVerifier", "ServiceConnections"]
