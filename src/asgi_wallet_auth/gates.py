"""Gates on chain state: scopes a wallet gets for what it holds (ERC-20, ERC-721, ERC-1155, or
your own check), evaluated at login and refresh through the JSON-RPC client.

A scope is granted when one of its rules holds; a rule that cannot be evaluated (node down, slow,
a malformed answer, a check that raises) does not hold: the scope is absent, never granted on a
failure. Answers are cached per (wallet, rule) for ``cache_ttl`` seconds of the service clock, so a
balance that changes shows after at most that long; failures are not cached. Scopes land in the
token's ``scope`` claim and in ``request.auth.scopes``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from .settings import check_cached_lookups
from .signatures import parse_address

if TYPE_CHECKING:  # the RPC client needs httpx, an optional dependency
    from .rpc import RpcClient

logger = logging.getLogger("asgi_wallet_auth.gates")

# RFC 6749 scope-token: printable ASCII but space, '"' and '\'.
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
_OWNER_OF = bytes.fromhex("6352211e")  # ownerOf(uint256)
_BALANCE_OF_1155 = bytes.fromhex("00fdd58e")  # balanceOf(address,uint256)
_UINT256_MAX = 2**256 - 1


class GateError(Exception):
    """A rule's call gave no usable answer (logged; the scope is not granted)."""


