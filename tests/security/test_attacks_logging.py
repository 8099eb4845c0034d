"""Attacks on logs and error bodies: nothing sensitive may leak through either.

Every flow runs with every logger at DEBUG (the root logger included, and a handler on the
library's logger in case an application stops propagation). Afterwards no log record (message,
``msg``, ``args``, exception text or stack) and no error response (body and headers) may contain
a login secret, an access token or any of its three segments, a CSRF token, a signature (hex with
and without ``0x``, its r and s, standard and URL-safe base64), a private key, an ed25519 seed,
or the avatar (its base64, any 64-character slice of that, or its bytes in hex).

Records of the ``httpx``/``httpcore`` loggers are the test client's own request lines (a real
server never runs it); they are left out so that a signature sent in a query string, which the
client logs, is not blamed on the service.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import nacl.signing
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import Scope

from asgi_wallet_auth import (
    MemoryNonceStore,
    MemoryUserStore,
    TokenSettings,
    UserRecord,
    WalletAuth,
    WalletAuthMiddleware,
    WalletUser,
)
from asgi_wallet_auth.cookies import CookieSettings
from asgi_wallet_auth.errors import LoginRefused
from asgi_wallet_auth.ratelimit import MemoryRateLimiter, RateLimit
from asgi_wallet_auth.stores import MemorySessionStore
from tests.conftest import OTHER_KEY, SECRET_KEY, T0, URI, WALLET_KEY, FakeClock, sign_text
from tests.helpers import make_auth, siwe_text
from tests.security.support import web3mq_login_body

DAY = 86_400
NOW_MS = int(T0 * 1000)
SEED = bytes(range(100, 132))
DEVICE = nacl.signing.SigningKey(SEED)
OTHER_DEVICE = nacl.signing.SigningKey(bytes(range(132, 164)))
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# A PNG header followed by 700 bytes that look random: every 64-character slice is unique.
AVATAR = b"\x89PNG\r\n\x1a\n" + b"".join(
    hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(22)
)
AVATAR_B64 = base64.b64encode(AVATAR).decode()
QUIET = ("httpx", "httpcore")


# -- what must never leak -----------------------------------------------------------------------


class Sensitive:
    """Every sensitive value of a run, in every spelling it could leak in."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.slices: set[str] = set()  # 64-character windows of payloads
        for key in (WALLET_KEY, OTHER_KEY):
            self.values |= {key, key[2:], key[2:].upper()}
        self.values.add(SECRET_KEY)
        for device in (DEVICE, OTHER_DEVICE):
            seed = bytes(device)
            full = seed + device.verify_key.encode()  # libsodium's 64-byte secret key
            for raw in (seed, full):
                self.values |= {raw.hex(), base64.b64encode(raw).decode(), _b64url(raw)}
        self.payload(AVATAR_B64)
        self.payload(AVATAR.hex())

    def add(self, value: str) -> None:
        assert value
        self.values.add(value)

    def secret(self, secret: str) -> None:
        self.add(secret)

    def signature(self, signature: str) -> None:
        """An EIP-191 signature: 0x-hex, bare hex, r, s and both base64 forms of its bytes."""
        raw = bytes.fromhex(signature[2:])
        self.values |= {signature, signature[2:], signature[2:].upper(), raw[:32].hex()}
        self.values |= {raw[32:64].hex(), base64.b64encode(raw).decode(), _b64url(raw)}

    def ed25519_signature(self, b64: str) -> None:
        raw = base64.b64decode(b64)
        self.values |= {b64, b64.rstrip("="), raw.hex(), _b64url(raw)}

    def token(self, token: str) -> None:
        self.add(token)
        self.values.update(token.split("."))

    def payload(self, text: str) -> None:
        self.add(text)
        self.slices |= {text[i : i + 64] for i in range(len(text) - 63)}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Capture(logging.Handler):
    """Collects every record, formatted with its exception and stack."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        parts = []
        for record in self.records:
            if record.name.startswith(QUIET):
                continue
            parts += [
                formatter.format(record),  # also renders exc_info into exc_text
                str(record.msg),
                repr(record.args),
                record.exc_text or "",
                record.stack_info or "",
            ]
        return "\n".join(parts)


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[Capture]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="asgi_wallet_auth")
    root = logging.getLogger()
    library = logging.getLogger("asgi_wallet_auth")
    handler = Capture()
    saved = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    library.addHandler(handler)  # kept even if an application turns propagation off
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        library.removeHandler(handler)
        root.setLevel(saved)


class Recorder:
    """An httpx client that keeps every error response for the final check."""

    def __init__(self, app: Any, base_url: str = "https://example.com") -> None:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 5555))
        self.client = httpx.AsyncClient(transport=transport, base_url=base_url)
        self.errors: list[str] = []

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, url, **kwargs)
        if response.status_code >= 400 or '"code":0' not in response.text:
            self.errors.append(f"{response.status_code} {response.headers!r} {response.text}")
        return response

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)


def assert_nothing_leaked(capture: Capture, sensitive: Sensitive, *recorders: Recorder) -> None:
    library = [r for r in capture.records if r.name.startswith("asgi_wallet_auth")]
    assert library, "the flows log something: the check below must have input"
    logged = capture.text()
    errors = "\n".join(e for r in recorders for e in r.errors)
    assert errors, "the flows include refusals: their bodies must be checked"
    for value in sorted(sensitive.values):
        assert value not in logged, f"leaked into a log record: {value[:24]}…"
        assert value not in errors, f"leaked into an error response: {value[:24]}…"
    windows = {logged[i : i + 64] for i in range(len(logged) - 63)}
    windows |= {errors[i : i + 64] for i in range(len(errors) - 63)}
    assert not windows & sensitive.slices, "a 64-character slice of the avatar leaked"


# -- the application ----------------------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({"address": user.address if isinstance(user, WalletUser) else None})


def build_app(auth: WalletAuth) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


def high_s_twin(signature: str) -> str:
    raw = bytes.fromhex(signature[2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([raw[64] ^ 1])).hex()


def web3mq_body(
    account: LocalAccount, *, signer: LocalAccount | None = None, **extra: Any
) -> dict[str, Any]:
    userid = extra.pop("userid", "user:alice")
    return web3mq_login_body(account, device=DEVICE, userid=userid, signer=signer, **extra)


async def legacy_login(
    http: Recorder,
    account: LocalAccount,
    sensitive: Sensitive,
    prefix: str = "/auth",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    response = await http.post(
        f"{prefix}/login_random_secret",
        json={"wallet_address": account.address},
        headers=headers,
    )
    if response.status_code != 200:
        return response
    secret = response.json()["data"]
    sensitive.secret(secret)
    signature = sign_text(account, secret)
    sensitive.signature(signature)
    login = await http.post(
        f"{prefix}/login",
        json={
            "login_random_secret": secret,
            "signature": signature,
            "wallet_address": account.address,
        },
        headers=headers,
    )
    if login.status_code == 200:
        sensitive.token(login.json()["data"]["access_token"])
    return login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- flows --------------------------------------------------------------------------------------


async def test_legacy_and_siwe_login_with_every_failure_leak_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    auth = make_auth(clock, revocation=True)
    async with Recorder(build_app(auth)) as http:
        secret = (
            await http.post("/auth/login_random_secret", json={"wallet_address": wallet.address})
        ).json()["data"]
        sensitive.secret(secret)
        good = sign_text(wallet, secret)
        wrong = sign_text(other_wallet, secret)
        for signature in (good, wrong, high_s_twin(good)):
            sensitive.signature(signature)
        body = {"login_random_secret": secret, "signature": good, "wallet_address": wallet.address}
        failures: list[dict[str, Any]] = [
            {**body, "signature": wrong},  # another signer: 401
            {**body, "signature": high_s_twin(good)},  # malleated: 400
            {**body, "signature": good[:-2] + "1f"},  # bad v: 400
            {**body, "wallet_address": other_wallet.address},  # secret bound to its wallet
            {**body, "login_random_secret": secret + "!"},  # bad grammar
            {**body, "login_random_secret": secret * 4},  # over-long
            {**body, "signature": good + good},  # over-long signature
            {**body, "signature_content": f"{secret} {good}"},  # not EIP-4361
            {**body, "wallet_address": secret},
            {**body, "signature": [good]},
        ]
        for attempt in failures:
            assert (await http.post("/auth/login", json=attempt)).status_code in (400, 401)
        raw = json.dumps(body)
        for content, content_type in (
            (raw[:-5], "application/json"),  # truncated JSON
            (raw, "text/plain"),  # 415
            (raw + raw, "application/json"),
            (raw.replace("{", '{"login_random_secret": "x", ', 1), "application/json"),
            (raw.encode("utf-16"), "application/json"),
        ):
            response = await http.post(
                "/auth/login", content=content, headers={"content-type": content_type}
            )
            assert response.status_code in (400, 415)
        ok = await http.post("/auth/login", json=body)
        assert ok.status_code == 200
        sensitive.token(ok.json()["data"]["access_token"])
        assert (await http.post("/auth/login", json=body)).status_code == 401  # replay

        # EIP-4361: wrong domain, expired, malformed, then a success.
        for kind in ("domain", "expired", "lowercase", "ok"):
            secret = (
                await http.post(
                    "/auth/login_random_secret", json={"wallet_address": wallet.address}
                )
            ).json()["data"]
            sensitive.secret(secret)
            text = siwe_text(
                address=wallet.address.lower() if kind == "lowercase" else wallet.address,
                nonce=secret,
                issued_at=T0 - 120,
                domain="evil.com" if kind == "domain" else "example.com",
                uri="https://evil.com" if kind == "domain" else URI,
                expiration=T0 - 61 if kind == "expired" else None,
            )
            signature = sign_text(wallet, text)
            sensitive.signature(signature)
            response = await http.post(
                "/auth/login",
                json={
                    "login_random_secret": secret,
                    "signature": signature,
                    "wallet_address": wallet.address,
                    "signature_content": text,
                },
            )
            if kind == "ok":
                assert response.status_code == 200, response.text
                sensitive.token(response.json()["data"]["access_token"])
            else:
                assert response.status_code in (400, 401)
    assert_nothing_leaked(capture, sensitive, http)


async def test_refresh_logout_and_token_misuse_leak_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    auth = make_auth(clock, revocation=True)
    other = make_auth(clock, secret_key="another-service-key-0123456789abcdef")
    async with Recorder(build_app(auth)) as http, Recorder(other) as other_http:
        token = (await legacy_login(http, wallet, sensitive)).json()["data"]["access_token"]
        foreign = (await legacy_login(other_http, wallet, sensitive, prefix="")).json()["data"]
        sensitive.token(foreign["access_token"])
        assert (await http.get("/whoami", headers=bearer(token))).status_code == 200
        clock.advance(DAY)
        refreshed = await http.get("/auth/refresh", headers=bearer(token))
        new = refreshed.json()["data"]["access_token"]
        sensitive.token(new)
        head, payload, sig = token.split(".")
        misuse = [
            token,  # revoked by the refresh
            f"{head}.{payload}.{sig[:-2]}AA",  # tampered
            f"{head}.{payload}",  # truncated
            token + "=",
            foreign["access_token"],  # another service's
            "x" * 5000,  # over-long
        ]
        for value in misuse:
            for method, url in (("GET", "/whoami"), ("GET", "/auth/refresh")):
                response = await http.request(method, url, headers=bearer(value))
                assert response.status_code == 401
            await http.post("/auth/logout", headers=bearer(value))
        two = [("Authorization", f"Bearer {new}"), ("Authorization", f"Bearer {token}")]
        assert (await http.get("/whoami", headers=two)).status_code == 401
        assert (await http.post("/auth/logout", headers=bearer(new))).status_code == 200
        assert (await http.get("/whoami", headers=bearer(new))).status_code == 401
        clock.advance(8 * DAY)
        assert (await http.get("/auth/refresh", headers=bearer(new))).status_code == 401
    assert_nothing_leaked(capture, sensitive, http, other_http)


async def test_web3mq_login_with_an_avatar_leaks_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    store = MemoryUserStore()
    auth = make_auth(clock, user_store=store, max_avatar_size=4096)
    data_url = "data:image/png;base64," + AVATAR_B64
    async with Recorder(build_app(auth)) as http:
        body = web3mq_body(wallet, avatar_base64=data_url, nickname="alice")
        sensitive.signature(body["did_signature"])
        failures = [
            web3mq_body(wallet, signer=other_wallet, avatar_base64=AVATAR_B64),  # wrong signer
            {**body, "avatar_base64": "data:image/gif;base64," + AVATAR_B64},  # lying type
            {**body, "avatar_base64": AVATAR_B64[:-3]},  # truncated base64
            {**body, "avatar_base64": AVATAR_B64 + "!"},
            {**body, "avatar_base64": AVATAR_B64 * 8},  # over max_avatar_size: 413
            {**body, "timestamp": NOW_MS - 3_600_000},  # outside the window
            {**body, "nickname": "\u202e" + AVATAR_B64[:32]},  # bidi override
            {**body, "avatar_url": "javascript:" + AVATAR_B64[:100]},
            {**body, "did_signature": high_s_twin(body["did_signature"])},
        ]
        for attempt in failures:
            sensitive.signature(attempt["did_signature"])
            response = await http.post("/auth/api/user_login/", json=attempt)
            assert 400 <= response.status_code < 500, response.text
        ok = await http.post("/auth/api/user_login/", json=body)
        assert ok.status_code == 200, ok.text
        sensitive.token(ok.json()["data"]["access_token"])
        assert (await http.post("/auth/api/user_login/", json=body)).status_code == 401  # replay
        # Another wallet claiming the same userid: 409.
        theirs = web3mq_body(other_wallet, avatar_base64=AVATAR_B64)
        sensitive.signature(theirs["did_signature"])
        assert (await http.post("/auth/api/user_login/", json=theirs)).status_code == 409
        record = await store.get("user:alice")
        assert record is not None and record.avatar == AVATAR  # the payload really went through
    assert_nothing_leaked(capture, sensitive, http)


def _signed(device: nacl.signing.SigningKey, ts: int = NOW_MS) -> dict[str, str]:
    signature = base64.b64encode(device.sign(f"user:alice{ts}".encode()).signature).decode()
    return {"userid": "user:alice", "timestamp": str(ts), "web3mq_user_signature": signature}


async def test_signed_requests_leak_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount
) -> None:
    sensitive = Sensitive()

    def content(scope: Scope, params: Mapping[str, Any]) -> str:
        if scope["path"] == "/broken":
            raise RuntimeError("signed_content hook crashed")
        return f"{params['userid']}{params['timestamp']}"

    auth = make_auth(clock, signed_requests=True, signed_content=content)
    app = Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST"]),
            Route("/broken", whoami),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    async with Recorder(app) as http:
        body = web3mq_body(wallet)
        sensitive.signature(body["did_signature"])
        registered = await http.post("/auth/api/user_login/", json=body)
        assert registered.status_code == 200
        sensitive.token(registered.json()["data"]["access_token"])
        for n, device in enumerate((DEVICE, OTHER_DEVICE, DEVICE, DEVICE)):
            params = _signed(device, NOW_MS + n)
            sensitive.ed25519_signature(params["web3mq_user_signature"])
            headers = {
                "web3mq-userid": params["userid"],
                "web3mq-timestamp": params["timestamp"],
                "web3mq-user-signature": params["web3mq_user_signature"],
            }
            await http.get("/whoami", headers=headers)
            await http.get("/whoami", headers=headers)  # replay
            await http.get("/whoami", params=params)
            await http.post("/whoami", json=params)
            await http.get("/broken", params=params)
            await http.get("/whoami", params={**params, "timestamp": str(NOW_MS - DAY * 1000)})
            await http.get(
                "/whoami",
                params={**params, "web3mq_user_signature": params["web3mq_user_signature"][1:]},
            )
        assert any(r.exc_text or r.exc_info for r in capture.records), "the hook crash is logged"
    assert_nothing_leaked(capture, sensitive, http)


async def test_cookie_login_with_csrf_leaks_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    auth = make_auth(clock, cookie=CookieSettings(secure=False), revocation=True)
    async with Recorder(build_app(auth), base_url="http://example.com") as http:
        login = await legacy_login(http, wallet, sensitive)
        csrf = login.json()["data"]["csrf_token"]
        sensitive.add(csrf)
        assert (await http.post("/whoami", headers={"x-csrf-token": csrf})).status_code == 200
        for header in ({}, {"x-csrf-token": csrf[:-2]}, {"x-csrf-token": login.text[:200]}):
            assert (await http.post("/whoami", headers=header)).status_code == 403
            assert (await http.post("/auth/logout", headers=header)).status_code == 403
        refreshed = await http.get("/auth/refresh", headers={"x-csrf-token": csrf})
        sensitive.token(refreshed.json()["data"]["access_token"])
        sensitive.add(refreshed.json()["data"]["csrf_token"])
        csrf = refreshed.json()["data"]["csrf_token"]
        # A second login while logged in by the cookie: refused without the header...
        assert (await legacy_login(http, wallet, sensitive)).status_code == 403
        # ...and fine with it.
        second = await legacy_login(http, wallet, sensitive, headers={"x-csrf-token": csrf})
        assert second.status_code == 200, second.text
        csrf = second.json()["data"]["csrf_token"]
        sensitive.add(csrf)
        assert (await http.post("/auth/logout", headers={"x-csrf-token": csrf})).status_code == 200
        http.client.cookies.set("wallet_auth", "garbage.token.value")
        assert (await http.post("/whoami", headers={"x-csrf-token": csrf})).status_code == 200
    assert_nothing_leaked(capture, sensitive, http)


class FailingNonceStore:
    """A nonce store whose chosen operations fail with messages full of what they were given."""

    def __init__(self, clock: FakeClock, fail: set[str]) -> None:
        self.inner = MemoryNonceStore(clock=clock, evict=False)
        self.fail = fail

    async def put(self, key: str, value: str, ttl: float) -> bool:
        if "put" in self.fail:
            raise ConnectionError(f"could not SET {key!r} = {value!r} for {ttl}s")
        return await self.inner.put(key, value, ttl)

    async def take(self, key: str) -> str | None:
        if "take" in self.fail:
            raise TimeoutError(f"GETDEL {key!r} timed out")
        return await self.inner.take(key)

    async def exists(self, key: str) -> bool:
        if "exists" in self.fail:
            raise OSError(f"EXISTS {key!r} failed")
        return await self.inner.exists(key)


class FailingSessionStore:
    """A session store whose chosen operations fail with messages quoting their arguments."""

    def __init__(self, clock: FakeClock, fail: set[str]) -> None:
        self.inner = MemorySessionStore(clock=clock)
        self.fail = fail

    async def current(self, sid: str) -> str | None:
        if "current" in self.fail:
            raise OSError(f"GET {sid!r} failed")
        return await self.inner.current(sid)

    async def advance(self, sid: str, jti: str, new_jti: str, ttl: float) -> bool:
        if "advance" in self.fail:
            raise ConnectionError(f"could not move {sid!r} from {jti!r} to {new_jti!r}")
        return await self.inner.advance(sid, jti, new_jti, ttl)

    async def end(self, sid: str, ttl: float) -> None:
        if "end" in self.fail:
            raise ConnectionError(f"could not end {sid!r}")
        await self.inner.end(sid, ttl)


class FailingUserStore(MemoryUserStore):
    """A user store that fails on writes, quoting the whole record, avatar included."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    def _explain(self, record: UserRecord) -> str:
        avatar = base64.b64encode(record.avatar or b"").decode()
        return f"cannot write {record!r} avatar={avatar}"

    async def save(self, record: UserRecord) -> None:
        if self.failing:
            raise RuntimeError(self._explain(record))
        await super().save(record)

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        if self.failing:
            raise RuntimeError(self._explain(login))
        return await super().merge(login, max_devices=max_devices)


