"""ENS primary names: a readable name for a wallet, looked up at login, for display only.

The lookup is ENS's reverse-record flow through the JSON-RPC client: the registry's resolver for
``<address>.addr.reverse`` names the wallet, and that name counts only if its own resolver points
back at the wallet (forward verification), so nobody can claim another's name by a reverse
record alone. A name is never used for authorisation, and any failure (no record, a node that is
down or slow, a malformed answer, a name that is not in normalised form) leaves it out: the login
goes on without it. Answers, names and their absence, are cached per wallet for ``cache_ttl``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from .settings import check_cached_lookups
from .signatures import keccak256, parse_address

if TYPE_CHECKING:  # the RPC client needs httpx, an optional dependency
    from .rpc import RpcClient

logger = logging.getLogger("asgi_wallet_auth.ens")

#: The ENS registry: the same address on mainnet and the testnets ENS is deployed on.
ENS_REGISTRY = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
_RESOLVER = bytes.fromhex("0178b8bf")  # resolver(bytes32)
_NAME = bytes.fromhex("691f3431")  # name(bytes32)
_ADDR = bytes.fromhex("3b3b57de")  # addr(bytes32)
MAX_NAME_LENGTH = 255
# A label in normalised form, ASCII only: lower-case letters, digits, hyphens, and underscores
# only at its start (ENSIP-15). Other names (upper case, Unicode) are left out rather than
# shown in a form their owner may not recognise.
_LABEL_RE = re.compile(r"_*[a-z0-9-]+")


def namehash(name: str) -> bytes:
    """ENS's namehash (EIP-137) of a normalised ``name``; 32 zero bytes for the empty name."""
    node = bytes(32)
    if name:
        for label in reversed(name.split(".")):
            node = keccak256(node + keccak256(label.encode("utf-8")))
    return node


def reverse_node(address: str) -> bytes:
    """The reverse-record node of ``address``: namehash of ``<lower-case hex>.addr.reverse``."""
    return namehash(address[2:].lower() + ".addr.reverse")


def is_normalized(name: object) -> bool:
    """Whether ``name`` is an ENS name in normalised ASCII form (see ``_LABEL_RE``)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
        return False
    labels = name.split(".")
    if len(labels) < 2:
        return False
    for label in labels:
        if _LABEL_RE.fullmatch(label) is None:
            return False
        if len(label) >= 4 and label[2:4] == "--":  # ENSIP-15: no "xn--"-like labels
            return False
    return True


class _Unusable(Exception):
    """An answer that cannot be read as the function's return value."""


def _decode_address(word: bytes) -> str:
    if len(word) != 32 or word[:12] != bytes(12):
        raise _Unusable("not an address")
    return "0x" + word[12:].hex()


def _decode_string(data: bytes) -> str:
    if len(data) < 64 or int.from_bytes(data[:32], "big") != 32:
        raise _Unusable("not an ABI string")
    size = int.from_bytes(data[32:64], "big")
    if size > MAX_NAME_LENGTH or len(data) != 64 + -(-size // 32) * 32:
        raise _Unusable("ABI string of a wrong length")
    if any(data[64 + size :]):
        raise _Unusable("ABI string padding is not zero")
    try:
        return data[64 : 64 + size].decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusable("ABI string is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class NameSettings:
    """Primary-name lookup: ``rpc`` (default: the Ethereum verifier's client), the ``chain_id``
    ENS lives on, the ``registry`` address, ``timeout`` for one lookup and ``cache_ttl``."""

    rpc: RpcClient | None = field(default=None, compare=False)
    chain_id: int = 1
    registry: str = ENS_REGISTRY
    timeout: float = 3.0
    cache_ttl: float = 300.0
    cache_size: int = 10_000

    def __post_init__(self) -> None:
        if (
            isinstance(self.chain_id, bool)
            or not isinstance(self.chain_id, int)
            or self.chain_id < 1
        ):
            raise ValueError(f"chain_id must be a positive chain id; got {self.chain_id!r}")
        try:
            object.__setattr__(self, "registry", parse_address(self.registry))
        except Exception as exc:
            raise ValueError("registry must be the ENS registry's 0x address") from exc
        check_cached_lookups(
            timeout=self.timeout, cache_ttl=self.cache_ttl, cache_size=self.cache_size
        )


class NameResolver:
    """Looks up (and caches) primary names through one RPC client."""

    def __init__(self, settings: NameSettings, rpc: RpcClient, clock: Callable[[], float]):
        self.settings = settings
        self.rpc = rpc
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def primary_name(self, address: str) -> str | None:
        """The verified primary name of ``address`` (EIP-55), or None."""
        now = self.clock()
        hit = self._cache.get(address)
        if hit is not None and now < hit[0]:
            return hit[1]
        try:
            with anyio.fail_after(self.settings.timeout):
                name = await self._lookup(address)
        except Exception as exc:  # fail closed: no name rather than a wrong one
            logger.info("ENS name of %s not looked up: %s", address, type(exc).__name__)
            return None
        settings = self.settings
        if settings.cache_ttl > 0 and settings.cache_size > 0:
            if len(self._cache) >= settings.cache_size:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[address] = (now + settings.cache_ttl, name)
        return name

    async def _view(self, to: str, data: bytes) -> bytes | None:
        result = await self.rpc.eth_call(self.settings.chain_id, data, to=to)
        return None if result.reverted else result.output

    async def _resolver(self, node: bytes) -> str | None:
        word = await self._view(self.settings.registry, _RESOLVER + node)
        if word is None:
            return None
        resolver = _decode_address(word)
        return None if resolver == "0x" + "00" * 20 else resolver

    async def _lookup(self, address: str) -> str | None:
        node = reverse_node(address)
        resolver = await self._resolver(node)
        if resolver is None:
            return None
        answer = await self._view(resolver, _NAME + node)
        if not answer:
            return None
        name = _decode_string(answer)
        if not name or not is_normalized(name):
            return None
        # Forward verification: the name must resolve back to this very wallet.
        forward = namehash(name)
        resolver = await self._resolver(forward)
        if resolver is None:
            return None
        word = await self._view(resolver, _ADDR + forward)
        if word is None or _decode_address(word) != address.lower():
            return None
        return name


__all__ = [
    "ENS_REGISTRY",
    "MAX_NAME_LENGTH",
    "NameResolver",
    "NameSettings",
    "is_normalized",
    "namehash",
    "reverse_node",
]
