"""Signing and verifying webhooks: what the sender signs and the receiver's check.

The Standard Webhooks scheme: ``webhook-signature`` is ``v1,`` + base64 of HMAC-SHA256 over
``webhook-id.webhook-timestamp.body``. ``WebhookVerifier`` is the receiver's side: it refuses a
forged body, a timestamp outside its tolerance and a delivery id it has already accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_MIN_SECRET = 32


def secret_bytes(secret: object) -> bytes:
    """The webhook secret as bytes; ``ValueError`` when shorter than 32 bytes."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < _MIN_SECRET:
        raise ValueError(
            "the webhook secret must be at least 32 bytes (share it with the receiver only); "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return key


def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookVerificationError(ValueError):
    """A webhook that is not authentic, too old or too new, or seen before."""


class WebhookVerifier:
    """The receiver's check: ``WebhookVerifier(secret).verify(body, headers)`` -> the payload.

    Refuses a signature that is not the sender's (any of ``secret``'s entries, for rotation), a
    timestamp more than ``tolerance`` seconds from ``clock()``, and an id already accepted
    within the tolerance (a replay). Remembered ids are bounded by ``max_remembered``; past it
    new deliveries are refused rather than old ids forgotten early.
    """

    def __init__(
        self,
        secret: str | bytes | Collection[str | bytes],
        *,
        tolerance: float = 300.0,
        clock: Callable[[], float] = time.time,
        max_remembered: int = 100_000,
    ) -> None:
        keys = [secret] if isinstance(secret, (str, bytes)) else list(secret)
        if not keys:
            raise ValueError("give the webhook secret (or a list of them while rotating)")
        self._keys = [secret_bytes(k) for k in keys]
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
            raise ValueError("tolerance must be a number of seconds, e.g. 300")
        if not 0 < tolerance <= 3600:
            raise ValueError("tolerance must be in (0, 3600] seconds, e.g. 300")
        self.tolerance = float(tolerance)
        self.clock = clock
        self.max_remembered = max_remembered
        self._seen: dict[str, float] = {}

    def verify(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """The decoded payload of an authentic, fresh, first-seen delivery; else the error."""
        lower = {k.lower(): v for k, v in headers.items()}
        msg_id = lower.get(ID_HEADER)
        stamp = lower.get(TIMESTAMP_HEADER)
        signatures = lower.get(SIGNATURE_HEADER)
        if not msg_id or not stamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            raise WebhookVerificationError("webhook-timestamp is not Unix seconds")
        timestamp = int(stamp)
        now = self.clock()
        if abs(now - timestamp) > self.tolerance:
            raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
        expected = [sign_webhook(key, msg_id, timestamp, body)[3:] for key in self._keys]
        offered = [s[3:] for s in signatures.split() if s.startswith("v1,")]
        if not any(hmac.compare_digest(e.encode(), o.encode()) for e in expected for o in offered):
            raise WebhookVerificationError("webhook signature does not match")
        self._forget(now)
        if msg_id in self._seen:
            raise WebhookVerificationError("webhook already received (a replay)")
        if len(self._seen) >= self.max_remembered:
            raise WebhookVerificationError("too many webhooks in the tolerance window")
        self._seen[msg_id] = now + 2 * self.tolerance
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise WebhookVerificationError("webhook body is not JSON") from exc
        if not isinstance(payload, dict):
            raise WebhookVerificationError("webhook body is not a JSON object")
        return payload

    def _forget(self, now: float) -> None:
        # Ids outlive the tolerance on both sides of a timestamp, then cannot come back fresh.
        if self._seen and next(iter(self._seen.values())) <= now:
            self._seen = {k: v for k, v in self._seen.items() if v > now}


def verify_webhook(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> dict[str, Any]:
    """Check signature and timestamp of one delivery (no replay memory: use WebhookVerifier)."""
    verifier = WebhookVerifier(
        secret, tolerance=tolerance, clock=(lambda: now) if now is not None else time.time
    )
    return verifier.verify(body, headers)


__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookVerificationError",
    "WebhookVerifier",
    "secret_bytes",
    "sign_webhook",
    "verify_webhook",
]
