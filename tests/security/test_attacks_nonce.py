"""Attacks on single use: replays, double submits, griefing, cross-address redemption, eviction.

Every test is named after the attack it blocks. Signatures are real (the fixed keys of
``tests/conftest.py``), time is a ``FakeClock``, and each refusal is checked for its documented
status and code (docs/errors.md) and, where it matters, for having burned nothing: the genuine
login with the same secret or NonceContent must still succeed afterwards.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import nacl.signing
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import MemoryNonceStore, MemoryUserStore, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.stores.redis import RedisNonceStore
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, make_auth, siwe_text
from tests.redis_server import RedisServer
from tests.security.support import assert_refused, assert_token, web3mq_login_body

NOW_MS = int(T0 * 1000)
USERID = "user:attack-nonce"
DEVICE = nacl.signing.SigningKey(bytes(range(100, 132)))
ATTACKER_DEVICE = nacl.signing.SigningKey(bytes(range(132, 164)))
WEB3MQ_ROUTE = "/api/user_login/"


# -- helpers --------------------------------------------------------------------------------


def raw_fields(account: LocalAccount, secret: str, **overrides: Any) -> dict[str, Any]:
    """A raw-secret ``/login`` body signed by ``account``."""
    fields: dict[str, Any] = {
        "login_random_secret": secret,
        "signature": sign_text(account, secret),
        "wallet_address": account.address,
    }
    fields.update(overrides)
    return fields


def siwe_fields(account: LocalAccount, secret: str, **text: Any) -> dict[str, Any]:
    """An EIP-4361 ``/login`` body signed by ``account`` (``text`` overrides message fields)."""
    settings: dict[str, Any] = {"address": account.address, "nonce": secret, "issued_at": T0}
    settings.update(text)
    content = siwe_text(**settings)
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, content),
        "wallet_address": account.address,
        "signature_content": content,
    }


async def many_at_once(
    count: int, attempt: Callable[[], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Run ``count`` copies of ``attempt`` concurrently; return every response."""
    responses: list[httpx.Response] = []

    async def one() -> None:
        responses.append(await attempt())

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    assert len(responses) == count
    return responses


def web3mq_body(
    account: LocalAccount,
    *,
    device: nacl.signing.SigningKey = DEVICE,
    timestamp: int = NOW_MS,
    userid: str = USERID,
) -> dict[str, Any]:
    """A Web3MQ login body in the SDK's indented template."""
    return web3mq_login_body(
        account, device=device, userid=userid, timestamp=timestamp, indented=True
    )


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


# -- replay after success -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["raw secret", "EIP-4361"])
async def test_replaying_a_used_secret_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock, form: str
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = raw_fields(wallet, secret) if form == "raw secret" else siwe_fields(wallet, secret)
    assert_token(await client.post("/login", json=fields))
    assert_refused(await client.post("/login", json=fields), 401, 40102)
    clock.advance(1)  # still well inside the secret's lifetime: used is used
    assert_refused(await client.post("/login", json=fields), 401, 40102)


