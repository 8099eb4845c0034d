"""Attacks on routing: look-alike paths, mount and ``root_path`` tricks, Host headers, methods.

Requests are raw ASGI scopes wherever an HTTP client would normalise the attack away (dot
segments, absolute-form targets, a ``root_path`` that no server would send), so the login app sees
exactly what a hostile or buggy front end could hand it. Every test checks both the answer (an
envelope 404/405 or a closed websocket) and that no handler ran: no secret was issued, no token
was refreshed or revoked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import MemoryNonceStore, WalletAuth, WalletAuthMiddleware, WalletUser
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, login, make_auth, siwe_text

ROUTES = {
    "/login_random_secret": "POST",
    "/login": "POST",
    "/refresh": "GET, POST",
    "/api/user_login/": "POST",
    "/logout": "POST",
}


@dataclass
class Answer:
    """What an ASGI app sent back to one raw call."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    receives: int = 0

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.messages[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def asgi(
    app: Any,
    *,
    method: str = "POST",
    path: str = "/",
    raw_path: bytes | None = None,
    root_path: str = "",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    server: tuple[str, int] = ("example.com", 443),
) -> Answer:
    """Call ``app`` with one http scope built by hand, exactly as given."""
    answer = Answer()
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        answer.receives += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        answer.messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode("utf-8") if raw_path is None else raw_path,
        "root_path": root_path,
        "query_string": query,
        "headers": [(b"host", b"example.com")] if headers is None else headers,
        "server": server,
        "client": ("203.0.113.7", 40000),
    }
    with anyio.fail_after(5):
        await app(scope, receive, send)
    return answer


def assert_envelope(answer: Answer, status: int, code: int) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    body = json.loads(answer.body)
    assert body["code"] == code and body["data"] is None
    assert b"access_token" not in answer.body


def stored(store: object) -> int:
    assert isinstance(store, MemoryNonceStore)
    return len(store)


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({"address": user.address if isinstance(user, WalletUser) else None})


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, revocation=True)


@pytest.fixture
async def token(auth: WalletAuth, wallet: LocalAccount) -> str:
    async with client_for(auth) as client:
        value: str = (await login(client, wallet))["access_token"]
    # The login's own secret is spent: the nonce store is empty again.
    assert stored(auth.nonce_store) == 0
    return value


def mounted(auth: WalletAuth) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def assert_nothing_happened(auth: WalletAuth, token: str) -> None:
    """No secret issued and the token neither refreshed away nor revoked."""
    assert stored(auth.nonce_store) == 0
    assert stored(auth.replay_store) == 0
    user = await auth.authenticate_bearer(token)
    assert user.address == user.claims["sub"]


# -- look-alike paths ---------------------------------------------------------------------------

LOOKALIKES = [
    "/login/",
    "//login",
    "/LOGIN",
    "/Login",
    "/login%2F",
    "/login%2f",
    "/./login",
    "/../login",
    "/login/.",
    "/login/..",
    "/login;x",
    "/login;/refresh",
    "/login\x00",
    "/login ",
    "/login\t",
    "/login\n",
    "login",
    "",
    "/",
    "/login_random_secret/",
    "//login_random_secret",
    "/login_random_secret%00",
    "/LOGIN_RANDOM_SECRET",
    "/refresh/",
    "/REFRESH",
    "//refresh",
    "/./refresh",
    "/refresh;jsessionid=1",
    "/api/user_login",
    "/api//user_login/",
    "/API/user_login/",
    "/api/user_login/.",
    "/api/./user_login/",
    "/logout/",
    "/Logout",
    "/\uff4cogin",  # fullwidth "l": Unicode look-alike
    "/log\u0131n",  # dotless i
    "http://example.com/login",  # an absolute-form target left in the path (h11 servers)
]