async def test_a_store_that_raises_leaks_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    nonces = FailingNonceStore(clock, set())
    replay = FailingNonceStore(clock, set())
    sessions = FailingSessionStore(clock, set())
    users = FailingUserStore()
    auth = make_auth(
        clock,
        nonce_store=nonces,
        replay_store=replay,
        user_store=users,
        tokens=TokenSettings(revocation=True, session_store=sessions),
    )
    async with Recorder(build_app(auth)) as http:
        token = (await legacy_login(http, wallet, sensitive)).json()["data"]["access_token"]
        # take fails after the signature is verified: the key holds the secret.
        nonces.fail = {"take"}
        assert (await legacy_login(http, wallet, sensitive)).status_code == 503
        nonces.fail = {"put"}
        response = await http.post(
            "/auth/login_random_secret", json={"wallet_address": wallet.address}
        )
        assert response.status_code == 503
        nonces.fail = set()
        users.failing = True
        assert (await legacy_login(http, wallet, sensitive)).status_code == 503
        body = web3mq_body(wallet, avatar_base64=AVATAR_B64)
        sensitive.signature(body["did_signature"])
        assert (await http.post("/auth/api/user_login/", json=body)).status_code == 503
        users.failing = False
        sessions.fail = {"current"}
        assert (await http.get("/whoami", headers=bearer(token))).status_code == 503
        sessions.fail = {"advance", "end"}
        assert (await http.get("/auth/refresh", headers=bearer(token))).status_code == 503
        assert (await http.post("/auth/logout", headers=bearer(token))).status_code == 503
        replay.fail = {"put"}
        body = web3mq_body(wallet, avatar_base64=AVATAR_B64, userid="user:alice2")
        sensitive.signature(body["did_signature"])
        assert (await http.post("/auth/api/user_login/", json=body)).status_code == 503
    assert any("store unavailable" in r.getMessage() for r in capture.records)
    assert_nothing_leaked(capture, sensitive, http)


