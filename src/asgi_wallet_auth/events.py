"""Audit events: one record for every login, refusal, refresh, re-authentication, logout, device
key registration and userid binding; where they go (``on_event``, an ``EventStore``, webhooks).

An event names who (address, userid, chain), what (its kind, a refusal's envelope code), when and
from where (route, client address); never a secret, a signature, a token or a profile payload.
Events of a request that issues a token are recorded before the token is sent: when the record
cannot be written the token is not sent either (503), so every token handed out has its record.
Refusals are queued and written by a background worker, so a flood of bad requests never costs a
synchronous write; a full queue drops them, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from starlette.types import Scope

from .errors import StoreUnavailable

logger = logging.getLogger("asgi_wallet_auth.events")

LOGIN = "login"
REFUSAL = "refusal"
REFRESH = "refresh"
REAUTH = "reauth"
LOGOUT = "logout"
KEY_REGISTERED = "key_registered"
USERID_BOUND = "userid_bound"
#: Every event kind, in the order of a session's life.
EVENT_KINDS = (LOGIN, KEY_REGISTERED, USERID_BOUND, REFRESH, REAUTH, LOGOUT, REFUSAL)
#: Kinds whose request hands out a token: recorded before it is sent, or the request is a 503.
GRANTING_KINDS = frozenset({LOGIN, KEY_REGISTERED, USERID_BOUND, REFRESH, REAUTH})
DAY = 86_400.0
#: Where a route notes the wallet a request claims, for the refusal event if one follows.
_CLAIMED = "asgi_wallet_auth.claimed_address"


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One audit event. ``session`` is a digest of the session id (it correlates a session's
    events without being usable as anything); for a refusal, ``address`` is the one claimed."""

    kind: str
    at: float
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    address: str | None = None
    did_type: str | None = None
    userid: str | None = None
    account_id: str | None = None
    session: str | None = None
    route: str | None = None
    ip: str | None = None
    code: int | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (the webhook body's ``data``, ``events --json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthEvent:
        """The event of ``to_dict``'s output (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def session_digest(sid: object) -> str | None:
    """A short digest of a session id: the same session gives the same text in every event."""
    if not isinstance(sid, str) or not sid:
        return None
    return hashlib.sha256(b"asgi-wallet-auth session " + sid.encode()).hexdigest()[:24]


def note_claimed_address(scope: Scope, address: str) -> None:
    """Remember the wallet a request claims, so a refusal's event can name it."""
    scope[_CLAIMED] = address


def event_from_claims(
    kind: str, scope: Scope, claims: Mapping[str, Any], at: float, **more: Any
) -> AuthEvent:
    """The event of a request whose token carries ``claims``."""
    return AuthEvent(
        kind=kind,
        at=at,
        address=claims.get("sub"),
        did_type=claims.get("did_type"),
        userid=claims.get("userid"),
        account_id=claims.get("account_id"),
        session=session_digest(claims.get("sid") or claims.get("jti")),
        route=scope.get("path"),
        ip=client_ip(scope),
        **more,
    )


def refusal_event(scope: Scope, code: int, name: str, at: float) -> AuthEvent:
    """The event of a refused request: its envelope code and the refusal's class name."""
    claimed = scope.get(_CLAIMED)
    return AuthEvent(
        kind=REFUSAL,
        at=at,
        address=claimed if isinstance(claimed, str) else None,
        route=scope.get("path"),
        ip=client_ip(scope),
        code=code,
        detail=name,
    )


def client_ip(scope: Scope) -> str | None:
    """The peer address of the request, as the server saw it."""
    client = scope.get("client")
    return str(client[0]) if client and client[0] else None


#: ``async def on_event(event) -> None``: an application's sink for every event.
EventHook = Callable[[AuthEvent], Awaitable[None]]


@runtime_checkable
class EventStore(Protocol):
    """Where events are kept; ``SQLiteEventStore`` and ``PostgresEventStore`` are built in."""

    async def record(self, event: AuthEvent) -> None:
        """Keep ``event`` (raise if the store cannot be reached)."""
        ...

    async def query(
        self,
        *,
        since: float,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        address: str | None = None,
        limit: int = 1000,
    ) -> list[AuthEvent]:
        """Events at or after ``since`` (and before ``until``), oldest first, at most ``limit``."""
        ...

    async def purge(self, before: float) -> int:
        """Delete the events older than ``before``; how many."""
        ...


class MemoryEventStore:
    """Events in a list, for tests and demos (lost on restart)."""

    def __init__(self) -> None:
        self.events: list[AuthEvent] = []

    async def record(self, event: AuthEvent) -> None:
        """Keep ``event``."""
        self.events.append(event)

    async def query(
        self,
        *,
        since: float,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        address: str | None = None,
        limit: int = 1000,
    ) -> list[AuthEvent]:
        """Events at or after ``since`` (and before ``until``), oldest first."""
        found = [
            e
            for e in sorted(self.events, key=lambda e: e.at)
            if e.at >= since
            and (until is None or e.at < until)
            and (kinds is None or e.kind in kinds)
            and (address is None or e.address == address)
        ]
        return found[:limit]

    async def purge(self, before: float) -> int:
        """Delete the events older than ``before``."""
        kept = [e for e in self.events if e.at >= before]
        removed = len(self.events) - len(kept)
        self.events = kept
        return removed


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")


@dataclass(frozen=True, slots=True)
class EventSettings:
    """Where audit events go: ``store`` (an ``EventStore``), ``on_event`` (your coroutine).

    ``retention`` seconds of events are kept (older ones are purged at startup and then every
    ``purge_interval`` seconds); ``queue_size`` refusals may wait for the background writer;
    ``timeout`` bounds each write.
    """

    store: EventStore | None = field(default=None, compare=False)
    on_event: EventHook | None = field(default=None, compare=False)
    retention: float = 90 * DAY
    purge_interval: float = 3600.0
    queue_size: int = 10_000
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.store is not None and not isinstance(self.store, EventStore):
            raise ValueError(
                "events store must implement EventStore (record, query, purge), e.g. "
                "SQLiteEventStore('users.db')"
            )
        if self.on_event is not None and not callable(self.on_event):
            raise ValueError("on_event must be an async callable taking an AuthEvent")
        _positive("retention", self.retention)
        _positive("purge_interval", self.purge_interval)
        _positive("timeout", self.timeout)
        size = self.queue_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10_000_000:
            raise ValueError(f"queue_size must be an int in [1, 10000000]; got {size!r}")


class EventSink(Protocol):
    """Something events are handed to without waiting (the webhook dispatcher)."""

    def submit(self, event: AuthEvent) -> None:
        """Take ``event`` for later; never blocks, never raises."""
        ...


class EventLog:
    """Hands each event to its sinks: the store and ``on_event`` (awaited for a request that
    issues a token, queued for a refusal) and the webhook dispatcher (never awaited)."""

    def __init__(
        self,
        settings: EventSettings | None,
        *,
        sinks: Collection[EventSink] = (),
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.sinks = tuple(sinks)
        self.clock = clock
        self.recorded = 0
        self.failed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[AuthEvent] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._warned_idle = False
        self._stopping = False

    @property
    def writes(self) -> bool:
        """Whether events are written anywhere that is awaited (a store or ``on_event``)."""
        s = self.settings
        return s is not None and (s.store is not None or s.on_event is not None)

    async def emit(self, event: AuthEvent) -> None:
        """Record ``event``; a token-issuing one that cannot be written is a 503."""
        for sink in self.sinks:
            sink.submit(event)
        if not self.writes:
            return
        if event.kind not in GRANTING_KINDS:
            self._enqueue(event)
            return
        if not await self._write(event):
            raise StoreUnavailable()

    def emit_nowait(self, event: AuthEvent) -> None:
        """Queue ``event`` for the background writer (refusals; logouts, which must not fail)."""
        for sink in self.sinks:
            sink.submit(event)
        if self.writes:
            self._enqueue(event)

    def _enqueue(self, event: AuthEvent) -> None:
        assert self.settings is not None
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue_size)
        if self._worker is None and not self._warned_idle:
            self._warned_idle = True
            logger.warning(
                "audit events are queued but no writer runs: call WalletAuth.startup() from "
                "the application's lifespan"
            )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("audit event queue full: %d event(s) dropped so far", self.dropped)

    async def _write(self, event: AuthEvent) -> bool:
        settings = self.settings
        assert settings is not None
        try:
            await asyncio.wait_for(self._sinks(settings, event), settings.timeout)
        except Exception as exc:
            self.failed += 1
            logger.error("audit event %s not recorded: %s", event.kind, type(exc).__name__)
            return False
        self.recorded += 1
        return True

    @staticmethod
    async def _sinks(settings: EventSettings, event: AuthEvent) -> None:
        if settings.store is not None:
            await settings.store.record(event)
        if settings.on_event is not None:
            await settings.on_event(event)

    async def purge(self) -> int:
        """Delete the stored events older than the retention; how many (0 without a store)."""
        settings = self.settings
        if settings is None or settings.store is None:
            return 0
        return await settings.store.purge(self.clock() - settings.retention)

    async def startup(self) -> None:
        """Purge expired events and start the background writer."""
        if not self.writes or self._worker is not None:
            return
        assert self.settings is not None
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue_size)
        try:
            await self.purge()
        except Exception as exc:  # the database may come later; logins answer 503 until then
            logger.warning("could not purge old audit events: %s", type(exc).__name__)
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        settings, queue = self.settings, self._queue
        assert settings is not None and queue is not None
        # The flag, not only the cancellation, ends the loop: Python 3.11's wait_for can lose a
        # cancellation that arrives as the awaited write completes.
        while not self._stopping:
            try:
                event = await asyncio.wait_for(queue.get(), settings.purge_interval)
            except asyncio.TimeoutError:
                with contextlib.suppress(Exception):
                    await self.purge()
                continue
            await self._write(event)

    async def aclose(self) -> None:
        """Write what is queued (bounded by the write timeout each), then stop the writer."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._stopping = True
        await stop_task(worker)
        self._stopping = False
        queue = self._queue
        while queue is not None and not queue.empty():
            await self._write(queue.get_nowait())


async def stop_task(task: asyncio.Task[None], attempts: int = 10) -> None:
    """Cancel ``task`` and wait for it to end (cancelled again if a cancellation got lost)."""
    for _ in range(attempts):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=1.0)
        if done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
            return
    logger.error("a background task did not stop")


__all__ = [
    "EVENT_KINDS",
    "GRANTING_KINDS",
    "KEY_REGISTERED",
    "LOGIN",
    "LOGOUT",
    "REAUTH",
    "REFRESH",
    "REFUSAL",
    "USERID_BOUND",
    "AuthEvent",
    "EventHook",
    "EventLog",
    "EventSettings",
    "EventSink",
    "EventStore",
    "MemoryEventStore",
    "client_ip",
    "event_from_claims",
    "note_claimed_address",
    "refusal_event",
    "session_digest",
    "stop_task",
]