@pytest.mark.parametrize("path", LOOKALIKES)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_lookalike_path_of_a_public_route_is_404_and_runs_no_handler(
    auth: WalletAuth, token: str, wallet: LocalAccount, path: str, method: str
) -> None:
    answer = await asgi(
        auth,
        method=method,
        path=path,
        headers=[
            (b"host", b"example.com"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        body=f'{{"wallet_address": "{wallet.address}"}}'.encode(),
    )
    assert_envelope(answer, 404, 40401)
    await assert_nothing_happened(auth, token)


@pytest.mark.parametrize(
    ("path", "raw_path"),
    [("/login/", b"/login%2F"), ("/refresh/", b"/refresh%2f"), ("/login", b"/log%69n")],
)
async def test_percent_encoded_path_is_routed_on_the_decoded_path_only(
    auth: WalletAuth, token: str, path: str, raw_path: bytes
) -> None:
    # Servers decode %XX into ``path`` and keep the bytes in ``raw_path``: routing on one and
    # handling on the other would let an encoded slash reach a handler.
    answer = await asgi(
        auth,
        method="GET",
        path=path,
        raw_path=raw_path,
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    if path == "/login":  # decoded, it *is* /login: a GET there is 405, never a refresh
        assert_envelope(answer, 405, 40501)
    else:
        assert_envelope(answer, 404, 40401)
    await assert_nothing_happened(auth, token)


@pytest.mark.parametrize(
    ("method", "path", "query", "allow"),
    [
        ("GET", "/login", b"x=/refresh", "POST"),
        ("GET", "/login_random_secret", b"path=/refresh", "POST"),
        ("GET", "/logout", b"next=/refresh", "POST"),
        ("PUT", "/refresh", b"x=/logout", "GET, POST"),
        ("DELETE", "/refresh", b"redirect=/login", "GET, POST"),
    ],
)
async def test_query_string_naming_another_route_never_reroutes(
    auth: WalletAuth, token: str, method: str, path: str, query: bytes, allow: str
) -> None:
    answer = await asgi(
        auth,
        method=method,
        path=path,
        query=query,
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    assert_envelope(answer, 405, 40501)
    assert answer.headers["allow"] == allow
    await assert_nothing_happened(auth, token)


# -- root_path ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_path", "path"),
    [
        ("/au", "/auth/login_random_secret"),  # a prefix, but not at a segment boundary
        ("/auth", "/authlogin_random_secret"),
        ("/auth", "/auth-login_random_secret"),
        ("/auth/", "/auth/login_random_secret"),
        ("/auth", "/auth"),
        ("/auth", "/auth/"),
        ("/login_random_secret", "/login_random_secret"),  # root equal to a route: path is "/"
        ("/auth", "/auth//login_random_secret"),
        ("/auth", "/auth/auth/login_random_secret"),
        ("/auth", "/AUTH/login_random_secret"),
    ],
)
async def test_root_path_trick_never_strips_into_a_public_route(
    auth: WalletAuth, token: str, wallet: LocalAccount, root_path: str, path: str
) -> None:
    answer = await asgi(
        auth,
        path=path,
        root_path=root_path,
        headers=[(b"content-type", b"application/json")],
        body=f'{{"wallet_address": "{wallet.address}"}}'.encode(),
    )
    assert_envelope(answer, 404, 40401)
    await assert_nothing_happened(auth, token)


async def test_control_root_path_on_a_segment_boundary_is_stripped(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    answer = await asgi(
        auth,
        path="/auth/login_random_secret",
        root_path="/auth",
        headers=[(b"content-type", b"application/json")],
        body=f'{{"wallet_address": "{wallet.address}"}}'.encode(),
    )
    assert answer.status == 200
    assert stored(auth.nonce_store) == 1


@pytest.mark.parametrize(
    ("root_path", "path", "reaches"),
    [
        ("/au", "/auth/login_random_secret", False),
        ("/auth", "/auth/login_random_secret", False),  # the server's root eats the mount
        ("/a", "/auth/login_random_secret", False),
        ("", "/auth/./login_random_secret", False),
        ("", "/auth/../auth/login_random_secret", False),
        ("", "//auth/login_random_secret", False),
        ("", "/AUTH/login_random_secret", False),
        ("", "/auth/login_random_secret/", False),
        ("", "/auth/api/user_login", False),
        ("", "/authlogin_random_secret", False),
        ("", "/auth", False),
        # The controls: a real server root_path and the plain mount reach the route.
        ("/au", "/au/auth/login_random_secret", True),
        ("/auth", "/auth/auth/login_random_secret", True),
        ("", "/auth/login_random_secret", True),
    ],
)
async def test_mounted_at_auth_a_root_path_trick_never_reaches_a_handler(
    auth: WalletAuth,
    token: str,
    wallet: LocalAccount,
    root_path: str,
    path: str,
    reaches: bool,
) -> None:
    answer = await asgi(
        mounted(auth),
        path=path,
        root_path=root_path,
        headers=[(b"host", b"example.com"), (b"content-type", b"application/json")],
        body=f'{{"wallet_address": "{wallet.address}"}}'.encode(),
    )
    if reaches:
        assert answer.status == 200, answer.body
        assert stored(auth.nonce_store) == 1
        return
    # Starlette's own 404 (or its trailing-slash redirect for "/auth"), or our envelope.
    assert answer.status in (404, 405, 307), answer.body
    if answer.status == 307:
        assert answer.headers["location"] == "https://example.com/auth/"
    if answer.headers.get("content-type") == "application/json":
        assert b'"code":404' in answer.body or b'"code":405' in answer.body
    await assert_nothing_happened(auth, token)


# -- Host header --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host_headers",
    [
        [(b"host", b"evil.com")],
        [(b"host", b"evil.com"), (b"x-forwarded-host", b"evil.com")],
        [(b"host", b"example.com"), (b"x-forwarded-host", b"evil.com")],
        [(b"host", b"example.com"), (b"forwarded", b"host=evil.com;proto=https")],
        [(b"host", b"example.com:443")],
        [],
    ],
    ids=["host", "host+xfh", "xfh", "forwarded", "port", "none"],
)
async def test_host_header_never_changes_the_siwe_domain_the_service_checks(
    auth: WalletAuth, wallet: LocalAccount, host_headers: list[tuple[bytes, bytes]]
) -> None:
    async with client_for(auth) as client:
        secret = await get_secret(client, wallet.address)
    headers = [*host_headers, (b"content-type", b"application/json")]

    async def siwe_login(domain: str, uri: str, server: tuple[str, int]) -> Answer:
        text = siwe_text(address=wallet.address, nonce=secret, issued_at=T0, domain=domain, uri=uri)
        body = json.dumps(
            {
                "login_random_secret": secret,
                "signature": sign_text(wallet, text),
                "wallet_address": wallet.address,
                "signature_content": text,
            }
        ).encode()
        return await asgi(auth, path="/login", headers=headers, body=body, server=server)

    # A message for the host the request names (a phishing site relaying its own Host) fails...
    for server in (("evil.com", 443), ("example.com", 443)):
        refused = await siwe_login("evil.com", "https://evil.com", server)
        assert_envelope(refused, 401, 40103)
    # ...without burning the secret, and the configured domain works whatever the Host says.
    accepted = await siwe_login("example.com", "https://example.com", ("evil.com", 443))
    assert accepted.status == 200, accepted.body
    assert b'"access_token"' in accepted.body


async def test_absolute_form_target_for_another_host_does_not_change_the_domain(
    auth: WalletAuth, wallet: LocalAccount
) -> None:
    # "POST http://evil.com/login HTTP/1.1": httpx sends the absolute URL's host as Host.
    async with client_for(auth, base_url="http://evil.com") as client:
        secret = await get_secret(client, wallet.address)
        for domain, expected in (("evil.com", 401), ("example.com", 200)):
            text = siwe_text(
                address=wallet.address,
                nonce=secret,
                issued_at=T0,
                domain=domain,
                uri=f"https://{domain}",
            )
            response = await client.post(
                "http://evil.com/login",
                json={
                    "login_random_secret": secret,
                    "signature": sign_text(wallet, text),
                    "wallet_address": wallet.address,
                    "signature_content": text,
                },
            )
            assert response.status_code == expected, response.text


# -- other scope types ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/refresh", "/logout", "/nowhere"])
async def test_websocket_scope_sent_to_the_login_app_is_closed_without_a_handler(
    auth: WalletAuth, token: str, path: str
) -> None:
    sent: list[dict[str, Any]] = []
    receives = 0

    async def receive() -> dict[str, Any]:
        nonlocal receives
        receives += 1
        return {"type": "websocket.connect"} if receives == 1 else {"type": "websocket.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": path,
        "root_path": "",
        "query_string": f"access_token={token}".encode(),
        "headers": [(b"host", b"example.com"), (b"authorization", f"Bearer {token}".encode())],
    }
    with anyio.fail_after(5):
        await auth(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    await assert_nothing_happened(auth, token)


async def test_websocket_to_the_mounted_login_app_is_closed_through_the_middleware(
    auth: WalletAuth, token: str
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for headers in ([], [(b"authorization", f"Bearer {token}".encode())]):
        sent.clear()
        scope = {
            "type": "websocket",
            "path": "/auth/refresh",
            "raw_path": b"/auth/refresh",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"example.com"), *headers],
        }
        with anyio.fail_after(5):
            await mounted(auth)(scope, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008}]
    await assert_nothing_happened(auth, token)


async def test_lifespan_scope_sent_to_the_login_app_completes() -> None:
    auth = make_auth(FakeClock())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await auth({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert incoming == []


async def test_unknown_scope_type_is_ignored_without_a_crash() -> None:
    auth = make_auth(FakeClock())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("nothing to read for an unknown scope")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await auth({"type": "webtransport", "path": "/login"}, receive, send)
    assert sent == []


# -- methods ------------------------------------------------------------------------------------

OTHER_METHODS = ["HEAD", "OPTIONS", "TRACE", "CONNECT", "PUT", "PATCH", "DELETE", "PROPFIND"]


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("method", [*OTHER_METHODS, "lowercase", "GET"])
async def test_head_options_trace_and_other_methods_are_405_and_run_no_handler(
    auth: WalletAuth, token: str, wallet: LocalAccount, route: str, method: str
) -> None:
    allowed = ROUTES[route]
    first = allowed.split(", ")[0]
    if method == "lowercase":
        method = first.lower()  # methods are case-sensitive: "get" is not GET
    if method in allowed.split(", "):  # pick one the route does not serve
        method = "PUT" if allowed == "GET, POST" else "POST" if first == "GET" else "GET"
    answer = await asgi(
        auth,
        method=method,
        path=route,
        headers=[
            (b"host", b"example.com"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"cookie", b"session=victim-cookie-value"),
            (b"content-type", b"application/json"),
            (b"origin", b"https://evil.com"),
            (b"access-control-request-method", b"POST"),
        ],
        body=f'{{"wallet_address": "{wallet.address}"}}'.encode(),
    )
    assert_envelope(answer, 405, 40501)
    assert answer.headers["allow"] == allowed
    assert not any(name.startswith("access-control-") for name in answer.headers)
    # TRACE and friends never echo the request (cross-site tracing would read credentials).
    assert token.encode() not in answer.body
    assert b"victim-cookie-value" not in answer.body
    assert answer.receives == 0  # the body is not even read
    await assert_nothing_happened(auth, token)


async def test_head_refresh_through_the_mount_issues_no_token(auth: WalletAuth, token: str) -> None:
    transport = httpx.ASGITransport(app=mounted(auth))
    async with httpx.AsyncClient(transport=transport, base_url="https://example.com") as client:
        response = await client.head("/auth/refresh", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
    await assert_nothing_happened(auth, token)