def check_scope_name(scope: object) -> str:
    """``scope`` if it is an RFC 6749 scope token (no spaces or quotes); ``ValueError`` else."""
    if not isinstance(scope, str) or _SCOPE_RE.fullmatch(scope) is None or scope == "authenticated":
        raise ValueError(
            f"a gate's scope must be a scope token such as 'holder' (printable ASCII, no spaces, "
            f"not 'authenticated'); got {scope!r}"
        )
    return scope


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _uint(name: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _UINT256_MAX:
        raise ValueError(f"{name} must be an integer in [{low}, 2**256-1]; got {value!r}")
    return value


def _contract(value: object) -> str:
    try:
        return parse_address(value)
    except Exception as exc:
        raise ValueError(
            f"contract must be a 0x address (EIP-55 if mixed case); got {value!r}"
        ) from exc


async def _call(rpc: RpcClient, chain_id: int, to: str, data: bytes) -> bytes | None:
    """The 32-byte word a view returns; None when the call reverted."""
    result = await rpc.eth_call(chain_id, data, to=to)
    if result.reverted:
        return None
    if len(result.output) != 32:  # no code there, or not the standard's function
        raise GateError(f"a 32-byte answer was expected, got {len(result.output)} bytes")
    return result.output


@runtime_checkable
class GateRule(Protocol):
    """One rule: the ``scope`` it grants, and whether ``address`` meets it."""

    @property
    def scope(self) -> str:
        """The scope granted when the rule holds."""
        ...

    async def holds(self, rpc: RpcClient | None, address: str) -> bool:
        """Whether ``address`` meets the rule; raise when it cannot be told."""
        ...


@dataclass(frozen=True, slots=True)
class Erc20Balance:
    """``scope`` for a balance of at least ``minimum`` (base units) of the ERC-20 ``contract``."""

    scope: str
    contract: str
    minimum: int
    chain_id: int = 1

    def __post_init__(self) -> None:
        check_scope_name(self.scope)
        object.__setattr__(self, "contract", _contract(self.contract))
        _uint("minimum", self.minimum, 1)
        _uint("chain_id", self.chain_id, 1)

    async def holds(self, rpc: RpcClient | None, address: str) -> bool:
        """``balanceOf(address) >= minimum``; a revert counts as not held."""
        assert rpc is not None
        word = await _call(rpc, self.chain_id, self.contract, _BALANCE_OF + _address_word(address))
        return word is not None and int.from_bytes(word, "big") >= self.minimum


@dataclass(frozen=True, slots=True)
class Erc721Owner:
    """``scope`` for owning any token of the ERC-721 ``contract``, or the token ``token_id``."""

    scope: str
    contract: str
    token_id: int | None = None
    chain_id: int = 1

    def __post_init__(self) -> None:
        check_scope_name(self.scope)
        object.__setattr__(self, "contract", _contract(self.contract))
        if self.token_id is not None:
            _uint("token_id", self.token_id)
        _uint("chain_id", self.chain_id, 1)

    async def holds(self, rpc: RpcClient | None, address: str) -> bool:
        """``ownerOf(token_id) == address``, or ``balanceOf(address) > 0`` for any token."""
        assert rpc is not None
        if self.token_id is None:
            data = _BALANCE_OF + _address_word(address)
            word = await _call(rpc, self.chain_id, self.contract, data)
            return word is not None and int.from_bytes(word, "big") > 0
        word = await _call(rpc, self.chain_id, self.contract, _OWNER_OF + _word(self.token_id))
        if word is None:  # ownerOf reverts for a token that does not exist
            return False
        if word[:12] != bytes(12):
            raise GateError("ownerOf answered something that is not an address")
        return word[12:] == bytes.fromhex(address[2:])


@dataclass(frozen=True, slots=True)
class Erc1155Balance:
    """``scope`` for at least ``minimum`` of token ``token_id`` of the ERC-1155 ``contract``."""

    scope: str
    contract: str
    token_id: int
    minimum: int = 1
    chain_id: int = 1

    def __post_init__(self) -> None:
        check_scope_name(self.scope)
        object.__setattr__(self, "contract", _contract(self.contract))
        _uint("token_id", self.token_id)
        _uint("minimum", self.minimum, 1)
        _uint("chain_id", self.chain_id, 1)

    async def holds(self, rpc: RpcClient | None, address: str) -> bool:
        """``balanceOf(address, token_id) >= minimum``."""
        assert rpc is not None
        data = _BALANCE_OF_1155 + _address_word(address) + _word(self.token_id)
        word = await _call(rpc, self.chain_id, self.contract, data)
        return word is not None and int.from_bytes(word, "big") >= self.minimum


#: ``async def check(address, rpc) -> bool``: your own rule (raise or return False to refuse).
CustomCheck = Callable[[str, "RpcClient | None"], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class CustomRule:
    """``scope`` when your ``check(address, rpc)`` returns exactly True."""

    scope: str
    check: CustomCheck = field(compare=False)

    def __post_init__(self) -> None:
        check_scope_name(self.scope)
        if not callable(self.check):
            raise ValueError("CustomRule.check must be an async callable (address, rpc) -> bool")

    async def holds(self, rpc: RpcClient | None, address: str) -> bool:
        """Your check's verdict; anything but ``True`` is not held."""
        return await self.check(address, rpc) is True


@dataclass(frozen=True, slots=True)
class GateSettings:
    """The rules and how they are asked: ``rpc`` (default: the Ethereum verifier's client),
    ``cache_ttl`` seconds an answer is reused, ``timeout`` for all rules of one login."""

    rules: Collection[GateRule]
    rpc: RpcClient | None = field(default=None, compare=False)
    cache_ttl: float = 60.0
    timeout: float = 5.0
    cache_size: int = 10_000

    def __post_init__(self) -> None:
        rules = self.rules
        if isinstance(rules, (str, bytes)) or not rules:
            raise ValueError("rules must be a non-empty list, e.g. [Erc20Balance(...)]")
        if any(not isinstance(r, GateRule) for r in rules):
            raise ValueError("each rule must be a GateRule (Erc20Balance, Erc721Owner, ...)")
        object.__setattr__(self, "rules", tuple(rules))
        check_cached_lookups(
            timeout=self.timeout, cache_ttl=self.cache_ttl, cache_size=self.cache_size
        )


class Gatekeeper:
    """Evaluates the rules of one ``GateSettings`` with its cache."""

    def __init__(self, settings: GateSettings, rpc: RpcClient | None, clock: Callable[[], float]):
        self.settings = settings
        self.rules: tuple[GateRule, ...] = tuple(settings.rules)
        self.rpc = rpc
        self.clock = clock
        self.scopes = frozenset(rule.scope for rule in self.rules)
        self._cache: dict[tuple[str, int], tuple[float, bool]] = {}

    async def granted(self, address: str) -> frozenset[str]:
        """The scopes ``address`` holds now (an Ethereum address; others hold none)."""
        try:
            with anyio.fail_after(self.settings.timeout):
                verdicts = await asyncio.gather(
                    *(self._holds(index, rule, address) for index, rule in enumerate(self.rules))
                )
        except TimeoutError:
            logger.warning(
                "gates: no verdict within %s s; no gate scope granted", self.settings.timeout
            )
            return frozenset()
        return frozenset(
            rule.scope for rule, held in zip(self.rules, verdicts, strict=True) if held
        )

    async def _holds(self, index: int, rule: GateRule, address: str) -> bool:
        key = (address, index)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        try:
            held = await rule.holds(self.rpc, address)
        except Exception as exc:  # fail closed: an unanswerable rule does not hold
            logger.warning("gate %r not evaluated: %s", rule.scope, type(exc).__name__)
            return False
        ttl, size = self.settings.cache_ttl, self.settings.cache_size
        if ttl > 0 and size > 0:
            if len(self._cache) >= size:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = (now + ttl, held)
        return held


def merge_scopes(previous: Any, gate_scopes: frozenset[str], granted: frozenset[str]) -> str | None:
    """The ``scope`` claim after a gate check: the scopes not owned by gates are kept, the gates'
    own are replaced by those ``granted``."""
    kept = [s for s in previous.split()] if isinstance(previous, str) else []
    kept = [s for s in kept if s not in gate_scopes]
    merged = kept + sorted(granted - set(kept))
    return " ".join(merged) if merged else None


__all__ = [
    "CustomCheck",
    "CustomRule",
    "Erc20Balance",
    "Erc721Owner",
    "Erc1155Balance",
    "GateError",
    "GateRule",
    "GateSettings",
    "Gatekeeper",
    "check_scope_name",
    "merge_scopes",
]
