"""Webhooks: audit events POSTed to your URLs, signed, off the request path, retried with backoff.

Each delivery carries the Standard Webhooks headers: ``webhook-id`` (the event's id, the same on
every retry), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,`` + base64 of HMAC-SHA256 over ``id.timestamp.body``), so a receiver can refuse a forged
body, a stale one and a replayed one; ``WebhookVerifier`` does all three. A login never waits on
a webhook: events go into a bounded queue that workers started by ``WalletAuth.startup()`` drain;
a full queue, or a delivery that keeps failing, is dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from .events import EVENT_KINDS, AuthEvent, stop_task
from .webhook_signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerificationError,
    WebhookVerifier,
    secret_bytes,
    sign_webhook,
    verify_webhook,
)

if TYPE_CHECKING:  # httpx is an optional dependency (the rpc extra)
    import httpx

logger = logging.getLogger("asgi_wallet_auth.webhooks")

# Statuses worth another attempt: the receiver is overloaded, restarting or asks to wait.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: object) -> str:
    hint = "webhook URLs must be https:// URLs (http:// only to a loopback address)"
    if not isinstance(url, str) or url != url.strip():
        raise ValueError(hint)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ValueError(hint) from exc
    host = parts.hostname or ""
    if not host or parts.fragment or parts.username or parts.password:
        raise ValueError(hint + ", without user info or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        raise ValueError(hint)
    return url


def redact_url(url: str) -> str:
    """``scheme://host[:port]``: a webhook URL's path or query may hold a receiver's token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Deliver audit events to ``urls``, signed with ``secret``.

    ``events``: the kinds delivered (default: every kind). Each event is one delivery per URL,
    tried ``max_attempts`` times, waiting ``backoff`` seconds before the first retry and twice
    as long before each next one (at most ``max_backoff``, with jitter); ``timeout`` bounds one
    attempt. ``queue_size`` deliveries may wait; ``workers`` deliver at once.
    """

    urls: Collection[str]
    secret: str | bytes = field(repr=False)
    events: Collection[str] = EVENT_KINDS
    max_attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 5.0
    queue_size: int = 1000
    workers: int = 2

    def __post_init__(self) -> None:
        urls = self.urls
        if isinstance(urls, str) or not urls:
            raise ValueError("urls must be a non-empty list, e.g. ['https://hooks.example/auth']")
        object.__setattr__(self, "urls", tuple(_check_url(u) for u in urls))
        secret_bytes(self.secret)
        kinds = self.events
        if isinstance(kinds, str) or not kinds or any(k not in EVENT_KINDS for k in kinds):
            raise ValueError(f"webhook events must be a non-empty list of {', '.join(EVENT_KINDS)}")
        object.__setattr__(self, "events", frozenset(kinds))
        for name, low, high in (
            ("max_attempts", 1, 20),
            ("queue_size", 1, 1_000_000),
            ("workers", 1, 64),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an int in [{low}, {high}]; got {value!r}")
        for name in ("backoff", "max_backoff", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")


@dataclass(slots=True)
class _Delivery:
    url: str
    msg_id: str
    body: bytes
    attempt: int = 0


@dataclass(slots=True)
class WebhookStats:
    """What the dispatcher did: deliveries made, retries, and what it gave up (logged too)."""

    delivered: int = 0
    retried: int = 0
    dropped: int = 0
    failed: int = 0


class WebhookDispatcher:
    """The queue and its workers; ``submit`` never waits (an ``EventSink``)."""

    def __init__(self, settings: WebhookSettings, *, clock: Callable[[], float]) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("webhooks need httpx: pip install 'asgi-wallet-auth[rpc]'") from exc
        self.settings = settings
        self.clock = clock
        self.stats = WebhookStats()
        self._httpx = httpx
        self._secret = secret_bytes(settings.secret)
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        #: Set whenever a delivery is settled (made, dropped or given up): tests wait on it.
        self.settled = asyncio.Event()

    def submit(self, event: AuthEvent) -> None:
        """Queue one delivery of ``event`` per URL (if its kind is chosen); never blocks."""
        if event.kind not in self.settings.events:
            return
        body = json.dumps(
            {"type": f"wallet_auth.{event.kind}", "timestamp": event.at, "data": event.to_dict()},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        for url in self.settings.urls:
            self._put(_Delivery(url, f"msg_{event.id}", body))

    def _put(self, delivery: _Delivery) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue_size)
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self._give_up(delivery, "queue full", dropped=True)

    def _give_up(self, delivery: _Delivery, reason: str, *, dropped: bool) -> None:
        if dropped:
            self.stats.dropped += 1
        else:
            self.stats.failed += 1
        logger.warning(
            "webhook %s to %s given up after %d attempt(s): %s (dropped %d, failed %d so far)",
            delivery.msg_id,
            redact_url(delivery.url),
            delivery.attempt,
            reason,
            self.stats.dropped,
            self.stats.failed,
        )
        self.settled.set()

    async def startup(self) -> None:
        """Start the workers (and the connection pool they share)."""
        if self._workers:
            return
        if self._queue is None:
            self._queue = asyncio.Queue(self.settings.queue_size)
        # trust_env=False: deliveries go where configured, never through an environment's proxy.
        self._client = self._httpx.AsyncClient(
            timeout=self.settings.timeout, trust_env=False, follow_redirects=False
        )
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._run()) for _ in range(self.settings.workers)]

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            delivery = await queue.get()
            try:
                await self._attempt(delivery)
            except asyncio.CancelledError:
                self._give_up(delivery, "shut down during the attempt", dropped=True)
                raise
            finally:
                queue.task_done()

    async def _attempt(self, delivery: _Delivery) -> None:
        settings, client = self.settings, self._client
        assert client is not None
        delivery.attempt += 1
        timestamp = int(self.clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "asgi-wallet-auth-webhooks",
            ID_HEADER: delivery.msg_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_webhook(self._secret, delivery.msg_id, timestamp, delivery.body),
        }
        reason: str | None
        try:
            # The whole attempt, answer included, under one deadline: a receiver that trickles
            # its answer cannot hold a worker.
            with anyio.fail_after(settings.timeout):
                async with client.stream(
                    "POST", delivery.url, content=delivery.body, headers=headers
                ) as response:
                    status = response.status_code  # the body is never read
        except (TimeoutError, self._httpx.TimeoutException):
            reason = f"no answer in {settings.timeout} s"
        except self._httpx.HTTPError as exc:
            reason = type(exc).__name__
        else:
            if 200 <= status < 300:
                self.stats.delivered += 1
                self.settled.set()
                return
            reason = f"HTTP status {status}"
            if status not in _RETRY_STATUSES:
                self._give_up(delivery, reason + " (not retried)", dropped=False)
                return
        if delivery.attempt >= settings.max_attempts:
            self._give_up(delivery, reason, dropped=False)
            return
        self.stats.retried += 1
        delay = min(settings.backoff * 2 ** (delivery.attempt - 1), settings.max_backoff)
        delay *= 0.75 + random.random() / 2  # noqa: S311 - jitter, not a secret
        handle = asyncio.get_running_loop().call_later(delay, self._retry, delivery)
        self._timers.add(handle)

    def _retry(self, delivery: _Delivery) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if t.when() > now}
        self._put(delivery)

    async def aclose(self) -> None:
        """Let the workers drain the queue for at most ``timeout`` seconds, then stop them; what
        is still queued, under way or waiting to retry is dropped and counted."""
        queue = self._queue
        if self._workers and queue is not None:
            with anyio.move_on_after(self.settings.timeout):
                await queue.join()  # every queued delivery attempted once more, or the deadline
        for timer in self._timers:
            timer.cancel()
        pending = len(self._timers)
        self._timers.clear()
        workers, self._workers = self._workers, []
        for worker in workers:
            await stop_task(worker)
        while queue is not None and not queue.empty():
            queue.get_nowait()
            pending += 1
        if pending:
            self.stats.dropped += pending
            logger.warning("webhooks: %d delivery(ies) pending at shutdown dropped", pending)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookDispatcher",
    "WebhookSettings",
    "WebhookStats",
    "WebhookVerificationError",
    "WebhookVerifier",
    "redact_url",
    "sign_webhook",
    "verify_webhook",
]
