"""Webhooks to a real receiver on loopback: signed deliveries the receiver's helper verifies,
forged, stale and replayed ones refused, and a receiver that is down, slow or refusing never
delaying a login, with retries bounded and every drop counted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.events import AuthEvent
from asgi_wallet_auth.identity import IdentitySettings
from asgi_wallet_auth.webhooks import (
    WebhookSettings,
    WebhookVerificationError,
    WebhookVerifier,
    sign_webhook,
    verify_webhook,
)
from tests.anvil_node import free_port
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, login, make_auth
from tests.webhook_receiver import HOLD, Receiver

SECRET = "webhook-secret-shared-with-the-receiver-0123456789"


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait for background work, bounded in time (the workers run on the event loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "the background work did not happen in time"
        await asyncio.sleep(0.005)


def hooked(clock: FakeClock, url: str, **settings: Any) -> WalletAuth:
    options: dict[str, Any] = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 2.0}
    options.update(settings)
    return make_auth(
        clock,
        identity=IdentitySettings(webhooks=WebhookSettings([url], SECRET, **options)),
        revocation=True,
    )


async def test_events_arrive_signed_and_the_receiver_helper_accepts_each_once(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    with Receiver() as receiver:
        auth = hooked(clock, receiver.url)
        await auth.startup()
        try:
            async with client_for(auth) as client:
                secret = await get_secret(client, wallet.address)
                data = await login(client, wallet)
                token = data["access_token"]
                await client.get("/refresh", headers={"authorization": f"Bearer {token}"})
            await until(lambda: len(receiver.deliveries) == 2)
        finally:
            await auth.aclose()
    verifier = WebhookVerifier(SECRET, clock=clock)
    kinds = []
    for delivery in receiver.deliveries:
        payload = verifier.verify(delivery.body, delivery.headers)
        kinds.append(payload["type"])
        assert payload["data"]["address"] == wallet.address
        assert delivery.headers["webhook-id"] == "msg_" + payload["data"]["id"]
        # Nothing that could be replayed or that proves anything is in a delivery.
        for leaked in (secret, token, sign_text(wallet, secret)[2:40], SECRET):
            assert leaked not in delivery.body.decode()
        with pytest.raises(WebhookVerificationError, match="replay"):
            verifier.verify(delivery.body, delivery.headers)
    assert sorted(kinds) == ["wallet_auth.login", "wallet_auth.refresh"]  # two workers
    assert auth.identity.webhooks is not None
    assert auth.identity.webhooks.stats.delivered == 2


def signed(
    body: bytes, *, at: float = T0, secret: str = SECRET, msg_id: str = "msg_1"
) -> dict[str, str]:
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at)),
        "Webhook-Signature": sign_webhook(secret, msg_id, int(at), body),
    }


def test_forged_stale_or_malformed_deliveries_are_refused(clock: FakeClock) -> None:
    body = json.dumps({"type": "wallet_auth.login", "data": {}}).encode()
    check = WebhookVerifier(SECRET, clock=clock, tolerance=300)
    assert check.verify(body, signed(body))["type"] == "wallet_auth.login"
    refusals = [
        (body.replace(b"login", b"logout"), signed(body), "does not match"),
        (body, signed(body, secret="another-secret-of-enough-length-0123456789"), "does not match"),
        (body, signed(body, at=T0 - 301, msg_id="msg_2"), "tolerance"),
        (body, signed(body, at=T0 + 301, msg_id="msg_3"), "tolerance"),
        (body, {**signed(body, msg_id="msg_4"), "Webhook-Timestamp": "1e9"}, "Unix seconds"),
        (body, {"Webhook-Id": "msg_5"}, "missing"),
        (b"[1]", signed(b"[1]", msg_id="msg_6"), "not a JSON object"),
        (body, signed(body), "replay"),
    ]
    for raw, headers, why in refusals:
        with pytest.raises(WebhookVerificationError, match=why):
            check.verify(raw, headers)
    # A replay stays refused for the whole window, then its timestamp is too old anyway.
    clock.advance(299)
    with pytest.raises(WebhookVerificationError, match="replay"):
        check.verify(body, signed(body))
    # Rotation: a verifier that knows both secrets accepts either.
    rotating = WebhookVerifier([SECRET, "the-next-secret-of-enough-length-0123456789"], clock=clock)
    fresh = signed(body, at=clock(), secret="the-next-secret-of-enough-length-0123456789")
    assert rotating.verify(body, fresh)
    assert verify_webhook(SECRET, body, signed(body, at=clock()), now=clock())
    with pytest.raises(ValueError, match="32 bytes"):
        WebhookVerifier("short")


async def test_a_receiver_that_is_down_never_delays_a_login_and_retries_are_bounded(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = hooked(clock, f"http://127.0.0.1:{free_port()}/hook", max_attempts=3)
    await auth.startup()
    try:
        async with client_for(auth) as client:
            assert (await login(client, wallet))["access_token"]
        webhooks = auth.identity.webhooks
        assert webhooks is not None
        await until(lambda: webhooks.stats.failed == 1)
        assert webhooks.stats.retried == 2 and webhooks.stats.delivered == 0
    finally:
        await auth.aclose()


async def test_a_slow_receiver_holds_no_login_and_times_out(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    with Receiver(lambda n: HOLD) as receiver:
        auth = hooked(clock, receiver.url, timeout=0.3, max_attempts=1)
        await auth.startup()
        try:
            async with client_for(auth) as client:
                await login(client, wallet)
                await until(lambda: len(receiver.deliveries) == 1)
                # The receiver holds the delivery; a second login is answered all the same.
                await login(client, wallet)
            webhooks = auth.identity.webhooks
            assert webhooks is not None
            assert webhooks.stats.delivered == 0
            await until(lambda: webhooks.stats.failed == 2)
        finally:
            await auth.aclose()


async def test_a_failing_receiver_gets_the_same_delivery_again_and_a_refusing_one_does_not(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    with Receiver(lambda n: 503 if n == 1 else 200) as receiver:
        auth = hooked(clock, receiver.url)
        await auth.startup()
        try:
            async with client_for(auth) as client:
                await login(client, wallet)
            await until(lambda: len(receiver.deliveries) == 2)
        finally:
            await auth.aclose()
    first, second = receiver.deliveries
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    with Receiver(lambda n: 400) as receiver:
        auth = hooked(clock, receiver.url)
        await auth.startup()
        try:
            async with client_for(auth) as client:
                await login(client, wallet)
            webhooks = auth.identity.webhooks
            assert webhooks is not None
            await until(lambda: webhooks.stats.failed == 1)
            assert len(receiver.deliveries) == 1 and webhooks.stats.retried == 0
        finally:
            await auth.aclose()


async def test_only_chosen_kinds_are_delivered(clock: FakeClock, wallet: LocalAccount) -> None:
    with Receiver() as receiver:
        auth = hooked(clock, receiver.url, events=["refusal"])
        await auth.startup()
        try:
            async with client_for(auth) as client:
                await login(client, wallet)
                secret = await get_secret(client, wallet.address)
                bad = {
                    "login_random_secret": secret,
                    "signature": sign_text(wallet, "something else"),
                    "wallet_address": wallet.address,
                }
                assert (await client.post("/login", json=bad)).status_code == 401
            await until(lambda: len(receiver.deliveries) == 1)
        finally:
            await auth.aclose()
    payload = WebhookVerifier(SECRET, clock=clock).verify(
        receiver.deliveries[0].body, receiver.deliveries[0].headers
    )
    assert payload["type"] == "wallet_auth.refusal"
    assert payload["data"]["code"] == 40101 and payload["data"]["address"] == wallet.address


async def test_a_full_queue_drops_and_counts_and_shutdown_counts_what_was_pending(
    clock: FakeClock,
) -> None:
    auth = hooked(clock, f"https://127.0.0.1:{free_port()}/x", queue_size=2)
    webhooks = auth.identity.webhooks
    assert webhooks is not None
    for n in range(5):  # no workers: nothing leaves the queue
        webhooks.submit(AuthEvent(kind="login", at=T0 + n))
    assert webhooks.stats.dropped == 3
    await auth.aclose()  # the two still queued are dropped and counted
    assert webhooks.stats.dropped == 5 and webhooks.stats.delivered == 0


def test_webhook_settings_are_checked() -> None:
    for url in ("http://hooks.example/x", "ftp://127.0.0.1/", "https://u:p@hooks.example/"):
        with pytest.raises(ValueError, match="https://"):
            WebhookSettings([url], SECRET)
    with pytest.raises(ValueError, match="non-empty list"):
        WebhookSettings("https://hooks.example/", SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        WebhookSettings(["https://hooks.example/"], "short")
    with pytest.raises(ValueError, match="webhook events"):
        WebhookSettings(["https://hooks.example/"], SECRET, events=["login", "signup"])
    with pytest.raises(ValueError, match="max_attempts"):
        WebhookSettings(["https://hooks.example/"], SECRET, max_attempts=0)
    assert WebhookSettings(["http://[::1]:9/x", "http://localhost/"], SECRET).urls
