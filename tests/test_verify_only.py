"""The verify-only middleware: ``WalletAuthMiddleware`` with a ``JwksAuthenticator``.

Tokens come from real logins on a login service signing with fixed ES256 and Ed25519 keys; the
JWKS is served by a real loopback HTTP endpoint the tests make misbehave (down, garbage, too large,
too many keys); time moves on the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from asgi_wallet_auth import (
    EthereumVerifier,
    JwksAuthenticator,
    KeySet,
    SigningKey,
    WalletAuthMiddleware,
)
from asgi_wallet_auth.errors import WalletAuthError
from asgi_wallet_auth.fastapi import CurrentWallet, envelope_error_handler
from asgi_wallet_auth.jwks import JwksFetcher, check_jwks_url
from asgi_wallet_auth.stores.memory import MemorySessionStore
from tests.conftest import DOMAIN, SECRET_KEY, URI, FakeClock, client_for
from tests.helpers import login
from tests.jwks_server import JwksServer, Reply, jwks_reply, running
from tests.key_kit import ED_KEY, ES_KEY, ES_KEY_2, bearer, login_service, protected_app, public_set

ES = SigningKey.from_key(ES_KEY)
ED = SigningKey.from_key(ED_KEY, state="next")
OTHER = SigningKey.from_key(ES_KEY_2)


@pytest.fixture
def endpoint() -> Iterator[JwksServer]:
    yield from running(jwks_reply(KeySet((ES, ED)).jwks()))


Verifier = Callable[..., JwksAuthenticator]


@pytest.fixture
async def verifier(clock: FakeClock) -> AsyncIterator[Verifier]:
    """Builds verify-only authenticators on a JWKS URL; their HTTP clients close after the test."""
    made: list[JwksAuthenticator] = []

    def build(url: str, **options: Any) -> JwksAuthenticator:
        fetcher = JwksFetcher(url, clock=clock, **options)
        made.append(JwksAuthenticator(issuer=URI, audience=URI, fetcher=fetcher, clock=clock))
        return made[-1]

    yield build
    for auth in made:
        await auth.aclose()


async def token_from(clock: FakeClock, keys: KeySet, wallet: LocalAccount) -> str:
    async with client_for(login_service(clock, keys)) as client:
        token: str = (await login(client, wallet))["access_token"]
    return token


async def whoami(auth: JwksAuthenticator, token: str | None = None) -> httpx.Response:
    async with client_for(protected_app(auth)) as client:
        return await client.get("/whoami", headers=bearer(token) if token else {})


# -- request.user, as in the login service -------------------------------------------------------


async def test_request_user_matches_the_login_services_for_a_local_key_set(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = login_service(clock, KeySet((ES,)))
    async with client_for(auth) as client:
        token = (await login(client, wallet))["access_token"]
        there = await client.get("/refresh", headers=bearer(token))
    assert there.status_code == 200
    local = JwksAuthenticator(issuer=URI, audience=URI, keys=public_set(ES), clock=clock)
    response = await whoami(local, token)
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": True,
        "address": wallet.address,
        "userid": wallet.address,
        "did_type": "eth",
        "account_id": f"eip155:1:{wallet.address}",
        "scopes": ["authenticated"],
    }
    assert (await whoami(local)).json() == {"authenticated": False}
    refused = await whoami(local, token[:-2] + ("AA" if token[-2:] != "AA" else "BA"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert refused.json()["code"] == 40111


async def test_fastapi_dependencies_work_unchanged_behind_the_verify_only_middleware(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount, endpoint: JwksServer
) -> None:
    app = FastAPI()
    app.add_middleware(WalletAuthMiddleware, auth=verifier(endpoint.url))
    app.add_exception_handler(WalletAuthError, envelope_error_handler)  # type: ignore[arg-type]

    @app.get("/me")
    async def me(wallet: CurrentWallet) -> dict[str, str]:
        return {"address": wallet.address}

    token = await token_from(clock, KeySet((ES, ED)), wallet)
    async with client_for(app) as client:
        assert (await client.get("/me", headers=bearer(token))).json() == {
            "address": wallet.address
        }
        assert (await client.get("/me")).status_code == 401


async def test_an_ed25519_signing_service_is_verified_through_its_jwks(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount, endpoint: JwksServer
) -> None:
    token = await token_from(
        clock, KeySet((ES.with_state("previous"), ED.with_state("current"))), wallet
    )
    auth = verifier(endpoint.url)
    assert (await whoami(auth, token)).json()["address"] == wallet.address
    assert endpoint.fetches == 1


# -- the cache and refetches ---------------------------------------------------------------------


async def test_keys_are_fetched_once_and_repeat_tokens_are_cache_hits(
    clock: FakeClock,
    verifier: Verifier,
    wallet: LocalAccount,
    other_wallet: LocalAccount,
    endpoint: JwksServer,
) -> None:
    auth = verifier(endpoint.url)
    first = await token_from(clock, KeySet((ES, ED)), wallet)
    second = await token_from(clock, KeySet((ES, ED)), other_wallet)
    for token, who in ((first, wallet), (second, other_wallet), (first, wallet)):
        assert (await whoami(auth, token)).json()["address"] == who.address
    assert endpoint.fetches == 1
    assert auth.fetcher is not None and auth.fetcher.snapshot()["kids"] == sorted([ES.kid, ED.kid])


async def test_an_unknown_kid_refetches_at_most_once_per_cooldown(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount, endpoint: JwksServer
) -> None:
    auth = verifier(endpoint.url, cooldown=30)
    assert (await whoami(auth, await token_from(clock, KeySet((ES,)), wallet))).status_code == 200
    newcomer = await token_from(clock, KeySet((OTHER,)), wallet)
    for _ in range(5):  # an unknown kid, many times: one refetch, then none in the cooldown
        assert (await whoami(auth, newcomer)).status_code == 401
    assert endpoint.fetches == 2
    # The issuer publishes the new key; after the cooldown the verify-only app picks it up alone.
    endpoint.reply = jwks_reply(KeySet((ES, OTHER.with_state("next"))).jwks())
    clock.advance(29)
    assert (await whoami(auth, newcomer)).status_code == 401
    assert endpoint.fetches == 2
    clock.advance(1)
    assert (await whoami(auth, newcomer)).json()["address"] == wallet.address
    assert endpoint.fetches == 3


async def test_the_set_is_refetched_after_its_max_age(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount, endpoint: JwksServer
) -> None:
    endpoint.reply = jwks_reply(KeySet((ES,)).jwks(), max_age=120)
    auth = verifier(endpoint.url)
    token = await token_from(clock, KeySet((ES,)), wallet)
    assert (await whoami(auth, token)).status_code == 200
    clock.advance(119)
    assert (await whoami(auth, token)).status_code == 200
    assert endpoint.fetches == 1
    clock.advance(1)
    assert (await whoami(auth, token)).status_code == 200
    assert endpoint.fetches == 2


async def test_a_key_withdrawn_from_the_jwks_drops_its_cached_tokens(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount, endpoint: JwksServer
) -> None:
    endpoint.reply = jwks_reply(KeySet((ES, ED)).jwks(), max_age=60)
    auth = verifier(endpoint.url)
    token = await token_from(clock, KeySet((ES, ED)), wallet)
    assert (await whoami(auth, token)).status_code == 200  # now a cache entry
    endpoint.reply = jwks_reply(KeySet((ED.with_state("current"),)).jwks(), max_age=60)
    clock.advance(60)
    assert (await whoami(auth, token)).status_code == 401  # retired: the cache did not save it


@pytest.mark.parametrize(
    "failure",
    [
        Reply(b"<html>oops</html>"),
        Reply(b'{"keys":[]}', status=500),
        Reply(b'{"keys":[]}', status=302, headers={"location": "http://127.0.0.1:9/"}),
        Reply(b'{"keys": {"kid": "x"}}'),
        Reply(b'{"keys":[' + b'{"kty":"EC"},' * 20 + b'{"kty":"EC"}]}'),
        Reply(b'{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}'),
        Reply(b"[" * 70_000),
        Reply(b" " * 70_000 + b'{"keys":[]}', length=False),
        Reply(b'{"keys":[]}', hold=True),
        "down",
    ],
    ids=[
        "html", "500", "redirect", "keys-not-list", "too-many-keys", "hmac-key", "oversized",
        "oversized-unannounced", "slower-than-timeout", "down",
    ],
)  # fmt: skip
async def test_a_failed_refetch_keeps_the_cached_keys_and_refuses_unknown_ones(
    clock: FakeClock,
    verifier: Verifier,
    wallet: LocalAccount,
    endpoint: JwksServer,
    failure: Reply | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = verifier(endpoint.url, timeout=0.3)
    known = await token_from(clock, KeySet((ES,)), wallet)
    unknown = await token_from(clock, KeySet((OTHER,)), wallet)
    assert (await whoami(auth, known)).status_code == 200
    if failure == "down":
        endpoint.stop()
    else:
        assert isinstance(failure, Reply)
        endpoint.reply = failure
    clock.advance(301)  # stale: the next request refetches, and that fails
    with caplog.at_level(logging.WARNING, logger="asgi_wallet_auth.jwks"):
        assert (await whoami(auth, known)).json()["address"] == wallet.address
        assert (await whoami(auth, unknown)).status_code == 401
    assert auth.fetcher is not None and auth.fetcher.snapshot()["kids"] == sorted([ES.kid, ED.kid])
    assert "JWKS refetch failed; keeping 2 cached keys" in caplog.text
    assert "c2VjcmV0" not in caplog.text and "oops" not in caplog.text


async def test_a_first_fetch_that_fails_refuses_every_token_until_one_succeeds(
    clock: FakeClock, verifier: Verifier, wallet: LocalAccount
) -> None:
    with JwksServer(Reply(b"garbage")) as endpoint:
        auth = verifier(endpoint.url)
        token = await token_from(clock, KeySet((ES,)), wallet)
        assert (await whoami(auth, token)).status_code == 401
        endpoint.reply = jwks_reply(KeySet((ES,)).jwks())
        clock.advance(30)
        assert (await whoami(auth, token)).status_code == 200
        assert endpoint.fetches == 2


async def test_startup_refresh_reports_success(
    clock: FakeClock, verifier: Verifier, endpoint: JwksServer
) -> None:
    auth = verifier(endpoint.url)
    assert await auth.refresh() is True
    endpoint.reply = Reply(b"nope")
    clock.advance(31)
    assert await auth.refresh() is False
    await auth.aclose()


# -- revocation through the login service's session store ----------------------------------------


async def test_a_session_ended_at_the_login_service_is_refused_here(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = MemorySessionStore(clock=clock)
    service = login_service(clock, KeySet((ES,)), revocation=True, session_store=store)
    local = JwksAuthenticator(
        issuer=URI, audience=URI, keys=public_set(ES), session_store=store, clock=clock
    )
    async with client_for(service) as client:
        token = (await login(client, wallet))["access_token"]
        assert (await whoami(local, token)).status_code == 200
        refreshed = (await client.get("/refresh", headers=bearer(token))).json()["data"]
        assert (await whoami(local, token)).status_code == 401  # replaced by the refresh
        new = refreshed["access_token"]
        assert (await whoami(local, new)).status_code == 200
        assert (await client.post("/logout", headers=bearer(new))).status_code == 200
    assert (await whoami(local, new)).status_code == 401


async def test_with_local_keys_and_no_store_the_middleware_keeps_the_verdicts(
    clock: FakeClock, wallet: LocalAccount, endpoint: JwksServer, verifier: Verifier
) -> None:
    store = MemorySessionStore(clock=clock)
    local = JwksAuthenticator(issuer=URI, audience=URI, keys=public_set(ES), clock=clock)
    # A verdict can change only where keys are fetched or sessions are looked up.
    assert local.revocation is False
    assert verifier(endpoint.url).revocation is True
    assert JwksAuthenticator(
        issuer=URI, audience=URI, keys=public_set(ES), session_store=store
    ).revocation is True
    verified: list[bytes] = []

    def counting(verify: Any) -> Any:
        def counted(signing_input: bytes, signature: bytes) -> bool:
            verified.append(signing_input)
            return bool(verify(signing_input, signature))

        return counted

    local._local = {header: counting(verify) for header, verify in local._local.items()}
    token = await token_from(clock, KeySet((ES,)), wallet)
    async with client_for(protected_app(local)) as client:
        for _ in range(3):
            assert (await client.get("/whoami", headers=bearer(token))).status_code == 200
        assert len(verified) == 1  # verified once, then the middleware's cache
        clock.advance(8 * 24 * 3600)  # past the token's expiry: checked again, and refused
        assert (await client.get("/whoami", headers=bearer(token))).status_code == 401
        assert len(verified) == 2


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("http://auth.example.com/.well-known/jwks.json", "loopback hosts only"),
        ("http://10.0.0.1/jwks.json", "loopback hosts only"),
        ("ftp://127.0.0.1/jwks.json", "https://"),
        ("https://user:pw@auth.example.com/jwks.json", "credentials"),
        ("not a url", "https://"),
    ],
)
def test_jwks_urls_must_be_https_except_on_loopback(url: str, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        check_jwks_url(url)


def test_loopback_http_urls_are_allowed() -> None:
    for url in ("http://127.0.0.1:8000/j", "http://[::1]/j", "http://localhost/j"):
        assert check_jwks_url(url) == url


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({}, "exactly one of"),
        ({"keys": KeySet((ES,)), "jwks_url": "https://a.example/j"}, "exactly one of"),
        ({"keys": KeySet((ES,)), "issuer": ""}, "issuer must be"),
        ({"keys": KeySet((ES,)), "cache_size": -1}, "cache_size"),
        ({"keys": KeySet((ES,)), "session_store": object()}, "SessionStore"),
    ],
)
def test_misconfigured_authenticator_fails_at_construction(
    kwargs: dict[str, Any], fix: str
) -> None:
    settings: dict[str, Any] = {"issuer": URI, "audience": URI, **kwargs}
    with pytest.raises(ValueError, match=fix):
        JwksAuthenticator(**settings)


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"cooldown": 0}, "cooldown"),
        ({"timeout": -1}, "timeout"),
        ({"max_keys": 0}, "max_keys"),
        ({"min_age": -1}, "min_age"),
    ],
)
def test_misconfigured_fetcher_fails_at_construction(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        JwksFetcher("https://auth.example.com/.well-known/jwks.json", **kwargs)


async def test_a_logout_on_a_login_service_on_redis_is_refused_by_a_verify_only_app_sharing_it(
    clock: FakeClock, wallet: LocalAccount, redis_server: Any
) -> None:
    import uuid

    import redis.asyncio as aioredis

    from asgi_wallet_auth.stores.redis import RedisNonceStore, RedisSessionStore

    prefix = f"v:{uuid.uuid4().hex}:"
    nonces = RedisNonceStore(redis_server.url, prefix=prefix)
    client = aioredis.from_url(redis_server.url)
    try:
        service = login_service(clock, KeySet((ES,)), revocation=True)
        service = type(service)(
            secret_key=SECRET_KEY,
            domain=DOMAIN,
            uri=URI,
            clock=clock,
            nonce_store=nonces,
            tokens=service.token_settings,
        )
        # The login service keeps its sessions at its nonce prefix + "session:": so does this app.
        store = RedisSessionStore(client, prefix=f"{prefix}session:")
        local = JwksAuthenticator(
            issuer=URI, audience=URI, keys=public_set(ES), session_store=store, clock=clock
        )
        async with client_for(service) as login_client:
            token = (await login(login_client, wallet))["access_token"]
            assert (await whoami(local, token)).status_code == 200
            assert (await login_client.post("/logout", headers=bearer(token))).status_code == 200
        assert (await whoami(local, token)).status_code == 401
    finally:
        await nonces.aclose()
        await client.aclose()


# -- the subject, held to its chain's canonical form as in the login service --------------------

SOLANA_ADDRESS = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"  # base58 of 32 bytes


@pytest.mark.parametrize(
    ("sub", "did_type", "accepted"),
    [
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "eth", True),
        ("0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", "eth", False),  # not the EIP-55 form
        ("admin", "eth", False),
        (SOLANA_ADDRESS, "sol", True),
        (SOLANA_ADDRESS, "eth", False),  # an address of another chain
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "btc", False),  # a chain nobody signs in
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", 1, False),  # a did type that is no text
    ],
)
def test_a_subject_is_held_to_its_chains_canonical_form_as_in_the_login_service(
    clock: FakeClock, sub: str, did_type: object, accepted: bool
) -> None:
    service = login_service(clock, KeySet((ES,)))
    extra = {"userid": sub, "did_type": did_type}
    token = service.tokens.issue(subject=sub, auth_time=int(clock()), extra=extra).token
    local = JwksAuthenticator(issuer=URI, audience=URI, keys=public_set(ES), clock=clock)
    if accepted:
        assert local.authenticate_token(token).address == sub
    else:
        with pytest.raises(WalletAuthError) as refused:
            local.authenticate_token(token)
        assert refused.value.code == 40111


def test_the_chains_a_verify_only_service_accepts_are_configurable(clock: FakeClock) -> None:
    service = login_service(clock, KeySet((ES,)))
    extra = {"userid": SOLANA_ADDRESS, "did_type": "sol"}
    token = service.tokens.issue(subject=SOLANA_ADDRESS, auth_time=int(clock()), extra=extra).token
    ethereum_only = JwksAuthenticator(
        issuer=URI, audience=URI, keys=public_set(ES), clock=clock, chains=[EthereumVerifier()]
    )
    with pytest.raises(WalletAuthError):
        ethereum_only.authenticate_token(token)
    for chains in ([], ["eth"]):
        with pytest.raises(ValueError, match="chains must be ChainVerifiers"):
            JwksAuthenticator(issuer=URI, audience=URI, keys=public_set(ES), chains=chains)