async def test_a_hook_that_raises_or_misbehaves_leaks_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    behaviours = iter(["crash", "refuse", "not-a-mapping", "not-json", "reserved", "ok"] * 3)

    async def hook(request: Request, user: WalletUser) -> Any:
        behaviour = next(behaviours)
        if behaviour == "crash":
            raise RuntimeError("the application's hook crashed")
        if behaviour == "refuse":
            raise LoginRefused("this wallet is not on the list")
        if behaviour == "not-a-mapping":
            return ["plan", "pro"]
        if behaviour == "not-json":
            return {"since": object()}
        if behaviour == "reserved":
            return {"sub": "0x" + "0" * 40, "exp": 2**40, "plan": "pro"}
        return {"plan": "pro"}

    auth = make_auth(clock, on_login=hook, on_refresh=hook, revocation=True)
    async with Recorder(build_app(auth)) as http:
        tokens = []
        for _ in range(6):
            response = await legacy_login(http, wallet, sensitive)
            if response.status_code == 200:
                tokens.append(response.json()["data"]["access_token"])
        assert len(tokens) == 2  # "reserved" (claims dropped) and "ok"
        body = web3mq_body(wallet, avatar_base64=AVATAR_B64)
        sensitive.signature(body["did_signature"])
        assert (await http.post("/auth/api/user_login/", json=body)).status_code == 403  # crash
        for _ in range(5):
            response = await http.get("/auth/refresh", headers=bearer(tokens[-1]))
            if response.status_code == 200:
                tokens[-1] = response.json()["data"]["access_token"]
                sensitive.token(tokens[-1])
    assert any(r.exc_info or r.exc_text for r in capture.records), "the crash is logged"
    assert_nothing_leaked(capture, sensitive, http)


