"""Attacks on time: expired or not-yet-valid messages, forged issue dates, stale Web3MQ timestamps,
and tokens or sessions used at the very instant they end.

The clock is a ``FakeClock`` moved by hand, so every edge is hit exactly: the last accepted instant
and the first refused one. The edges are the documented ones (docs/protocol.md, docs/web3mq.md):

* ``Expiration Time`` is exclusive, as EIP-4361 defines it (a message is expired *at* its
  expiration): with the 60 s skew it is accepted while ``now < Expiration Time + 60``;
* ``Not Before`` is inclusive: accepted from ``now = Not Before - 60`` on;
* ``Issued At`` may be up to 60 s in the future, not one second more;
* a Web3MQ ``timestamp`` may be 300 s old or 60 s ahead, both inclusive, to the millisecond;
* an access token is valid while ``now < exp``, and a session ends at ``auth_time + 30 days``
  (refresh then answers 40111: the last token has expired with it).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jwt
import nacl.signing
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import MemoryUserStore, WalletAuth, WalletAuthMiddleware
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, login, make_auth, siwe_text
from tests.security.support import assert_refused, assert_token, web3mq_login_body

DAY = 86_400
NOW_MS = int(T0 * 1000)
USERID = "user:attack-time"
DEVICE = nacl.signing.SigningKey(bytes(range(5, 37)))
WEB3MQ_ROUTE = "/api/user_login/"


# -- helpers --------------------------------------------------------------------------------


def siwe_fields(account: LocalAccount, secret: str, **times: float) -> dict[str, Any]:
    """``/login`` fields with an EIP-4361 message carrying ``times``, signed by ``account``."""
    settings: dict[str, Any] = {"address": account.address, "nonce": secret, "issued_at": T0}
    settings.update(times)
    content = siwe_text(**settings)
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, content),
        "wallet_address": account.address,
        "signature_content": content,
    }


def web3mq_body(account: LocalAccount, timestamp: int) -> dict[str, Any]:
    return web3mq_login_body(account, device=DEVICE, userid=USERID, timestamp=timestamp)


def build_app(auth: WalletAuth) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        user = request.user
        return JSONResponse(
            {
                "authenticated": user.is_authenticated,
                "address": getattr(user, "address", None),
            }
        )

    return Starlette(
        routes=[Route("/whoami", whoami), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


# -- EIP-4361 Expiration Time ---------------------------------------------------------------


@pytest.mark.parametrize("expired_for", [61, 3600, 365 * DAY])
async def test_expired_siwe_message_without_not_before_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, expired_for: int
) -> None:
    secret = await get_secret(client, wallet.address)
    expiration = T0 - expired_for
    fields = siwe_fields(wallet, secret, issued_at=expiration - 600, expiration=expiration)
    assert "Not Before" not in fields["signature_content"]
    assert "Expiration Time" in fields["signature_content"]
    assert_refused(await client.post("/login", json=fields), 401, 40104)
    # Not burned: a message that has not expired logs in with the same secret.
    assert_token(await client.post("/login", json=siwe_fields(wallet, secret)))


@pytest.mark.parametrize(
    ("after_expiration", "accepted"),
    [(-1, True), (0, True), (59, True), (59.999, True), (60, False), (61, False)],
)
async def test_expired_siwe_message_is_refused_from_the_edge_of_the_clock_skew(
    client: httpx.AsyncClient,
    wallet: LocalAccount,
    clock: FakeClock,
    after_expiration: float,
    accepted: bool,
) -> None:
    expiration = T0
    clock.now = expiration + after_expiration
    secret = await get_secret(client, wallet.address)
    fields = siwe_fields(wallet, secret, issued_at=T0 - 600, expiration=expiration)
    response = await client.post("/login", json=fields)
    if accepted:
        assert_token(response)
    else:
        assert_refused(response, 401, 40104)


# -- EIP-4361 Not Before --------------------------------------------------------------------


@pytest.mark.parametrize("ahead", [61, 600, DAY, 365 * DAY])
async def test_siwe_message_not_yet_valid_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, ahead: int
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = siwe_fields(wallet, secret, not_before=T0 + ahead)
    assert_refused(await client.post("/login", json=fields), 401, 40104)
    assert_token(await client.post("/login", json=siwe_fields(wallet, secret)))


@pytest.mark.parametrize(("ahead", "accepted"), [(0, True), (59, True), (60, True), (61, False)])
async def test_not_yet_valid_siwe_message_is_refused_one_second_past_the_clock_skew(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock, ahead: int, accepted: bool
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = siwe_fields(wallet, secret, not_before=T0 + ahead)
    response = await client.post("/login", json=fields)
    if accepted:
        assert_token(response)
        return
    assert_refused(response, 401, 40104)
    # One second later the same signed message is inside the skew: time was the only reason,
    # and the refusal burned nothing.
    clock.advance(1)
    assert_token(await client.post("/login", json=fields))


# -- EIP-4361 Issued At ---------------------------------------------------------------------


@pytest.mark.parametrize("age", [3600, 365 * DAY, 10 * 365 * DAY])
async def test_siwe_message_issued_far_in_the_past_is_accepted_within_its_secrets_life(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock, age: int
) -> None:
    """An old ``Issued At`` is not an attack by itself: EIP-4361 verification does not bound it
    (a wallet may be slow, or its clock off), and the message is only as useful as its Nonce.
    The Nonce must be a live secret this service issued at most ``nonce_lifetime`` (5 minutes)
    ago and never redeemed, so an old signed message cannot be replayed: its secret is spent or
    expired. This test pins both halves: accepted now, refused once the secret has expired."""
    secret = await get_secret(client, wallet.address)
    assert_token(await client.post("/login", json=siwe_fields(wallet, secret, issued_at=T0 - age)))
    # A second message, equally old, for a secret that has outlived its 5 minutes: refused.
    late = await get_secret(client, wallet.address)
    clock.advance(300)
    fields = siwe_fields(wallet, late, issued_at=T0 - age)
    assert_refused(await client.post("/login", json=fields), 401, 40102)


@pytest.mark.parametrize("ahead", [61, 3600, DAY, 365 * DAY])
async def test_siwe_message_issued_in_the_future_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, ahead: int
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = siwe_fields(wallet, secret, issued_at=T0 + ahead)
    assert_refused(await client.post("/login", json=fields), 401, 40104)
    assert_token(await client.post("/login", json=siwe_fields(wallet, secret)))


@pytest.mark.parametrize(("ahead", "accepted"), [(59, True), (60, True), (61, False)])
async def test_siwe_message_issued_in_the_future_is_refused_one_second_past_the_clock_skew(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock, ahead: int, accepted: bool
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = siwe_fields(wallet, secret, issued_at=T0 + ahead)
    response = await client.post("/login", json=fields)
    if accepted:
        assert_token(response)
        return
    assert_refused(response, 401, 40104)
    clock.advance(1)
    assert_token(await client.post("/login", json=fields))


# -- Web3MQ timestamps ----------------------------------------------------------------------

#: Server clocks on a whole second, on a binary fraction, and on a fraction no float holds.
CLOCK_FRACTIONS_MS = [0, 250, 123]


@pytest.mark.parametrize("fraction_ms", CLOCK_FRACTIONS_MS)
@pytest.mark.parametrize(
    ("offset_ms", "accepted"),
    [(-300_000, True), (-300_001, False), (60_000, True), (60_001, False)],
)
async def test_stale_or_future_web3mq_timestamp_is_refused_one_ms_past_the_window(
    clock: FakeClock, wallet: LocalAccount, fraction_ms: int, offset_ms: int, accepted: bool
) -> None:
    clock.now = T0 + fraction_ms / 1000
    auth = make_auth(clock)
    body = web3mq_body(wallet, NOW_MS + fraction_ms + offset_ms)
    async with client_for(auth) as client:
        response = await client.post(WEB3MQ_ROUTE, json=body)
    if accepted:
        assert_token(response)
    else:
        assert_refused(response, 401, 40106)
        store = auth.user_store
        assert isinstance(store, MemoryUserStore) and len(store) == 0


def _signed_request(timestamp: int) -> dict[str, str]:
    signature = DEVICE.sign(f"{USERID}{timestamp}".encode()).signature
    return {
        "userid": USERID,
        "timestamp": str(timestamp),
        "web3mq_user_signature": base64.b64encode(signature).decode("ascii"),
    }


@pytest.mark.parametrize("fraction_ms", CLOCK_FRACTIONS_MS)
async def test_stale_or_future_signed_request_is_refused_one_ms_past_the_window(
    clock: FakeClock, wallet: LocalAccount, fraction_ms: int
) -> None:
    auth = make_auth(clock, signed_requests=True)
    async with client_for(build_app(auth)) as client:
        assert_token(await client.post("/auth" + WEB3MQ_ROUTE, json=web3mq_body(wallet, NOW_MS)))
        clock.now = T0 + 3600 + fraction_ms / 1000
        now_ms = NOW_MS + 3_600_000 + fraction_ms
        for offset_ms, accepted in [
            (-300_000, True),
            (-300_001, False),
            (60_000, True),
            (60_001, False),
        ]:
            response = await client.get("/whoami", params=_signed_request(now_ms + offset_ms))
            if accepted:
                assert response.status_code == 200, response.text
                assert response.json() == {"authenticated": True, "address": wallet.address}
            else:
                assert_refused(response, 401, 40106)


# -- access tokens --------------------------------------------------------------------------


async def test_token_is_still_accepted_one_second_before_exp(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_for(build_app(auth)) as app, client_for(auth) as direct:
        token = (await login(app, wallet, "/auth"))["access_token"]
        exp = claims_of(token)["exp"]
        assert exp == int(T0) + 7 * DAY
        for before in (1, 0.001):
            clock.now = exp - before
            response = await app.get("/whoami", headers=bearer(token))
            assert response.status_code == 200, response.text
            assert response.json() == {"authenticated": True, "address": wallet.address}
        clock.now = exp - 1
        assert_token(await direct.get("/refresh", headers=bearer(token)))


@pytest.mark.parametrize("history", ["never seen", "used a second before", "no token cache"])
async def test_token_used_exactly_at_exp_is_refused(
    clock: FakeClock, wallet: LocalAccount, history: str
) -> None:
    auth = make_auth(clock, token_cache_size=0 if history == "no token cache" else 4096)
    # The middleware in front of an app, and the login app's own /refresh called directly.
    async with client_for(build_app(auth)) as app, client_for(auth) as direct:
        token = (await login(app, wallet, "/auth"))["access_token"]
        exp = claims_of(token)["exp"]
        if history != "never seen":
            # Verified (and, with the cache on, remembered) just before it ends.
            clock.now = exp - 1
            assert (await app.get("/whoami", headers=bearer(token))).status_code == 200
        clock.now = exp
        for response in (
            await app.get("/whoami", headers=bearer(token)),
            await direct.get("/refresh", headers=bearer(token)),
        ):
            assert_refused(response, 401, 40111)
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# -- the absolute session end ---------------------------------------------------------------


async def _token_ending_with_the_session(
    client: httpx.AsyncClient, clock: FakeClock, wallet: LocalAccount
) -> str:
    """Log in at T0 and refresh every 6 days: the token from day 24 ends with the session."""
    token: str = (await login(client, wallet))["access_token"]
    for _ in range(4):
        clock.advance(6 * DAY)
        token = assert_token(await client.get("/refresh", headers=bearer(token)))["access_token"]
    assert clock.now == T0 + 24 * DAY
    assert claims_of(token)["exp"] == int(T0) + 30 * DAY
    return token


async def test_refresh_one_second_before_the_session_end_cannot_extend_it(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    token = await _token_ending_with_the_session(client, clock, wallet)
    session_end = int(T0) + 30 * DAY
    clock.now = session_end - 1
    data = assert_token(await client.get("/refresh", headers=bearer(token)))
    claims = claims_of(data["access_token"])
    assert claims["exp"] == session_end == data["access_expired_at"]
    assert data["expires_in"] == 1
    assert claims["auth_time"] == int(T0)


async def test_refresh_exactly_at_the_session_end_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    """docs/protocol.md: the new ``exp`` never passes ``auth_time + session_lifetime``, "so at
    that moment the token expires and cannot be refreshed (40111)". Every token of the session,
    the one refreshed a second before the end included, is refused from that instant on."""
    token = await _token_ending_with_the_session(client, clock, wallet)
    clock.now = int(T0) + 30 * DAY - 1
    last = assert_token(await client.get("/refresh", headers=bearer(token)))["access_token"]
    clock.now = int(T0) + 30 * DAY
    for candidate in (token, last):
        response = await client.get("/refresh", headers=bearer(candidate))
        assert_refused(response, 401, 40111)
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
