"""``WalletAuthMiddleware`` in a Starlette app with the login routes mounted at ``/auth``."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import jwt
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware, WalletUser
from tests.conftest import SECRET_KEY, URI, FakeClock, client_for
from tests.helpers import login, make_auth

DAY = 86_400


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "type": type(user).__name__,
            "address": getattr(user, "address", None),
            "userid": getattr(user, "userid", None),
            "display_name": user.display_name,
            "scopes": list(request.auth.scopes),
        }
    )


@requires("authenticated")
async def private(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity})


async def ws_greet(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.user
    await websocket.send_json({"hello": user.address if isinstance(user, WalletUser) else None})
    await websocket.close()


def build_app(auth: WalletAuth, lifespan_log: list[str] | None = None) -> Starlette:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if lifespan_log is not None:
            lifespan_log.append("startup")
        yield
        if lifespan_log is not None:
            lifespan_log.append("shutdown")

    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/private", private),
            WebSocketRoute("/ws", ws_greet),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
        lifespan=lifespan,
    )


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(build_app(auth)) as c:
        yield c


async def test_login_through_the_mount_then_request_user_is_the_wallet(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": True,
        "type": "WalletUser",
        "address": wallet.address,
        "userid": wallet.address,
        "display_name": wallet.address,
        "scopes": ["authenticated"],
    }


async def test_requires_authenticated_works(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert (await client.get("/private")).status_code == 403
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get("/private", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"identity": wallet.address}


async def test_no_token_is_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")
    assert response.status_code == 200
    assert response.json()["type"] == "UnauthenticatedUser"
    assert response.json()["scopes"] == []


async def test_another_auth_scheme_is_left_alone(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 200
    assert response.json()["authenticated"] is False


def forged_tokens(wallet_address: str) -> dict[str, str]:
    now = 1_767_225_600
    claims = {
        "sub": wallet_address,
        "iat": now,
        "exp": now + DAY,
        "jti": "j",
        "iss": URI,
        "aud": URI,
        "auth_time": now,
    }
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    return {
        "other key": jwt.encode(
            claims, "another-secret-key-of-32-bytes-or-more!!", algorithm="HS256"
        ),
        "alg none": f"{header}.{payload}.",
        "alg none with signature": f"{header}.{payload}.c2ln",
        "other algorithm": jwt.encode(claims, SECRET_KEY, algorithm="HS512"),
        "missing exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET_KEY),
        "expired": jwt.encode({**claims, "exp": now - 1}, SECRET_KEY),
        "wrong audience": jwt.encode({**claims, "aud": "https://evil.com"}, SECRET_KEY),
        "garbage": "abc.def.ghi",
    }


FORGED_KINDS = [
    "other key",
    "alg none",
    "alg none with signature",
    "other algorithm",
    "missing exp",
    "expired",
    "wrong audience",
    "garbage",
]


@pytest.mark.parametrize("kind", FORGED_KINDS)
async def test_invalid_token_is_401_with_www_authenticate_and_never_reaches_the_app(
    client: httpx.AsyncClient, wallet: LocalAccount, kind: str
) -> None:
    with warnings.catch_warnings():
        # HS512 with the service's HS256-sized key: PyJWT warns, and that is the attack.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        tokens = forged_tokens(wallet.address)
    assert set(tokens) == set(FORGED_KINDS)
    token = tokens[kind]
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    body = response.json()
    assert body["data"] is None and body["code"] == 40111


async def test_tampered_token_is_401(client: httpx.AsyncClient, wallet: LocalAccount) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{sig}"
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401


async def test_expired_token_is_401(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    clock.advance(7 * DAY - 1)
    assert (
        await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    clock.advance(1)
    assert (
        await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401


async def test_two_authorization_headers_are_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get(
        "/whoami", headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x.y.z")]
    )
    assert response.status_code == 401


async def test_token_in_query_string_is_ignored_for_http(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    # Query strings end up in logs and Referer headers: only websockets may use them.
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    response = await client.get("/whoami", params={"access_token": token})
    assert response.json()["authenticated"] is False


async def test_a_token_from_another_walletauth_is_refused(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    other = make_auth(clock, secret_key="a-completely-different-secret-key-0123456789")
    async with client_for(build_app(other)) as other_client:
        token = (await login(other_client, wallet, prefix="/auth"))["access_token"]
    async with client_for(build_app(make_auth(clock))) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_lifespan_passes_through_to_the_app(auth: WalletAuth) -> None:
    log: list[str] = []
    with TestClient(build_app(auth, log)):
        assert log == ["startup"]
    assert log == ["startup", "shutdown"]


def _token_via_testclient(client: TestClient, wallet: LocalAccount) -> str:
    from tests.conftest import sign_text

    secret = client.post(
        "/auth/login_random_secret", json={"wallet_address": wallet.address}
    ).json()["data"]
    response = client.post(
        "/auth/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        },
    )
    token: str = response.json()["data"]["access_token"]
    return token


def test_websocket_with_header_token_sees_the_wallet(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    with TestClient(build_app(auth)) as client:
        token = _token_via_testclient(client, wallet)
        with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.receive_json() == {"hello": wallet.address}


def test_websocket_with_query_token_sees_the_wallet(auth: WalletAuth, wallet: LocalAccount) -> None:
    with TestClient(build_app(auth)) as client:
        token = _token_via_testclient(client, wallet)
        with client.websocket_connect(f"/ws?access_token={token}") as ws:
            assert ws.receive_json() == {"hello": wallet.address}


def test_websocket_without_token_is_anonymous(auth: WalletAuth) -> None:
    with TestClient(build_app(auth)) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"hello": None}


@pytest.mark.parametrize(
    "query", ["access_token=bad.to.ken", "access_token=", "access_token=a.b.c&access_token=d.e.f"]
)
def test_websocket_with_bad_token_is_closed_with_1008(auth: WalletAuth, query: str) -> None:
    with TestClient(build_app(auth)) as client:
        with (
            pytest.raises(WebSocketDisconnect) as exc,
            client.websocket_connect(f"/ws?{query}") as ws,
        ):
            ws.receive_json()
        assert exc.value.code == 1008


async def test_other_scope_types_pass_through_untouched(auth: WalletAuth) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await WalletAuthMiddleware(app, auth=auth)(scope, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan", "asgi": {"version": "3.0"}}]


# -- the verified-token cache -------------------------------------------------------------------


async def test_a_cached_token_still_expires(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock)
    verified: list[str] = []
    verify = auth.sessions.tokens.verify

    def counting(token: str) -> dict[str, Any]:
        verified.append(token)
        return verify(token)

    auth.sessions.tokens.verify = counting  # type: ignore[method-assign]
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):  # verified once, then served from the cache
            assert (await client.get("/whoami", headers=headers)).status_code == 200
        assert verified == [token]
        clock.advance(7 * DAY)
        assert (await client.get("/whoami", headers=headers)).status_code == 401
        # Expired: the cached verdict was not used, the token was checked again and refused.
        assert verified == [token, token]


async def test_a_cached_token_is_still_checked_for_revocation(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, revocation=True)
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/whoami", headers=headers)).status_code == 200
        assert (await client.post("/auth/logout", headers=headers)).status_code == 200
        assert (await client.get("/whoami", headers=headers)).status_code == 401


async def test_the_cache_is_keyed_by_the_exact_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        assert (
            await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        head, payload, signature = token.split(".")
        for forged in (f"{head}.{payload}.{signature[:-1]}A", f"{head}.{payload}x.{signature}"):
            if forged == token:
                continue
            response = await client.get("/whoami", headers={"Authorization": f"Bearer {forged}"})
            assert response.status_code == 401


async def test_claims_of_a_cached_user_cannot_be_changed_by_the_app(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
    user = auth.authenticate_token(token)
    with pytest.raises(TypeError):
        user.claims["sub"] = "0x" + "1" * 40  # type: ignore[index]
    assert auth.authenticate_token(token).claims["sub"] == wallet.address


async def test_a_token_cached_under_one_key_is_refused_under_another(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    old = make_auth(clock)
    async with client_for(build_app(old)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        assert (
            await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
    rotated = make_auth(clock, secret_key="a-rotated-secret-key-that-is-long-enough-000")
    async with client_for(build_app(rotated)) as client:
        assert (
            await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401


async def test_the_cache_can_be_switched_off(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock, token_cache_size=0)
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        assert (
            await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
    assert auth.sessions.cache == {}


@pytest.mark.parametrize(
    ("sub", "did_type"),
    [
        ("admin", "eth"),
        ("", "eth"),
        ("0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", "eth"),  # not the EIP-55 form
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "sol"),  # a did type nobody verifies
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", 1),  # a did type that is no text
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", None),
        ("0X2C7536E3605D9C16A7A3D7B1898E529396A65C23", "eth"),  # 0X is no address prefix
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c2g", "eth"),  # a letter that is no hex
        ("0x2c7536E3605D9C16a7a3D7b1898e529396a65c2\uff13", "eth"),  # a digit, not ASCII
    ],
)
async def test_a_token_whose_identity_is_not_canonical_is_refused_even_with_our_key(
    clock: FakeClock, sub: str, did_type: object
) -> None:
    auth = make_auth(clock)
    claims = {"userid": sub, "did_type": did_type, "did_value": sub}
    token = auth.tokens.issue(subject=sub, auth_time=int(clock()), extra=claims).token
    async with client_for(build_app(auth)) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.json()["code"] == 40111


async def test_the_fast_path_never_accepts_a_second_authorization_header(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    async with client_for(build_app(auth)) as client:
        token = (await login(client, wallet, prefix="/auth"))["access_token"]
        good = ("Authorization", f"Bearer {token}")
        assert (await client.get("/whoami", headers=[good])).status_code == 200  # now cached
        response = await client.get("/whoami", headers=[good, ("Authorization", "Bearer x.y.z")])
        assert response.status_code == 401
        # Even the cached token sent twice is ambiguous, and refused like any two headers.
        response = await client.get("/whoami", headers=[good, good])
        assert response.status_code == 401
        assert (await client.get("/whoami", headers=[good])).status_code == 200


def test_a_websocket_query_token_never_teaches_the_fast_path_another_header(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    with TestClient(build_app(auth)) as client:
        token = _token_via_testclient(client, wallet)
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        with client.websocket_connect(f"/ws?access_token={token}", headers=basic) as ws:
            assert ws.receive_json() == {"hello": wallet.address}
        # The same Basic header without the query token must stay anonymous.
        response = client.get("/whoami", headers=basic)
        assert response.json()["authenticated"] is False


def test_shared_credentials_cannot_be_changed_by_one_request(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    from asgi_wallet_auth.middleware import _AUTHENTICATED

    assert list(_AUTHENTICATED.scopes) == ["authenticated"]
    with pytest.raises(AttributeError):
        _AUTHENTICATED.scopes.append("admin")  # type: ignore[attr-defined]


@pytest.mark.parametrize("second", [b"Authorization", b"AUTHORIZATION"])
async def test_a_second_authorization_header_in_another_case_is_refused_at_first_sight(
    clock: FakeClock, wallet: LocalAccount, second: bytes
) -> None:
    auth = make_auth(clock)
    token = auth.tokens.issue(subject=wallet.address, auth_time=int(clock())).token
    users: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        users.append(scope["user"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call(headers: list[tuple[bytes, bytes]]) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
        await middleware(scope, None, send)  # type: ignore[arg-type]
        return int(sent[0]["status"])

    middleware = WalletAuthMiddleware(app, auth=auth)
    good = (b"authorization", b"Bearer " + token.encode())
    assert await call([good, (second, b"Bearer x.y.z")]) == 401
    assert await call([(second, b"Bearer x.y.z"), good]) == 401
    assert users == []
    assert await call([good]) == 200
    assert users[0].address == wallet.address
