"""An outside attacker against the library: exhaustion, raced limits, sessions, cookies, 500s.

Each test is the reproduction of one reported fault, run against the fixed service in process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import nacl.signing
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import (
    CookieSettings,
    MemoryNonceStore,
    SQLiteUserStore,
    TokenSettings,
    UserRecord,
    WalletAuth,
    WalletAuthMiddleware,
    WalletUser,
    Web3MQSettings,
)
from asgi_wallet_auth.ratelimit import MemoryRateLimiter, RateLimit, RedisRateLimiter
from asgi_wallet_auth.stores import MemorySessionStore
from tests.conftest import FakeClock, client_for, sign_text
from tests.helpers import get_secret, login, make_auth
from tests.security.support import NOW_MS, assert_refused, assert_token, web3mq_login_body

DEVICE = nacl.signing.SigningKey(bytes(range(32)))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def from_client(app: Any, host: str | None, port: int = 40000) -> httpx.AsyncClient:
    """An in-process client whose requests carry ``host`` as the peer (None: no peer at all)."""
    client = None if host is None else (host, port)
    transport = httpx.ASGITransport(app=app, client=client)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="https://example.com")


def raw_login_body(account: LocalAccount, secret: str) -> dict[str, str]:
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, secret),
        "wallet_address": account.address,
    }


# -- 1. revocation state an attacker cannot drive -----------------------------------------------


async def test_refreshing_a_throwaway_session_keeps_one_entry_and_no_replay_marker(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    sessions = MemorySessionStore(clock=clock, maxsize=10)
    replay = MemoryNonceStore(clock=clock, evict=False, maxsize=10)
    auth = make_auth(
        clock,
        replay_store=replay,
        tokens=TokenSettings(revocation=True, session_store=sessions),
    )
    async with client_for(auth) as client:
        token = (await login(client, other_wallet))["access_token"]
        for _ in range(200):  # was: one 7-day marker per refresh in the replay store
            token = assert_token(await client.get("/refresh", headers=bearer(token)))[
                "access_token"
            ]
        assert len(sessions) == 1 and len(replay) == 0
        # Everyone else's session operations and Web3MQ logins still work.
        victim = (await login(client, wallet))["access_token"]
        victim = assert_token(await client.post("/refresh", headers=bearer(victim)))["access_token"]
        assert (await client.post("/logout", headers=bearer(victim))).status_code == 200
        body = web3mq_login_body(wallet, device=DEVICE, userid="user:victim")
        assert_token(await client.post("/api/user_login/", json=body))


async def test_a_full_replay_store_does_not_block_refresh_or_logout(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    replay = MemoryNonceStore(clock=clock, evict=False, maxsize=1)
    auth = make_auth(clock, replay_store=replay, revocation=True)
    await replay.put("filler", "1", 3600)  # the attacker's markers filled it
    async with client_for(auth) as client:
        token = (await login(client, wallet))["access_token"]
        token = assert_token(await client.get("/refresh", headers=bearer(token)))["access_token"]
        assert (await client.post("/logout", headers=bearer(token))).status_code == 200
        assert (await client.get("/refresh", headers=bearer(token))).status_code == 401


async def test_refresh_logout_and_web3mq_login_are_rate_limited(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    limit = RateLimit(sessions=3, failed_logins=2, limiter=MemoryRateLimiter(clock=clock))
    auth = make_auth(clock, rate_limit=limit, revocation=True)
    async with from_client(auth, "198.51.100.7") as client:
        token = (await login(client, wallet))["access_token"]
        for _ in range(3):
            token = assert_token(await client.get("/refresh", headers=bearer(token)))[
                "access_token"
            ]
        assert_refused(await client.get("/refresh", headers=bearer(token)), 429, 42901)
        assert_refused(await client.post("/logout", headers=bearer(token)), 429, 42901)
        bad = web3mq_login_body(wallet, device=DEVICE, userid="user:x", timestamp=NOW_MS - 10**9)
        for _ in range(2):
            assert (await client.post("/api/user_login/", json=bad)).status_code == 401
        assert_refused(await client.post("/api/user_login/", json=bad), 429, 42901)


# -- 2. secrets: nobody's pending secret is displaced ------------------------------------------


async def test_a_flood_of_secrets_never_evicts_a_victims_pending_secret(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = MemoryNonceStore(clock=clock, evict=False, maxsize=40)
    auth = make_auth(clock, nonce_store=store)
    async with from_client(auth, "192.0.2.10") as victim:
        secret = await get_secret(victim, wallet.address)
    flood_statuses = []
    for attacker in ("203.0.113.1", "203.0.113.2"):
        async with from_client(auth, attacker) as client:
            for i in range(40):
                address = Account.from_key((i + 1).to_bytes(32, "big")).address
                response = await client.post(
                    "/login_random_secret", json={"wallet_address": address}
                )
                flood_statuses.append(response.status_code)
    # Each requester gets its own share (32), then 429; a full store answers 503, never evicts.
    assert flood_statuses.count(200) == 39  # 40 places, one the victim's
    assert set(flood_statuses) == {200, 429, 503}
    async with from_client(auth, "192.0.2.10") as victim:
        assert_token(await victim.post("/login", json=raw_login_body(wallet, secret)))


async def test_a_requester_is_capped_by_its_ipv6_slash_64(clock: FakeClock) -> None:
    auth = make_auth(clock)
    address = Account.from_key(b"\x01" * 32).address
    statuses = []
    for i in range(40):  # every address of one /64 is one requester
        async with from_client(auth, f"2001:db8:1:2::{i + 1:x}") as client:
            response = await client.post("/login_random_secret", json={"wallet_address": address})
            statuses.append(response.status_code)
    assert statuses.count(200) == 32 and statuses[32:] == [429] * 8
    async with from_client(auth, "2001:db8:1:3::1") as other:  # the next /64 is another
        assert (
            await other.post("/login_random_secret", json={"wallet_address": address})
        ).status_code == 200


# -- 3. no client address: never one bucket for everyone ---------------------------------------


async def test_without_a_peer_address_rate_limiting_refuses_rather_than_pool(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, rate_limit=RateLimit(limiter=MemoryRateLimiter(clock=clock)))
    async with from_client(auth, None) as client:  # a unix socket: no scope["client"]
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert_refused(response, 503, 50301)


async def test_a_trusted_proxy_header_keys_clients_behind_a_unix_socket(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    limit = RateLimit(secrets=2, proxy_header="x-real-ip", limiter=MemoryRateLimiter(clock=clock))
    auth = make_auth(clock, rate_limit=limit)
    async with from_client(auth, None) as client:
        body = {"wallet_address": wallet.address}
        for _ in range(2):
            ok = await client.post(
                "/login_random_secret", json=body, headers={"x-real-ip": "192.0.2.1"}
            )
            assert ok.status_code == 200
        over = await client.post(
            "/login_random_secret", json=body, headers={"x-real-ip": "192.0.2.1"}
        )
        assert_refused(over, 429, 42901)
        # Another client behind the same proxy is not locked out by the first one.
        other = await client.post(
            "/login_random_secret", json=body, headers={"x-real-ip": "192.0.2.2"}
        )
        assert other.status_code == 200
        missing = await client.post("/login_random_secret", json=body)
        assert_refused(missing, 503, 50301)


def test_proxy_header_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="lowercase header name"):
        RateLimit(proxy_header="X-Real-IP")
    with pytest.raises(ValueError, match="either client_key or proxy_header"):
        RateLimit(proxy_header="x-real-ip", client_key=lambda scope: "x")


# -- 4. limits counted before the work, not after ----------------------------------------------


async def _concurrent_bad_logins(auth: WalletAuth, wallet: LocalAccount, n: int) -> list[int]:
    secret = "a" * 40
    body = raw_login_body(wallet, secret)  # a secret never issued: every attempt fails (401)
    async with from_client(auth, "198.51.100.20") as client:
        responses = await asyncio.gather(*(client.post("/login", json=body) for _ in range(n)))
    return [r.status_code for r in responses]


async def test_concurrent_failed_logins_cannot_pass_the_memory_limit(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    limit = RateLimit(failed_logins=5, limiter=MemoryRateLimiter(clock=clock))
    statuses = await _concurrent_bad_logins(make_auth(clock, rate_limit=limit), wallet, 100)
    assert statuses.count(401) == 5 and statuses.count(429) == 95


async def test_concurrent_failed_logins_cannot_pass_the_redis_limit(
    clock: FakeClock, wallet: LocalAccount, redis_server: Any
) -> None:
    import uuid

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        limiter = RedisRateLimiter(client, prefix=f"race:{uuid.uuid4().hex}:", clock=clock)
        limit = RateLimit(failed_logins=5, limiter=limiter)
        statuses = await _concurrent_bad_logins(make_auth(clock, rate_limit=limit), wallet, 100)
    finally:
        await client.aclose()
    assert statuses.count(401) == 5 and statuses.count(429) == 95


async def test_a_successful_login_does_not_use_up_the_failure_allowance(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    limit = RateLimit(failed_logins=2, limiter=MemoryRateLimiter(clock=clock))
    auth = make_auth(clock, rate_limit=limit)
    async with from_client(auth, "198.51.100.30") as client:
        for _ in range(5):
            await login(client, wallet)


# -- 5. a stolen token does not outlive the owner's logout -------------------------------------


async def test_the_owner_logs_out_with_a_token_the_thief_has_refreshed(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    async with client_for(auth) as client:
        owner = (await login(client, wallet))["access_token"]
        thief = assert_token(await client.get("/refresh", headers=bearer(owner)))["access_token"]
        assert (await client.post("/logout", headers=bearer(owner))).status_code == 200
        assert_refused(await client.get("/refresh", headers=bearer(thief)), 401, 40111)
        assert_refused(await client.post("/logout", headers=bearer(thief)), 401, 40111)


async def test_logout_racing_refresh_ends_every_token_of_the_session(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    app = Starlette(
        routes=[
            Route("/me", lambda r: JSONResponse({"ok": r.user.is_authenticated})),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    async with client_for(app) as client:
        for _ in range(10):
            token = (await login(client, wallet, prefix="/auth"))["access_token"]
            out, refreshed = await asyncio.gather(
                client.post("/auth/logout", headers=bearer(token)),
                client.get("/auth/refresh", headers=bearer(token)),
            )
            assert out.status_code == 200
            tokens = [token]
            if refreshed.status_code == 200:
                tokens.append(refreshed.json()["data"]["access_token"])
            for each in tokens:
                assert (await client.get("/me", headers=bearer(each))).status_code == 401


# -- 6. a cross-site GET cannot refresh a cookie session ---------------------------------------


async def test_refresh_by_cookie_needs_the_csrf_proof_even_as_a_get(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, cookie=CookieSettings(secure=False), revocation=True)
    async with client_for(auth) as client:
        data = (await login(client, wallet)) | {}
        assert_refused(await client.get("/refresh"), 403, 40303)
        assert_refused(await client.post("/refresh"), 403, 40303)
        # Nothing changed: the cookie's token is still the current one.
        assert (
            await client.get("/refresh", headers=bearer(data["access_token"]))
        ).status_code == 200


# -- 7, 8, 9: answers that were 500s ------------------------------------------------------------


def _signed_app(auth: WalletAuth) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"user": getattr(request.user, "userid", None)})

    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def test_a_content_length_of_thousands_of_zeros_is_not_a_500(clock: FakeClock) -> None:
    auth = make_auth(clock, signed_requests=True)
    app = _signed_app(auth)
    sent: list[dict[str, Any]] = []
    body = b'{"a":1}'
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"example.com"),
            (b"content-type", b"application/json"),
            (b"content-length", b"0" * 5000 + b"7"),
        ],
        "client": ("192.0.2.1", 1),
        "server": ("example.com", 443),
    }

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200


async def test_a_lone_surrogate_folded_into_signed_content_is_a_401(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(
        clock,
        web3mq=Web3MQSettings(
            signed_requests=True,
            signed_content=lambda scope, params: (
                params["userid"] + params["note"] + str(params["timestamp"])
            ),
        ),
    )
    async with client_for(_signed_app(auth)) as client:
        body = web3mq_login_body(wallet, device=DEVICE, userid="user:alice")
        assert_token(await client.post("/auth/api/user_login/", json=body))
        signature = "A" * 86 + "=="
        raw = (
            f'{{"userid": "user:alice", "timestamp": {NOW_MS}, "note": "\\ud800", '
            f'"web3mq_user_signature": "{signature}"}}'
        )
        response = await client.post(
            "/echo", content=raw.encode(), headers={"content-type": "application/json"}
        )
        assert_refused(response, 401, 40107)


async def test_a_hook_claim_with_a_lone_surrogate_refuses_the_login(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async def hook(request: Request, user: WalletUser) -> dict[str, str]:
        return {"note": "\ud800"}

    auth = make_auth(clock, on_login=hook)
    async with client_for(auth) as client:
        secret = await get_secret(client, wallet.address)
        assert_refused(await client.post("/login", json=raw_login_body(wallet, secret)), 403, 40301)
    assert len(auth.user_store) == 0  # type: ignore[arg-type]


# -- 10. cookies: ambiguity and planted cookies ------------------------------------------------


async def test_two_auth_cookies_are_refused_as_ambiguous(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    auth = make_auth(clock, cookie=CookieSettings(secure=False))
    app = _signed_app(auth)
    async with client_for(app) as client:
        victim = (await login(client, wallet, prefix="/auth"))["access_token"]
        client.cookies.clear()
        attacker = (await login(client, other_wallet, prefix="/auth"))["access_token"]
        client.cookies.clear()
        cookie = f"wallet_auth={victim}; wallet_auth={attacker}"
        response = await client.get("/auth/refresh", headers={"cookie": cookie})
        assert_refused(response, 401, 40111)
        response = await client.post("/echo", json={}, headers={"cookie": cookie})
        assert_refused(response, 401, 40111)


async def test_two_csrf_cookies_are_refused(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock, cookie=CookieSettings(secure=False))
    async with client_for(_signed_app(auth)) as client:
        data = await login(client, wallet, prefix="/auth")
        token, csrf = data["access_token"], data["csrf_token"]
        client.cookies.clear()
        cookie = f"wallet_auth={token}; wallet_auth_csrf={csrf}; wallet_auth_csrf=planted"
        response = await client.post(
            "/echo", json={}, headers={"cookie": cookie, "x-csrf-token": csrf}
        )
        assert_refused(response, 403, 40303)
        cookie = f"wallet_auth={token}; wallet_auth_csrf={csrf}"
        response = await client.post(
            "/echo", json={}, headers={"cookie": cookie, "x-csrf-token": csrf}
        )
        assert response.status_code == 200


def test_cookie_names_take_the_host_prefix_where_the_settings_allow_it() -> None:
    assert CookieSettings().name == "__Host-wallet_auth"
    assert CookieSettings().csrf_cookie_name == "__Host-wallet_auth_csrf"
    assert CookieSettings(secure=False).name == "wallet_auth"
    assert CookieSettings(domain="example.com").name == "wallet_auth"
    assert CookieSettings(path="/app").csrf_cookie_name == "wallet_auth_csrf"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "__Host-auth", "domain": "example.com"},
        {"name": "__Host-auth", "path": "/app"},
        {"name": "__host-auth", "secure": False},
        {"csrf_cookie_name": "__Host-csrf", "secure": False},
        {"name": "__Secure-auth", "secure": False},
        {"csrf_cookie_name": "__SECURE-csrf", "secure": False},
    ],
)
def test_prefixed_cookie_names_a_browser_would_drop_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="prefix: browsers drop such a cookie"):
        CookieSettings(**kwargs)


# -- 11. address-shaped userids in any spelling ------------------------------------------------


@pytest.mark.parametrize("spell", [lambda a: "0X" + a[2:], lambda a: "0X" + a[2:].lower()])
async def test_another_wallets_address_cannot_be_taken_as_a_userid_in_any_spelling(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount, spell: Any
) -> None:
    auth = make_auth(clock)
    async with client_for(auth) as client:
        userid = spell(wallet.address)
        body = web3mq_login_body(other_wallet, device=DEVICE, userid=userid)
        assert_refused(await client.post("/api/user_login/", json=body), 409, 40901)
        assert await auth.user_store.get(userid) is None
        # The owner may use it: it is theirs.
        own = web3mq_login_body(wallet, device=DEVICE, userid=userid)
        assert_token(await client.post("/api/user_login/", json=own))


# -- 13. a secret-flow login folds into the user atomically ------------------------------------


async def test_without_a_hook_a_login_is_one_atomic_merge_that_keeps_the_wallets_userid(
    clock: FakeClock, wallet: LocalAccount, tmp_path: Any
) -> None:
    store = _InterleavingStore(tmp_path / "users.db")
    auth = make_auth(clock, user_store=store)
    async with client_for(auth) as client:
        body = web3mq_login_body(wallet, device=DEVICE, userid="user:alice")
        assert_token(await client.post("/api/user_login/", json=body))
        data = await login(client, wallet)  # reads nothing first: merge alone
    assert data["userid"] == "user:alice"
    record = await store.get("user:alice")
    assert record is not None and record.device_keys == (DEVICE.verify_key.encode().hex(),)
    store.close()


async def _allow(request: Request, user: WalletUser) -> None:
    """An ``on_login`` hook that allows everyone: the login reads the user before it writes."""


class _InterleavingStore(SQLiteUserStore):
    """Runs ``between`` once, after a read and before the caller writes: a forced interleaving."""

    between: Any = None

    async def get_by_address(self, address: str) -> UserRecord | None:
        record = await super().get_by_address(address)
        step, self.between = self.between, None
        if step is not None:
            await step()
        return record


async def test_a_login_racing_a_web3mq_login_loses_no_device_key(
    clock: FakeClock, wallet: LocalAccount, tmp_path: Any
) -> None:
    store = _InterleavingStore(tmp_path / "users.db")
    auth = make_auth(clock, user_store=store, on_login=_allow)
    async with client_for(auth) as client:
        await login(client, wallet)  # the wallet exists under its address
        secret = await get_secret(client, wallet.address)

        async def web3mq() -> None:
            body = web3mq_login_body(wallet, device=DEVICE, userid=wallet.address)
            assert_token(await client.post("/api/user_login/", json=body))

        store.between = web3mq
        assert_token(await client.post("/login", json=raw_login_body(wallet, secret)))
    record = await store.get_by_address(wallet.address)
    assert record is not None and record.device_keys == (DEVICE.verify_key.encode().hex(),)
    store.close()


async def test_a_login_racing_a_rename_is_refused_and_loses_nothing(
    clock: FakeClock, wallet: LocalAccount, tmp_path: Any
) -> None:
    store = _InterleavingStore(tmp_path / "users.db")
    auth = make_auth(clock, user_store=store, on_login=_allow)
    async with client_for(auth) as client:
        secret = await get_secret(client, wallet.address)

        async def web3mq() -> None:
            body = web3mq_login_body(wallet, device=DEVICE, userid="user:alice")
            assert_token(await client.post("/api/user_login/", json=body))

        store.between = web3mq  # the wallet registers as user:alice while /login is under way
        response = await client.post("/login", json=raw_login_body(wallet, secret))
        assert_refused(response, 409, 40901)
    record = await store.get("user:alice")
    assert record is not None and record.device_keys == (DEVICE.verify_key.encode().hex(),)
    store.close()