@pytest.mark.parametrize(
    "variant", ["lowercase address", "uppercase address", "v as 0/1", "as an EIP-4361 message"]
)
async def test_replaying_a_used_secret_in_another_spelling_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, variant: str
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = raw_fields(wallet, secret)
    assert_token(await client.post("/login", json=fields))
    if variant == "lowercase address":
        replay = {**fields, "wallet_address": wallet.address.lower()}
    elif variant == "uppercase address":
        replay = {**fields, "wallet_address": "0x" + wallet.address[2:].upper()}
    elif variant == "v as 0/1":
        raw = bytes.fromhex(fields["signature"][2:])
        assert raw[64] in (27, 28)
        replay = {**fields, "signature": "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()}
    else:
        replay = siwe_fields(wallet, secret)
    assert replay != fields
    assert_refused(await client.post("/login", json=replay), 401, 40102)


# -- concurrent double submit ---------------------------------------------------------------


@pytest.mark.parametrize("form", ["raw secret", "EIP-4361"])
async def test_concurrent_double_submit_yields_exactly_one_token(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, form: str
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = raw_fields(wallet, secret) if form == "raw secret" else siwe_fields(wallet, secret)
    responses = await many_at_once(20, lambda: client.post("/login", json=fields))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 19
    assert sorted(r.json()["code"] for r in responses) == [0] + [40102] * 19
    tokens = [r.json()["data"]["access_token"] for r in responses if r.status_code == 200]
    assert len(tokens) == 1
    store = auth.user_store
    assert isinstance(store, MemoryUserStore) and len(store) == 1


@pytest.mark.parametrize("instances", [1, 2])
async def test_concurrent_double_submit_on_redis_yields_exactly_one_token(
    clock: FakeClock, redis_server: RedisServer, wallet: LocalAccount, instances: int
) -> None:
    # Two WalletAuth objects on one Redis stand for two workers racing for the same secret.
    prefix = f"attack-nonce:{uuid.uuid4().hex}:"
    stores = [RedisNonceStore(redis_server.url, prefix=prefix) for _ in range(instances)]
    try:
        clients = [client_for(make_auth(clock, nonce_store=s)) for s in stores]
        async with clients[0] as first:
            secret = await get_secret(first, wallet.address)
            fields = raw_fields(wallet, secret)
            counter = iter(range(20))

            async def attempt() -> httpx.Response:
                return await clients[next(counter) % instances].post("/login", json=fields)

            if instances == 2:
                async with clients[1]:
                    responses = await many_at_once(20, attempt)
            else:
                responses = await many_at_once(20, attempt)
        assert sorted(r.status_code for r in responses) == [200] + [401] * 19
        assert sorted(r.json()["code"] for r in responses) == [0] + [40102] * 19
        # Nothing of the secret is left in Redis: the one take consumed it.
        assert await stores[0].client.keys(prefix + "*") == []
    finally:
        for s in stores:
            await s.aclose()


# -- griefing -------------------------------------------------------------------------------


async def test_requesting_many_secrets_for_a_victim_does_not_lock_the_victim_out(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    victim_secret = await get_secret(client, wallet.address)
    # The attacker asks again and again on the victim's behalf, in every spelling of the address.
    spellings = [wallet.address, wallet.address.lower(), "0x" + wallet.address[2:].upper()]
    texts: list[str] = []
    secrets: list[str] = []
    for i in range(30):  # within one requester's share of outstanding secrets
        response = await client.post(
            "/login_random_secret", json={"wallet_address": spellings[i % 3]}
        )
        assert response.status_code == 200
        texts.append(response.text)
        secrets.append(response.json()["data"])
    # The attacker never receives the victim's secret, and every secret is a fresh one.
    assert all(victim_secret not in text for text in texts)
    assert len(set(secrets)) == 30
    # The attacker cannot use what it was given: the secrets are the victim's to redeem.
    assert_refused(
        await client.post("/login", json=raw_fields(other_wallet, secrets[0])), 401, 40102
    )
    assert_refused(
        await client.post(
            "/login", json=raw_fields(other_wallet, secrets[1], wallet_address=wallet.address)
        ),
        401,
        40101,
    )
    # The victim's own outstanding secret still works, and so do the ones asked on its behalf.
    assert_token(await client.post("/login", json=raw_fields(wallet, victim_secret)))
    assert_token(await client.post("/login", json=raw_fields(wallet, secrets[1])))


# -- cross-address redemption ---------------------------------------------------------------


@pytest.mark.parametrize("form", ["raw secret", "EIP-4361"])
async def test_secret_issued_for_one_address_cannot_be_redeemed_by_another(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount, form: str
) -> None:
    victim_secret = await get_secret(client, wallet.address)
    # B signs A's secret correctly with its own key and claims its own address.
    if form == "raw secret":
        stolen = raw_fields(other_wallet, victim_secret)
    else:
        stolen = siwe_fields(other_wallet, victim_secret)
    assert_refused(await client.post("/login", json=stolen), 401, 40102)
    # B claiming A's address with B's signature: a signature mismatch (raw), or a message that
    # names another address than the wallet (EIP-4361).
    claimed = await client.post("/login", json={**stolen, "wallet_address": wallet.address})
    assert_refused(claimed, 401, 40101 if form == "raw secret" else 40103)
    # Neither attempt burned A's secret.
    assert_token(await client.post("/login", json=raw_fields(wallet, victim_secret)))


# -- failed attempts burn nothing -----------------------------------------------------------


def _garbage_signature() -> str:
    # Well formed (r, s in range, low s, v 27) but made by nobody in particular.
    return "0x" + "11" * 32 + "22" * 32 + "1b"


FAILED_ATTEMPTS: dict[str, tuple[Callable[[LocalAccount, LocalAccount, str], Any], int, int]] = {
    "wrong signer": (lambda w, o, s: raw_fields(o, s, wallet_address=w.address), 401, 40101),
    "garbage signature": (
        lambda w, o, s: raw_fields(w, s, signature=_garbage_signature()),
        401,
        40101,
    ),
    "malformed signature": (
        lambda w, o, s: raw_fields(w, s, signature="0x" + "ab" * 64),
        400,
        40003,
    ),
    "wrong message": (
        lambda w, o, s: raw_fields(w, s, signature=sign_text(w, s + "x")),
        401,
        40101,
    ),
    "wrong SIWE domain": (lambda w, o, s: siwe_fields(w, s, domain="evil.example"), 401, 40103),
    "wrong SIWE URI": (lambda w, o, s: siwe_fields(w, s, uri="https://evil.example"), 401, 40103),
    "expired SIWE message": (
        lambda w, o, s: siwe_fields(w, s, issued_at=T0 - 600, expiration=T0 - 120),
        401,
        40104,
    ),
    "SIWE text other than the signed one": (
        lambda w, o, s: {
            **siwe_fields(w, s),
            "signature": siwe_fields(w, s, statement="Something else")["signature"],
        },
        401,
        40101,
    ),
}


@pytest.mark.parametrize("attempt", list(FAILED_ATTEMPTS))
async def test_failed_attempt_never_burns_the_secret(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount, attempt: str
) -> None:
    build, status, code = FAILED_ATTEMPTS[attempt]
    secret = await get_secret(client, wallet.address)
    for _ in range(3):  # repeated failures burn nothing either
        assert_refused(
            await client.post("/login", json=build(wallet, other_wallet, secret)), status, code
        )
    genuine = raw_fields(wallet, secret)
    assert_token(await client.post("/login", json=genuine))
    assert_refused(await client.post("/login", json=genuine), 401, 40102)


# -- eviction -------------------------------------------------------------------------------


async def test_secret_evicted_from_a_full_store_fails_closed(
    clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    store = MemoryNonceStore(maxsize=2, clock=clock)
    auth = make_auth(clock, nonce_store=store)
    # Replay markers never share an evicting store.
    assert auth.replay_store is not store
    async with client_for(auth) as client:
        victim_secret = await get_secret(client, wallet.address)
        # Two more secrets (here asked for by someone else) push the victim's out.
        second = await get_secret(client, other_wallet.address)
        third = await get_secret(client, wallet.address)
        assert len(store) == 2
        for _ in range(2):
            assert_refused(
                await client.post("/login", json=raw_fields(wallet, victim_secret)), 401, 40102
            )
        assert_token(await client.post("/login", json=raw_fields(other_wallet, second)))
        assert_token(await client.post("/login", json=raw_fields(wallet, third)))
        # A fresh secret works: eviction refused one login, it did not break the service.
        assert_token(
            await client.post(
                "/login", json=raw_fields(wallet, await get_secret(client, wallet.address))
            )
        )


# -- Web3MQ ---------------------------------------------------------------------------------


async def test_replaying_a_signed_web3mq_login_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    body = web3mq_body(wallet)
    assert_token(await client.post(WEB3MQ_ROUTE, json=body))
    before = await auth.user_store.get(USERID)
    assert_refused(await client.post(WEB3MQ_ROUTE, json=body), 401, 40105)
    clock.advance(299)  # the timestamp is still inside its window: the marker still holds
    assert_refused(await client.post(WEB3MQ_ROUTE, json=body), 401, 40105)
    # The unsigned profile fields do not make a replay a new login.
    assert_refused(
        await client.post(WEB3MQ_ROUTE, json={**body, "nickname": "mallory"}), 401, 40105
    )
    assert await auth.user_store.get(USERID) == before


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
async def test_concurrent_replays_of_a_signed_web3mq_login_yield_exactly_one_token(
    clock: FakeClock, wallet: LocalAccount, redis_server: RedisServer, store_kind: str
) -> None:
    store: RedisNonceStore | None = None
    if store_kind == "redis":
        store = RedisNonceStore(redis_server.url, prefix=f"attack-web3mq:{uuid.uuid4().hex}:")
    try:
        auth = make_auth(clock) if store is None else make_auth(clock, nonce_store=store)
        if store is not None:
            assert auth.replay_store is store
        body = web3mq_body(wallet)
        async with client_for(auth) as client:
            responses = await many_at_once(20, lambda: client.post(WEB3MQ_ROUTE, json=body))
        assert sorted(r.status_code for r in responses) == [200] + [401] * 19
        assert sorted(r.json()["code"] for r in responses) == [0] + [40105] * 19
        record = await auth.user_store.get(USERID)
        assert record is not None
        assert record.device_keys == (DEVICE.verify_key.encode().hex(),)
    finally:
        if store is not None:
            await store.aclose()


@pytest.mark.parametrize(
    "swap",
    ["another device key", "another userid", "another timestamp"],
)
async def test_web3mq_nonce_content_reused_with_other_fields_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, swap: str
) -> None:
    genuine = web3mq_body(wallet)
    # The attacker keeps the wallet's signed content and signature but changes a bound field:
    # the NonceContent the server computes no longer matches the content's Nonce line.
    if swap == "another device key":
        forged = {**genuine, "pubkey_value": ATTACKER_DEVICE.verify_key.encode().hex()}
    elif swap == "another userid":
        forged = {**genuine, "userid": "user:mallory"}
    else:
        forged = {**genuine, "timestamp": NOW_MS + 1}
    assert_refused(await client.post(WEB3MQ_ROUTE, json=forged), 401, 40103)
    store = auth.user_store
    assert isinstance(store, MemoryUserStore) and len(store) == 0
    # The refusal burned nothing: the genuine login with that NonceContent still works once.
    data = assert_token(await client.post(WEB3MQ_ROUTE, json=genuine))
    assert data["pubkey_value"] == DEVICE.verify_key.encode().hex()
    assert data["userid"] == USERID


# -- Web3MQ signed requests -----------------------------------------------------------------


def _signed_app(auth: WalletAuth) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse({"authenticated": user.is_authenticated})

    return Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


def _request_signature(timestamp: int) -> dict[str, str]:
    signature = DEVICE.sign(f"{USERID}{timestamp}".encode()).signature
    return {
        "userid": USERID,
        "timestamp": str(timestamp),
        "web3mq_user_signature": base64.b64encode(signature).decode("ascii"),
    }


async def test_replaying_a_signed_request_is_refused(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, signed_requests=True)
    async with client_for(_signed_app(auth)) as client:
        assert_token(await client.post("/auth" + WEB3MQ_ROUTE, json=web3mq_body(wallet)))
        params = _request_signature(NOW_MS)
        first = await client.get("/whoami", params=params)
        assert first.status_code == 200 and first.json() == {"authenticated": True}
        # The same signature again, through each carrier: the replay marker holds.
        assert_refused(await client.get("/whoami", params=params), 401, 40105)
        headers = {
            "web3mq-userid": params["userid"],
            "web3mq-timestamp": params["timestamp"],
            "web3mq-user-signature": params["web3mq_user_signature"],
        }
        assert_refused(await client.get("/whoami", headers=headers), 401, 40105)
        assert_refused(await client.post("/whoami", json=params), 401, 40105)
        clock.advance(250)
        assert_refused(await client.get("/whoami", params=params), 401, 40105)

        # Twenty concurrent copies of a fresh signature: exactly one gets through.
        fresh = _request_signature(NOW_MS + 1)
        responses = await many_at_once(20, lambda: client.get("/whoami", params=fresh))
        assert sorted(r.status_code for r in responses) == [200] + [401] * 19
        assert sorted(r.json().get("code", 0) for r in responses) == [0] + [40105] * 19
