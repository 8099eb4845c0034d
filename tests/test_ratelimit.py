"""Rate limits: per requester, 429 with Retry-After, and no lock-out of someone else's wallet."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.ratelimit import MemoryRateLimiter, RateLimit, RedisRateLimiter
from tests.conftest import FakeClock, sign_text
from tests.helpers import get_secret, make_auth


def client_from(app: WalletAuth, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def limited(clock: FakeClock, **overrides: Any) -> WalletAuth:
    settings: dict[str, Any] = {"secrets": 3, "failed_logins": 2, "window": 60.0}
    settings.update(overrides)
    settings.setdefault("limiter", MemoryRateLimiter(clock=clock))
    return make_auth(clock, rate_limit=RateLimit(**settings))


async def bad_login(
    client: httpx.AsyncClient, account: LocalAccount, signer: LocalAccount
) -> httpx.Response:
    secret = await get_secret(client, account.address)
    return await client.post(
        "/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(signer, secret),
            "wallet_address": account.address,
        },
    )


async def test_secret_issuance_is_limited_per_client_with_retry_after(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = limited(clock)
    clock.advance(15)  # 15 s into a 60 s window
    async with client_from(auth, "203.0.113.7") as client:
        for _ in range(3):
            await get_secret(client, wallet.address)
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert response.status_code == 429
        assert response.json() == {"code": 42901, "msg": "too many requests", "data": None}
        assert response.headers["retry-after"] == "45"
    async with client_from(auth, "198.51.100.9") as other:
        await get_secret(other, wallet.address)  # another client has its own allowance
    clock.advance(45)
    async with client_from(auth, "203.0.113.7") as client:
        await get_secret(client, wallet.address)  # a new window


async def test_failed_logins_lock_out_the_attacker_not_the_victim(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    auth = limited(clock, secrets=100)
    async with client_from(auth, "203.0.113.66") as attacker:
        for _ in range(2):  # failed logins aimed at the victim's wallet
            assert (await bad_login(attacker, wallet, other_wallet)).status_code == 401
        blocked = await bad_login(attacker, wallet, wallet)  # even a valid one is now refused
        assert blocked.status_code == 429 and "retry-after" in blocked.headers
    async with client_from(auth, "192.0.2.10") as victim:
        assert (await bad_login(victim, wallet, wallet)).status_code == 200


async def test_successful_logins_do_not_count(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = limited(clock, secrets=100)
    async with client_from(auth, "192.0.2.10") as client:
        for _ in range(5):
            assert (await bad_login(client, wallet, wallet)).status_code == 200


async def test_malformed_login_attempts_count_as_failures(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = limited(clock)
    async with client_from(auth, "203.0.113.5") as client:
        for _ in range(2):
            response = await client.post("/login", json={"login_random_secret": "x"})
            assert response.status_code == 400
        assert (await client.post("/login", json={})).status_code == 429
        web3mq = await client.post("/api/user_login/", json={})
        assert web3mq.status_code == 429  # the Web3MQ route shares the allowance


async def test_without_rate_limit_only_the_outstanding_secret_cap_applies(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_from(auth, "203.0.113.5") as client:
        for _ in range(32):
            await get_secret(client, wallet.address)
        over = await client.post("/login_random_secret", json={"wallet_address": wallet.address})
        assert over.status_code == 429 and over.json()["code"] == 42901
        # Failed logins are not limited without a RateLimit.
        for _ in range(30):
            bad = await client.post(
                "/login",
                json={
                    "login_random_secret": "a" * 40,
                    "signature": "0x" + "1" * 130,
                    "wallet_address": wallet.address,
                },
            )
            assert bad.status_code in (400, 401)


async def test_redis_limits_are_shared_by_every_worker(
    clock: FakeClock, redis_server: Any, wallet: LocalAccount
) -> None:
    from asgi_wallet_auth.stores.redis import RedisNonceStore

    prefix = f"rl:{uuid.uuid4().hex}:"
    stores = [RedisNonceStore(redis_server.url, prefix=prefix) for _ in range(2)]
    try:
        workers = [
            make_auth(
                clock,
                nonce_store=store,
                rate_limit=RateLimit(
                    secrets=2, limiter=RedisRateLimiter(store.client, prefix=prefix, clock=clock)
                ),
            )
            for store in stores
        ]
        async with (
            client_from(workers[0], "203.0.113.8") as a,
            client_from(workers[1], "203.0.113.8") as b,
        ):
            await get_secret(a, wallet.address)
            await get_secret(b, wallet.address)
            assert (
                await a.post("/login_random_secret", json={"wallet_address": wallet.address})
            ).status_code == 429
            assert (
                await b.post("/login_random_secret", json={"wallet_address": wallet.address})
            ).status_code == 429
    finally:
        for store in stores:
            await store.aclose()


async def test_an_unreachable_limiter_fails_closed(clock: FakeClock, wallet: LocalAccount) -> None:
    class Down(MemoryRateLimiter):
        async def hit(self, key: str, window: float) -> int:
            raise ConnectionError("limiter down")

    auth = make_auth(clock, rate_limit=RateLimit(limiter=Down()))
    async with client_from(auth, "203.0.113.5") as client:
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert response.status_code == 503 and response.json()["data"] is None


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"secrets": 0}, "secrets must be a positive int"),
        ({"failed_logins": -1}, "failed_logins must be a positive int"),
        ({"window": 0}, "window must be"),
        ({"limiter": object()}, "RateLimiter protocol"),
    ],
)
def test_rate_limit_settings_are_checked(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        RateLimit(**kwargs)