async def test_rate_limited_requests_leak_nothing(
    capture: Capture, clock: FakeClock, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    sensitive = Sensitive()
    limit = RateLimit(secrets=3, failed_logins=2, limiter=MemoryRateLimiter(clock=clock))
    auth = make_auth(clock, rate_limit=limit)
    async with Recorder(build_app(auth)) as http:
        secrets = []
        for _ in range(4):
            response = await http.post(
                "/auth/login_random_secret", json={"wallet_address": wallet.address}
            )
            if response.status_code == 200:
                secrets.append(response.json()["data"])
                sensitive.secret(secrets[-1])
        assert len(secrets) == 3 and response.status_code == 429
        statuses = []
        for secret in secrets:  # two failures, then the limit
            wrong = sign_text(other_wallet, secret)
            sensitive.signature(wrong)
            attempt = {
                "login_random_secret": secret,
                "signature": wrong,
                "wallet_address": wallet.address,
            }
            statuses.append((await http.post("/auth/login", json=attempt)).status_code)
        assert statuses == [401, 401, 429]
        good = sign_text(wallet, secrets[0])
        sensitive.signature(good)
        attempt = {
            "login_random_secret": secrets[0],
            "signature": good,
            "wallet_address": wallet.address,
        }
        response = await http.post("/auth/login", json=attempt)
        assert response.status_code == 429  # even a valid login, once over the limit
        body = web3mq_body(wallet, avatar_base64=AVATAR_B64)
        sensitive.signature(body["did_signature"])
        assert (await http.post("/auth/api/user_login/", json=body)).status_code == 429
    assert_nothing_leaked(capture, sensitive, http)


# -- log forging --------------------------------------------------------------------------------


async def test_log_forging_with_a_newline_in_a_refused_path_is_neutralised(
    capture: Capture, clock: FakeClock
) -> None:
    # A percent-encoded CR/LF arrives decoded in the ASGI path. Written as-is into a log line,
    # it lets anyone forge entries such as a successful login for a wallet they do not own.
    forged = "\r\n2026-01-01 00:00:00,000 INFO asgi_wallet_auth login ok: 0xVictim"
    auth = make_auth(clock)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for path in ("/login" + forged, "/nowhere" + forged.replace("\r", "")):
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.replace("\r", "%0D").replace("\n", "%0A").encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"example.com")],
        }
        await auth(scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [404, 404]
    lines = [r.getMessage() for r in capture.records if r.name.startswith("asgi_wallet_auth")]
    assert lines, "refusals are logged"
    for line in lines:
        assert "\n" not in line and "\r" not in line, repr(line)
