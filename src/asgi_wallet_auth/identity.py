"""What an identity layer adds to a login: audit events and webhooks, gates on chain state and
ENS names, configured by one ``IdentitySettings`` (``WalletAuth(identity=...)``).

``IdentityLayer`` is what the session layer asks at each login and refresh (the claims gates and
names add) and tells about each event; it owns the background workers ``WalletAuth.startup()``
starts and ``WalletAuth.aclose()`` stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chains.base import ChainRegistry
from .ens import NameResolver, NameSettings
from .events import EventLog, EventSettings, EventSink, EventStore
from .gates import CustomRule, Gatekeeper, GateSettings, merge_scopes
from .webhooks import WebhookDispatcher, WebhookSettings

if TYPE_CHECKING:
    from .rpc import RpcClient


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """``events`` (audit store and hook), ``webhooks``, ``gates`` (scopes from chain state) and
    ``names`` (ENS primary names); each is optional and off when None."""

    events: EventSettings | None = None
    webhooks: WebhookSettings | None = None
    gates: GateSettings | None = None
    names: NameSettings | None = None

    def __post_init__(self) -> None:
        for name, kind in (
            ("events", EventSettings),
            ("webhooks", WebhookSettings),
            ("gates", GateSettings),
            ("names", NameSettings),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"identity {name} must be None or a {kind.__name__}(...)")


def _chain_rpc(chains: ChainRegistry) -> RpcClient | None:
    verifier = chains.get("eth")
    rpc = getattr(verifier, "rpc", None)
    return rpc


def _need_rpc(what: str, given: RpcClient | None, chains: ChainRegistry) -> RpcClient:
    rpc = given if given is not None else _chain_rpc(chains)
    if rpc is None:
        raise ValueError(
            f"{what} read the chain: pass rpc=RpcClient({{1: url}}) to them, or give "
            "EthereumVerifier(rpc=...) in chains"
        )
    from .rpc import RpcClient

    if not isinstance(rpc, RpcClient):
        raise ValueError(f"{what}: rpc must be an asgi_wallet_auth.rpc.RpcClient")
    return rpc


class IdentityLayer:
    """The running parts of one ``IdentitySettings`` (all of them no-ops where not configured)."""

    def __init__(
        self,
        settings: IdentitySettings | None,
        *,
        chains: ChainRegistry,
        clock: Callable[[], float],
    ) -> None:
        settings = settings if settings is not None else IdentitySettings()
        self.settings = settings
        self.webhooks = (
            None if settings.webhooks is None else WebhookDispatcher(settings.webhooks, clock=clock)
        )
        sinks: list[EventSink] = [] if self.webhooks is None else [self.webhooks]
        self.events = EventLog(settings.events, sinks=sinks, clock=clock)
        self.gates: Gatekeeper | None = None
        gates = settings.gates
        if gates is not None:
            rpc = gates.rpc
            if not all(isinstance(rule, CustomRule) for rule in gates.rules):
                rpc = _need_rpc("gates", rpc, chains)
                for rule in gates.rules:
                    chain_id = getattr(rule, "chain_id", None)
                    if chain_id is not None and chain_id not in rpc.chain_ids:
                        raise ValueError(
                            f"the gate for scope {rule.scope!r} reads chain {chain_id}, which "
                            f"the RpcClient has no URL for (it has {sorted(rpc.chain_ids)})"
                        )
            self.gates = Gatekeeper(gates, rpc, clock)
        self.names: NameResolver | None = None
        if settings.names is not None:
            rpc = _need_rpc("ENS names", settings.names.rpc, chains)
            if settings.names.chain_id not in rpc.chain_ids:
                raise ValueError(
                    f"ENS names are read on chain {settings.names.chain_id}, which the RpcClient "
                    f"has no URL for (it has {sorted(rpc.chain_ids)})"
                )
            self.names = NameResolver(settings.names, rpc, clock)

    @property
    def active(self) -> bool:
        """Whether logins gain claims here (gates or names configured)."""
        return self.gates is not None or self.names is not None

    async def login_claims(
        self, address: str, did_type: str, claims: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The claims a login of ``address`` gains: gate scopes and the ENS name, looked up at
        once; ``claims`` are those it has so far (a hook's ``scope`` is kept)."""
        if did_type != "eth" or not self.active:
            return {}
        gates, names = self.gates, self.names
        granted, name = await asyncio.gather(
            gates.granted(address) if gates is not None else _nothing(),
            names.primary_name(address) if names is not None else _nothing(),
        )
        extra: dict[str, Any] = {}
        if gates is not None:
            merged = merge_scopes(claims.get("scope"), gates.scopes, granted or frozenset())
            if merged is not None:
                extra["scope"] = merged
        if isinstance(name, str):
            extra["ens_name"] = name
        return extra

    async def refresh_scope(self, claims: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Whether a refresh re-evaluates the gates, and the ``scope`` claim it then carries."""
        gates = self.gates
        if gates is None or claims.get("did_type", "eth") != "eth":
            return False, None
        granted = await gates.granted(str(claims["sub"]))
        return True, merge_scopes(claims.get("scope"), gates.scopes, granted)

    async def startup(self) -> None:
        """Start the event writer and the webhook workers."""
        await self.events.startup()
        if self.webhooks is not None:
            await self.webhooks.startup()

    async def aclose(self) -> None:
        """Write queued events and stop the workers."""
        await self.events.aclose()
        if self.webhooks is not None:
            await self.webhooks.aclose()


async def _nothing() -> None:
    return None


def event_store_for(user_store: object) -> EventStore:
    """The built-in event store in ``user_store``'s database (SQLite or PostgreSQL)."""
    from .stores.sqlite import SQLiteUserStore

    if isinstance(user_store, SQLiteUserStore):
        from .stores.sqlite_events import SQLiteEventStore

        return SQLiteEventStore(user_store.path)
    try:
        from .stores.postgres import PostgresUserStore
    except ImportError:  # asyncpg not installed: it cannot be a PostgresUserStore
        PostgresUserStore = None  # type: ignore[assignment,misc]
    if PostgresUserStore is not None and isinstance(user_store, PostgresUserStore):
        from .stores.postgres_events import PostgresEventStore

        return PostgresEventStore(user_store)
    raise ValueError(
        "event_store_for knows SQLiteUserStore and PostgresUserStore; for another user store "
        "pass EventSettings(store=...) your own EventStore"
    )


__all__ = ["IdentityLayer", "IdentitySettings", "event_store_for"]
