"""The login routes of ``WalletAuth`` (DESIGN.md §2.1), called in process as ASGI."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import jwt
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import MemoryNonceStore, MemoryUserStore, WalletAuth, WalletUser
from asgi_wallet_auth.errors import LoginRefused
from tests.conftest import DOMAIN, SECRET_KEY, T0, URI, FakeClock, client_for, sign_text
from tests.helpers import assert_error, get_secret, login, make_auth, siwe_text

DAY = 86_400


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


async def post_login(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post("/login", json=fields)


async def signed_login(
    client: httpx.AsyncClient, secret: str, signer: LocalAccount, address: str
) -> httpx.Response:
    """``POST /login`` with ``signer``'s signature over the raw secret, claiming ``address``."""
    return await post_login(
        client,
        login_random_secret=secret,
        signature=sign_text(signer, secret),
        wallet_address=address,
    )


# -- secrets --------------------------------------------------------------------------------


async def test_secret_is_alphanumeric_with_at_least_128_bits(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    assert re.fullmatch(r"[A-Za-z0-9]+", secret)
    assert len(secret) * 4 >= 128  # hex digits carry 4 bits each


async def test_secrets_are_never_reissued(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    secrets_seen = {await get_secret(client, wallet.address) for _ in range(32)}
    assert len(secrets_seen) == 32


async def test_secret_response_is_not_cacheable(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await client.post("/login_random_secret", json={"wallet_address": wallet.address})
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "address",
    [
        "0x" + "0" * 40,
        "0x" + "g" * 40,
        "0x1234",
        "",
        None,
        12,
        ["0x" + "a" * 40],
        # a mixed-case address whose EIP-55 checksum is wrong
        "0x52908400098527886E0F7030069857D2E4169EE7".replace("E0F7", "e0F7"),
    ],
)
async def test_secret_request_refuses_malformed_address(
    client: httpx.AsyncClient, address: object
) -> None:
    response = await client.post("/login_random_secret", json={"wallet_address": address})
    assert_error(response, 400)


async def test_lowercase_and_checksummed_address_are_one_identity(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address.lower())
    response = await signed_login(client, secret, wallet, wallet.address)
    assert response.status_code == 200
    assert response.json()["data"]["wallet_address"] == wallet.address


# -- the raw-secret login -------------------------------------------------------------------


async def test_login_returns_a_bearer_token_with_the_documented_claims(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    data = await login(client, wallet)
    assert data["token_type"] == "Bearer"
    assert data["wallet_address"] == wallet.address
    assert data["expires_in"] == 7 * DAY
    claims = jwt.decode(
        data["access_token"],
        SECRET_KEY,
        algorithms=["HS256"],
        audience=URI,
        issuer=URI,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == wallet.address
    assert claims["iat"] == int(T0)
    assert (
        claims["exp"]
        == int(T0) + 7 * DAY
        == claims["access_expired_at"]
        == data["access_expired_at"]
    )
    assert claims["auth_time"] == int(T0)
    assert claims["userid"] == wallet.address and claims["did_value"] == wallet.address
    assert claims["did_type"] == "eth"
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    assert jwt.get_unverified_header(data["access_token"])["alg"] == "HS256"


async def test_secret_is_single_use(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    secret = await get_secret(client, wallet.address)
    fields = {
        "login_random_secret": secret,
        "signature": sign_text(wallet, secret),
        "wallet_address": wallet.address,
    }
    assert (await post_login(client, **fields)).status_code == 200
    assert_error(await post_login(client, **fields), 401, 40102)


async def test_secret_expires(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    secret = await get_secret(client, wallet.address)
    clock.advance(300)  # the default nonce lifetime
    response = await signed_login(client, secret, wallet, wallet.address)
    assert_error(response, 401, 40102)


async def test_secret_is_still_valid_just_before_expiry(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    secret = await get_secret(client, wallet.address)
    clock.advance(299)
    response = await signed_login(client, secret, wallet, wallet.address)
    assert response.status_code == 200


async def test_secret_is_bound_to_its_address(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    # The other wallet signs the victim's secret correctly with its own key: still refused...
    response = await signed_login(client, secret, other_wallet, other_wallet.address)
    assert_error(response, 401, 40102)
    # ...and the attempt did not burn the victim's secret.
    response = await signed_login(client, secret, wallet, wallet.address)
    assert response.status_code == 200


async def test_an_unknown_secret_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = "a" * 40
    response = await signed_login(client, secret, wallet, wallet.address)
    assert_error(response, 401, 40102)


@pytest.mark.parametrize(
    "attempt", ["wrong signer", "garbage signature", "wrong message", "high s"]
)
async def test_failed_attempts_do_not_consume_the_secret(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount, attempt: str
) -> None:
    secret = await get_secret(client, wallet.address)
    good = sign_text(wallet, secret)
    bad = {
        "wrong signer": sign_text(other_wallet, secret),
        "garbage signature": "0x" + "ab" * 65,
        "wrong message": sign_text(wallet, secret + "x"),
        "high s": _high_s_twin(good),
    }[attempt]
    response = await post_login(
        client, login_random_secret=secret, signature=bad, wallet_address=wallet.address
    )
    assert response.status_code in (400, 401)
    response = await post_login(
        client, login_random_secret=secret, signature=good, wallet_address=wallet.address
    )
    assert response.status_code == 200


def _high_s_twin(signature: str) -> str:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    raw = bytes.fromhex(signature[2:])
    s = n - int.from_bytes(raw[32:64], "big")
    v = 28 if raw[64] in (0, 27) else 27
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([v])).hex()


async def test_wrong_signer_is_401(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    response = await signed_login(client, secret, other_wallet, wallet.address)
    assert_error(response, 401, 40101)


@pytest.mark.parametrize(
    "signature",
    ["0x" + "ab" * 64, "ab" * 65, "0x" + "zz" * 65, "", None, 7, "0x" + "ab" * 64 + "1d"],
)
async def test_malformed_signature_is_400(
    client: httpx.AsyncClient, wallet: LocalAccount, signature: object
) -> None:
    secret = await get_secret(client, wallet.address)
    response = await post_login(
        client, login_random_secret=secret, signature=signature, wallet_address=wallet.address
    )
    assert_error(response, 400)


@pytest.mark.parametrize("encoding", ["27/28", "0/1"])
async def test_both_v_encodings_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, encoding: str
) -> None:
    secret = await get_secret(client, wallet.address)
    raw = bytes.fromhex(sign_text(wallet, secret)[2:])
    assert raw[64] in (27, 28)  # eth-account signs with 27/28
    v = raw[64] if encoding == "27/28" else raw[64] - 27
    signature = "0x" + (raw[:64] + bytes([v])).hex()
    response = await post_login(
        client, login_random_secret=secret, signature=signature, wallet_address=wallet.address
    )
    assert response.status_code == 200


@pytest.mark.parametrize("v", [2, 26, 29, 35, 36])
async def test_other_v_values_are_400(
    client: httpx.AsyncClient, wallet: LocalAccount, v: int
) -> None:
    secret = await get_secret(client, wallet.address)
    raw = bytes.fromhex(sign_text(wallet, secret)[2:])
    signature = "0x" + (raw[:64] + bytes([v])).hex()
    response = await post_login(
        client, login_random_secret=secret, signature=signature, wallet_address=wallet.address
    )
    assert_error(response, 400, 40003)


async def test_high_s_twin_of_a_valid_signature_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    twin = _high_s_twin(sign_text(wallet, secret))
    response = await post_login(
        client, login_random_secret=secret, signature=twin, wallet_address=wallet.address
    )
    assert_error(response, 400, 40003)


async def test_concurrent_identical_logins_yield_exactly_one_token(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    fields = {
        "login_random_secret": secret,
        "signature": sign_text(wallet, secret),
        "wallet_address": wallet.address,
    }
    statuses: list[int] = []

    async def attempt() -> None:
        statuses.append((await post_login(client, **fields)).status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(attempt)
    assert sorted(statuses) == [200] + [401] * 19


async def test_raw_secret_login_can_be_switched_off(clock: FakeClock, wallet: LocalAccount) -> None:
    async with client_for(make_auth(clock, allow_raw_secret=False)) as client:
        secret = await get_secret(client, wallet.address)
        response = await signed_login(client, secret, wallet, wallet.address)
        assert_error(response, 400, 40005)


@pytest.mark.parametrize(
    "secret", ["", "short", "has-dash-1234567", "a" * 129, "ü" * 20, 12345678, None, "abc 12345"]
)
async def test_malformed_secret_is_400(
    client: httpx.AsyncClient, wallet: LocalAccount, secret: object
) -> None:
    response = await post_login(
        client,
        login_random_secret=secret,
        signature=sign_text(wallet, "x"),
        wallet_address=wallet.address,
    )
    assert_error(response, 400)


# -- EIP-4361 logins ------------------------------------------------------------------------


async def siwe_login(
    client: httpx.AsyncClient, account: LocalAccount, text_for: Any, address: str | None = None
) -> httpx.Response:
    secret = await get_secret(client, account.address)
    text = text_for(secret)
    return await post_login(
        client,
        login_random_secret=secret,
        signature=sign_text(account, text),
        wallet_address=address or account.address,
        signature_content=text,
    )


async def test_siwe_login_succeeds(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0)
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["wallet_address"] == wallet.address


@pytest.mark.parametrize(
    "domain",
    [
        "Example.com",
        "example.com.",
        "example.com:443",
        "user@example.com",
        "login.example.com",
        "example.co",
        "ex\u0430mple.com",  # Cyrillic a
        "xn--exmple-4nf.com",
        "evil.com",
    ],
)
async def test_siwe_domain_must_match_exactly(
    client: httpx.AsyncClient, wallet: LocalAccount, domain: str
) -> None:
    response = await siwe_login(
        client,
        wallet,
        lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, domain=domain),
    )
    assert response.status_code in (400, 401)
    assert response.json()["code"] != 0


@pytest.mark.parametrize(
    "uri", ["https://example.com/", "http://example.com", "https://EXAMPLE.com", "https://evil.com"]
)
async def test_siwe_uri_must_match_exactly(
    client: httpx.AsyncClient, wallet: LocalAccount, uri: str
) -> None:
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, uri=uri)
    )
    assert_error(response, 401, 40103)


async def test_siwe_nonce_must_be_the_secret(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=wallet.address, nonce=s[::-1], issued_at=T0)
    )
    assert_error(response, 401, 40103)


async def test_siwe_address_must_be_the_wallet(
    client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    # The wallet signs a message naming another address.
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=other_wallet.address, nonce=s, issued_at=T0)
    )
    assert_error(response, 401, 40103)


async def test_siwe_chain_id_must_be_allowed(clock: FakeClock, wallet: LocalAccount) -> None:
    async with client_for(make_auth(clock, chain_ids={1, 10})) as client:
        bad = await siwe_login(
            client,
            wallet,
            lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, chain_id=5),
        )
        assert_error(bad, 401, 40103)
        good = await siwe_login(
            client,
            wallet,
            lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, chain_id=10),
        )
        assert good.status_code == 200


async def test_siwe_expired_message_is_refused_even_without_not_before(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client,
        wallet,
        lambda s: siwe_text(
            address=wallet.address, nonce=s, issued_at=T0 - 600, expiration=T0 - 120
        ),
    )
    assert_error(response, 401, 40104)


async def test_siwe_not_before_in_the_future_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client,
        wallet,
        lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, not_before=T0 + 600),
    )
    assert_error(response, 401, 40104)


async def test_siwe_issued_far_in_the_future_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0 + 3600)
    )
    assert_error(response, 401, 40104)


async def test_siwe_message_whose_window_is_empty_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client,
        wallet,
        lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0, expiration=T0 - 1),
    )
    assert_error(response, 401, 40104)


async def test_siwe_small_clock_skew_is_tolerated(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await siwe_login(
        client, wallet, lambda s: siwe_text(address=wallet.address, nonce=s, issued_at=T0 + 30)
    )
    assert response.status_code == 200


async def test_siwe_signature_is_checked_over_the_exact_text(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    text = siwe_text(address=wallet.address, nonce=secret, issued_at=T0)
    signed = sign_text(wallet, text)
    altered = text.replace("Sign in to Example", "Sign in to Example!")
    response = await post_login(
        client,
        login_random_secret=secret,
        signature=signed,
        wallet_address=wallet.address,
        signature_content=altered,
    )
    assert_error(response, 401, 40101)
    # Still redeemable with the right text: the failure burned nothing.
    response = await post_login(
        client,
        login_random_secret=secret,
        signature=signed,
        wallet_address=wallet.address,
        signature_content=text,
    )
    assert response.status_code == 200


@pytest.mark.parametrize("content", ["not a siwe message", "", "x" * 9000, 5, ["a"]])
async def test_malformed_signature_content_is_400(
    client: httpx.AsyncClient, wallet: LocalAccount, content: object
) -> None:
    secret = await get_secret(client, wallet.address)
    response = await post_login(
        client,
        login_random_secret=secret,
        signature=sign_text(wallet, secret),
        wallet_address=wallet.address,
        signature_content=content,
    )
    assert_error(response, 400)


# -- refresh --------------------------------------------------------------------------------


async def test_refresh_issues_a_new_token_that_keeps_the_session(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    data = await login(client, wallet)
    clock.advance(DAY)
    response = await client.get(
        "/refresh", headers={"Authorization": f"Bearer {data['access_token']}"}
    )
    assert response.status_code == 200, response.text
    new = response.json()["data"]
    assert new["access_token"] != data["access_token"]
    claims = jwt.decode(new["access_token"], options={"verify_signature": False})
    assert claims["auth_time"] == int(T0)
    assert claims["iat"] == int(T0) + DAY
    assert claims["sub"] == wallet.address and claims["userid"] == wallet.address


async def test_refresh_never_extends_past_the_absolute_lifetime(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    token = (await login(client, wallet))["access_token"]
    for _ in range(4):  # refresh every 6 days: 24 days after login
        clock.advance(6 * DAY)
        response = await client.get("/refresh", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        token = response.json()["data"]["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] == int(T0) + 30 * DAY  # capped at the session's end, not 24 + 7 days
    clock.advance(6 * DAY)  # 30 days after login
    assert_error(await client.get("/refresh", headers={"Authorization": f"Bearer {token}"}), 401)


async def test_refresh_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/refresh")
    assert_error(response, 401, 40112)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer a.b.c", "Bearer ", "Bearer x.y.z.w"])
async def test_refresh_with_a_bad_token_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/refresh", headers={"Authorization": header})
    assert_error(response, 401)
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_refresh_with_an_expired_token_is_401(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    token = (await login(client, wallet))["access_token"]
    clock.advance(7 * DAY)
    assert_error(
        await client.get("/refresh", headers={"Authorization": f"Bearer {token}"}), 401, 40111
    )


# -- bodies and routing ---------------------------------------------------------------------


async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = json.dumps({"wallet_address": wallet.address})
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        None,
    ]:
        headers = {} if content_type is None else {"content-type": content_type}
        response = await client.post("/login_random_secret", content=body, headers=headers)
        assert_error(response, 415)


async def test_non_utf8_charset_is_415(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    response = await client.post(
        "/login_random_secret",
        content=json.dumps({"wallet_address": wallet.address}).encode("utf-16"),
        headers={"content-type": "application/json; charset=utf-16"},
    )
    assert_error(response, 415)


async def test_json_with_charset_utf8_is_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    response = await client.post(
        "/login_random_secret",
        content=json.dumps({"wallet_address": wallet.address}),
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200


async def test_declared_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/login", content=b"{" + b" " * 20_000 + b"}", headers={"content-type": "application/json"}
    )
    assert_error(response, 413)


async def test_streamed_oversized_body_is_413_without_reading_it_all(auth: WalletAuth) -> None:
    chunks_sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal chunks_sent
        chunks_sent += 1
        return {"type": "http.request", "body": b" " * 4096, "more_body": chunks_sent < 1000}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/login",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    await auth(scope, receive, send)
    assert sent[0]["status"] == 413
    assert chunks_sent <= 5  # stopped right after passing the 16 KiB cap


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"string"',
        b"null",
        b'{"wallet_address": NaN}',
        b'{"wallet_address": Infinity}',
        b'{"wallet_address": "0xab", "wallet_address": "0xcd"}',
        b'{"wallet_address": "\\ud800"}',
        b"\xff\xfe{}",
        b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"{'wallet_address': 1}",
    ],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/login_random_secret", content=raw, headers={"content-type": "application/json"}
    )
    assert_error(response, 400)


async def test_unknown_route_is_404_in_the_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/logins", json={}), 404, 40401)
    assert_error(await client.get("/login/"), 404)


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    assert_error(response, 405, 40501)
    assert response.headers["allow"] == "POST"
    refresh = await client.put("/refresh")
    assert_error(refresh, 405)
    assert refresh.headers["allow"] == "GET, POST"


# -- hooks ----------------------------------------------------------------------------------


async def test_login_hook_can_refuse_with_403(clock: FakeClock, wallet: LocalAccount) -> None:
    async def refuse(request: Any, user: WalletUser) -> None:
        raise LoginRefused("this wallet is not on the allow list")

    async with client_for(make_auth(clock, on_login=refuse)) as client:
        secret = await get_secret(client, wallet.address)
        response = await signed_login(client, secret, wallet, wallet.address)
        body = assert_error(response, 403, 40301)
        assert body["msg"] == "this wallet is not on the allow list"


async def test_login_hook_adds_claims_but_cannot_override_reserved_ones(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    seen: list[tuple[str, str]] = []

    async def add(request: Any, user: WalletUser) -> dict[str, Any]:
        seen.append((request.url.path, user.address))
        return {"role": "admin", "sub": "0x" + "1" * 40, "exp": 9_999_999_999}

    async with client_for(make_auth(clock, on_login=add)) as client:
        data = await login(client, wallet)
        claims = jwt.decode(data["access_token"], options={"verify_signature": False})
        assert claims["role"] == "admin"
        assert claims["sub"] == wallet.address
        assert claims["exp"] == int(T0) + 7 * DAY
        assert seen == [("/login", wallet.address)]
        # Claims added at login survive a refresh.
        response = await client.get(
            "/refresh", headers={"Authorization": f"Bearer {data['access_token']}"}
        )
        refreshed = jwt.decode(
            response.json()["data"]["access_token"], options={"verify_signature": False}
        )
        assert refreshed["role"] == "admin"


@pytest.mark.parametrize("result", ["crash", "not a mapping", "not json", "nan", "infinity"])
async def test_a_broken_login_hook_refuses_instead_of_failing_open(
    clock: FakeClock, wallet: LocalAccount, result: str
) -> None:
    async def hook(request: Any, user: WalletUser) -> Any:
        if result == "crash":
            raise RuntimeError("bug in the application's hook")
        if result == "not a mapping":
            return ["role"]
        if result == "nan":  # not JSON: the token encoder would write it as null
            return {"score": float("nan")}
        if result == "infinity":
            return {"score": float("inf")}
        return {"when": object()}

    async with client_for(make_auth(clock, on_login=hook)) as client:
        secret = await get_secret(client, wallet.address)
        response = await signed_login(client, secret, wallet, wallet.address)
        assert_error(response, 403, 40301)


async def test_refresh_hook_can_refuse(clock: FakeClock, wallet: LocalAccount) -> None:
    async def refuse(request: Any, user: WalletUser) -> None:
        raise LoginRefused()

    async with client_for(make_auth(clock, on_refresh=refuse)) as client:
        token = (await login(client, wallet))["access_token"]
        assert_error(
            await client.get("/refresh", headers={"Authorization": f"Bearer {token}"}), 403
        )


# -- stores ---------------------------------------------------------------------------------


async def test_user_store_records_first_and_last_login(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    users = MemoryUserStore()
    async with client_for(make_auth(clock, user_store=users)) as client:
        await login(client, wallet)
        clock.advance(3600)
        await login(client, wallet)
    record = await users.get_by_address(wallet.address)
    assert record is not None
    assert (record.userid, record.address, record.did_type) == (
        wallet.address,
        wallet.address,
        "eth",
    )
    assert (record.first_login, record.last_login) == (T0, T0 + 3600)


class BrokenNonceStore(MemoryNonceStore):
    """Fault injection: the store fails on the operation named by ``fail``."""

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail

    async def put(self, key: str, value: str, ttl: float) -> bool:
        if self.fail == "put":
            raise ConnectionError("store down")
        return await super().put(key, value, ttl)

    async def take(self, key: str) -> str | None:
        if self.fail == "take":
            raise TimeoutError("store timed out")
        return await super().take(key)


async def test_unreachable_nonce_store_gives_503_and_no_secret(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async with client_for(make_auth(clock, nonce_store=BrokenNonceStore("put"))) as client:
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert_error(response, 503, 50301)


async def test_nonce_store_failing_at_login_gives_503_and_no_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = BrokenNonceStore("none")
    async with client_for(make_auth(clock, nonce_store=store)) as client:
        secret = await get_secret(client, wallet.address)
        store.fail = "take"
        response = await signed_login(client, secret, wallet, wallet.address)
        assert_error(response, 503)


class BrokenUserStore(MemoryUserStore):
    async def save(self, record: Any) -> None:
        raise OSError("disk full")

    async def merge(self, login: Any, *, max_devices: int) -> Any:
        raise OSError("disk full")


async def test_unreachable_user_store_gives_503_and_no_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async with client_for(make_auth(clock, user_store=BrokenUserStore())) as client:
        secret = await get_secret(client, wallet.address)
        response = await signed_login(client, secret, wallet, wallet.address)
        assert_error(response, 503)


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        ({"secret_key": "short"}, "at least 32 bytes"),
        ({"secret_key": b"x" * 31}, "at least 32 bytes"),
        ({"domain": ""}, "domain is required"),
        ({"uri": ""}, "uri is required"),
        ({"uri": "https://other.com"}, "must equal domain"),
        ({"uri": "https://example.com:8443"}, "must equal domain"),
        ({"uri": "https://user@example.com"}, "must equal domain"),
        ({"uri": "ftp://example.com"}, "https://"),
        ({"domain": "https://example.com"}, "bare host"),
        ({"token_lifetime": 0}, "TokenSettings.lifetime must be a positive"),
        ({"session_lifetime": -1}, "session_lifetime must be a positive"),
        ({"nonce_lifetime": 0}, "nonce_lifetime must be a positive"),
        ({"chain_ids": set()}, "chain_ids"),
        ({"chain_ids": {0}}, "chain_ids"),
        ({"max_body_size": 10}, "max_body_size"),
        ({"clock_skew": -1}, "clock_skew"),
        ({"algorithm": "none"}, "algorithm must be one of"),
        ({"algorithm": "HS512", "secret_key": "k" * 48}, "at least 64 bytes for HS512"),
        ({"nonce_store": object()}, "NonceStore protocol"),
        ({"user_store": object()}, "UserStore protocol"),
    ],
)
def test_misconfiguration_fails_at_construction_with_the_fix(
    clock: FakeClock, overrides: dict[str, Any], fix: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        make_auth(clock, **overrides)


def test_domain_with_port_and_matching_uri_is_accepted(clock: FakeClock) -> None:
    auth = make_auth(clock, domain="localhost:8000", uri="http://localhost:8000")
    assert (auth.domain, auth.uri) == ("localhost:8000", "http://localhost:8000")


def test_defaults_are_the_documented_ones(clock: FakeClock) -> None:
    auth = WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI)
    assert auth.token_settings.lifetime == 7 * DAY
    assert auth.token_settings.session_lifetime == 30 * DAY
    assert auth.login_settings.nonce_lifetime == 300
    assert auth.login_settings.allow_raw_secret is True
    assert list(auth.chains) == ["eth"]
    assert auth.chains["eth"].chain_ids is None  # type: ignore[attr-defined]
    assert auth.max_body_size == 16 * 1024
    assert isinstance(auth.nonce_store, MemoryNonceStore)
    assert isinstance(auth.user_store, MemoryUserStore)
    assert auth.tokens.algorithm == "HS256"
