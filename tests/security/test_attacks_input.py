"""Attacks on request bodies: sizes, content types, encodings, JSON types, nesting, long fields.

Every hostile body must end in a 4xx envelope, never a 500, and must not cost the honest user
anything: each test finishes with the valid request (same secret, same Web3MQ nonce) succeeding,
which shows that the refusals neither burned the secret nor were caused by something else.
Size tests drive the ASGI app by hand and count ``receive`` calls.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
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

from asgi_wallet_auth import MemoryNonceStore, WalletAuth, WalletAuthMiddleware, WalletUser
from asgi_wallet_auth.web3mq import encoded_avatar_limit
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, make_auth
from tests.security.support import web3mq_login_body

ROOT = Path(__file__).resolve().parents[2]
NOW_MS = int(T0 * 1000)
CAP = 16 * 1024  # the default max_body_size
WEB3MQ_CAP = CAP + encoded_avatar_limit(256 * 1024)  # /api/user_login/ grows by the avatar
DEVICE = nacl.signing.SigningKey(bytes(range(32)))
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(20)


# -- bodies -------------------------------------------------------------------------------------


def web3mq_body(
    account: LocalAccount, *, userid: str = "user:alice", **extra: Any
) -> dict[str, Any]:
    """A valid Web3MQ login body: NonceContent, the SDK template and a real wallet signature."""
    return web3mq_login_body(account, device=DEVICE, userid=userid, **extra)


async def valid_body(route: str, client: httpx.AsyncClient, wallet: LocalAccount) -> dict[str, Any]:
    """A body that succeeds on ``route`` (once, for the single-use ones)."""
    if route == "/login_random_secret":
        return {"wallet_address": wallet.address}
    if route == "/login":
        secret = await get_secret(client, wallet.address)
        return {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
    return web3mq_body(wallet)


ROUTES = ["/login_random_secret", "/login", "/api/user_login/"]
CAPS = {"/login_random_secret": CAP, "/login": CAP, "/api/user_login/": WEB3MQ_CAP}


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def assert_refused(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx envelope (of one of ``statuses`` when given) that carries no secret or token."""
    assert 400 <= response.status_code < 500, response.text
    if statuses:
        assert response.status_code in statuses, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "msg", "data"} and body["data"] is None
    assert body["code"] // 100 == response.status_code
    return body


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["code"] == 0


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


def secrets_issued(auth: WalletAuth) -> int:
    assert isinstance(auth.nonce_store, MemoryNonceStore)
    return len(auth.nonce_store)


# -- raw ASGI -----------------------------------------------------------------------------------


async def call(
    app: Any,
    path: str,
    receive: Callable[[], Awaitable[dict[str, Any]]],
    headers: list[tuple[bytes, bytes]],
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com"), *headers],
        "client": ("203.0.113.9", 1234),
        "server": ("example.com", 443),
    }
    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


class Stream:
    """A ``receive`` that hands out ``body`` in chunks, or forever when ``endless``."""

    def __init__(self, body: bytes = b"", *, chunk: int = 1000, endless: bool = False) -> None:
        self.body, self.chunk, self.endless, self.calls = body, chunk, endless, 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.endless:
            return {"type": "http.request", "body": b" " * self.chunk, "more_body": True}
        start = (self.calls - 1) * self.chunk
        piece = self.body[start : start + self.chunk]
        return {
            "type": "http.request",
            "body": piece,
            "more_body": start + self.chunk < len(self.body),
        }


def padded(body: dict[str, Any], size: int) -> bytes:
    raw = dumps(body)
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


JSON = [(b"content-type", b"application/json")]


# -- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
async def test_body_exactly_at_the_cap_is_read_and_one_byte_over_is_413(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, route: str, declared: bool
) -> None:
    cap = CAPS[route]
    body = await valid_body(route, client, wallet)
    for size, status in ((cap + 1, 413), (cap, 200)):  # over first: a refusal burns nothing
        raw = padded(body, size)
        assert len(raw) == size
        stream = Stream(raw, chunk=4096)
        headers = JSON + ([(b"content-length", str(size).encode())] if declared else [])
        sent = await call(auth, route, stream, headers)
        assert sent[0]["status"] == status, sent[1]["body"]
        if status == 413:
            assert json.loads(sent[1]["body"])["code"] == 41301
            # Declared too large: refused before reading; streamed: stopped right after the cap.
            assert stream.calls == (0 if declared else cap // 4096 + 1)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "length", [b"%d", b"18446744073709551616", b"9" * 5000, b"0x7fffffff", b"1e9"]
)
async def test_declared_content_length_over_the_cap_is_refused_before_reading(
    auth: WalletAuth, route: str, length: bytes
) -> None:
    if length == b"%d":
        length = str(CAPS[route] + 1).encode()
    stream = Stream(endless=True)
    sent = await call(auth, route, stream, [*JSON, (b"content-length", length)])
    assert sent[0]["status"] in (400, 413)
    assert stream.calls == 0  # not one byte read
    assert secrets_issued(auth) == 0


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("length", [b"10", b"0", b"000010"])
async def test_understated_content_length_does_not_lift_the_streaming_cap(
    auth: WalletAuth, route: str, length: bytes
) -> None:
    stream = Stream(endless=True)
    sent = await call(auth, route, stream, [*JSON, (b"content-length", length)])
    assert sent[0]["status"] == 413
    assert stream.calls <= CAPS[route] // 1000 + 1


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "length", [b"-1", b"+10", b" 10", b"1_0", b"0x10", b"\xd9\xa1", b"0" * 5000 + b"x"]
)
async def test_a_content_length_that_is_not_digits_is_400_before_any_read(
    auth: WalletAuth, route: str, length: bytes
) -> None:
    # int() would take signs, blanks, underscores and non-ASCII digits: the header may not.
    stream = Stream(endless=True)
    sent = await call(auth, route, stream, [*JSON, (b"content-length", length)])
    assert sent[0]["status"] == 400
    assert stream.calls == 0
    assert secrets_issued(auth) == 0


@pytest.mark.parametrize("route", ROUTES)
async def test_thousands_of_leading_zeros_are_a_number_not_a_500(
    auth: WalletAuth, route: str
) -> None:
    # Past int()'s 4300-digit limit: a huge declared length is 413, a small one is read.
    stream = Stream(endless=True)
    sent = await call(auth, route, stream, [*JSON, (b"content-length", b"0" * 5000 + b"9" * 20)])
    assert sent[0]["status"] == 413 and stream.calls == 0


@pytest.mark.parametrize("route", ROUTES)
async def test_body_that_streams_forever_stops_being_read_after_the_cap(
    auth: WalletAuth, route: str
) -> None:
    stream = Stream(endless=True)
    sent = await call(auth, route, stream, JSON)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "code": 41301,
        "msg": "request body too large",
        "data": None,
    }
    assert stream.calls == CAPS[route] // 1000 + 1  # exactly the chunks needed to pass the cap


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"authenticated": isinstance(request.user, WalletUser)})


@pytest.mark.parametrize("route", ROUTES)
async def test_endless_body_through_the_signed_request_middleware_is_still_bounded(
    clock: FakeClock, route: str
) -> None:
    # With signed requests on, the middleware buffers a JSON body (to look for a signature)
    # before the login app reads it: both reads together must stay bounded.
    auth = make_auth(clock, signed_requests=True)
    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    stream = Stream(endless=True)
    sent = await call(app, "/auth" + route, stream, JSON)
    assert sent[0]["status"] == 413
    assert stream.calls <= (CAP + CAPS[route]) // 1000 + 2


# -- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json ; charset=utf8",
        "application/json; boundary=ignored",
    ],
)
async def test_control_json_content_type_spellings_are_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount, content_type: str
) -> None:
    response = await client.post(
        "/login_random_secret",
        content=dumps({"wallet_address": wallet.address}),
        headers={"content-type": content_type},
    )
    assert_ok(response)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/json",
        "text/plain",  # what a cross-site <form> can send without a CORS preflight
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/ld+json",
        "application/jsonx",
        "application/x-json",
        "application/javascript",
        "application/*",
        "*/*",
        "application/json, text/plain",
        "application/json; charset=utf-16",
        "application/json; charset=UTF-16LE",
        "application/json; charset=utf-32",
        "application/json; charset=latin-1",
        "application/json; charset=iso-8859-1",
        'application/json; charset="utf-16"',
        "application/json; charset='utf-8'",
        "application/json; charset=",
        "application/json; charset=utf-8; charset=utf-16",
        'application/json; x="a;charset=utf-16"',
        "",
    ],
)
async def test_non_json_or_non_utf8_content_type_is_415(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, content_type: str
) -> None:
    response = await client.post(
        "/login_random_secret",
        content=dumps({"wallet_address": wallet.address}),
        headers={"content-type": content_type},
    )
    assert assert_refused(response, 415)["code"] == 41501
    assert secrets_issued(auth) == 0


async def test_missing_or_repeated_content_type_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    raw = dumps({"wallet_address": wallet.address})
    assert_refused(await client.post("/login_random_secret", content=raw), 415)
    for second in ("text/plain", "application/json"):
        response = await client.post(
            "/login_random_secret",
            content=raw,
            headers=[("content-type", "application/json"), ("content-type", second)],
        )
        assert_refused(response, 400, 415)
    assert secrets_issued(auth) == 0


# -- encodings ----------------------------------------------------------------------------------


def _encodings(address: str) -> dict[str, bytes]:
    text = json.dumps({"wallet_address": address})
    return {
        "utf-8 bom": b"\xef\xbb\xbf" + text.encode(),
        "utf-16 le bom": text.encode("utf-16"),
        "utf-16 be": text.encode("utf-16-be"),
        "utf-32": text.encode("utf-32"),
        "overlong slash": f'{{"wallet_address": "{address}", "x": "\xc0\xaf"}}'.encode("latin-1"),
        # An overlong quote: a lenient decoder would close the string and open a new key.
        "overlong quote": (
            b'{"x": "\xc0\xa2, "wallet_address": "' + address.encode() + b'", "y": "z"}'
        ),
        "overlong nul": f'{{"wallet_address": "{address}\xc0\x80"}}'.encode("latin-1"),
        "cesu surrogate": f'{{"wallet_address": "{address}", "x": "'.encode() + b'\xed\xa0\x80"}',
        "lone continuation": f'{{"wallet_address": "{address}\x80"}}'.encode("latin-1"),
        "truncated sequence": f'{{"wallet_address": "{address}", "x": "\xe2\x82"}}'.encode(
            "latin-1"
        ),
        "latin-1 text": f'{{"wallet_address": "{address}", "x": "caf\xe9"}}'.encode("latin-1"),
        "raw nul outside string": f'{{"wallet_address":\x00"{address}"}}'.encode(),
        "raw nul in string": f'{{"wallet_address": "{address}\x00"}}'.encode(),
        "raw nul after object": text.encode() + b"\x00",
        "escaped nul": f'{{"wallet_address": "{address}\\u0000"}}'.encode(),
        "lone surrogate escape": f'{{"wallet_address": "{address[:-1]}\\ud800"}}'.encode(),
    }


@pytest.mark.parametrize("name", sorted(_encodings("0x" + "1" * 40)))
async def test_body_that_is_not_clean_utf8_json_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, name: str
) -> None:
    raw = _encodings(wallet.address)[name]
    response = await client.post(
        "/login_random_secret", content=raw, headers={"content-type": "application/json"}
    )
    assert_refused(response, 400)
    assert secrets_issued(auth) == 0


async def test_control_valid_non_ascii_utf8_is_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    raw = json.dumps({"wallet_address": wallet.address, "note": "café ✓ 𝄞"}, ensure_ascii=False)
    response = await client.post(
        "/login_random_secret", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert_ok(response)


async def test_utf16_body_declared_as_utf16_is_415_and_declared_as_json_is_400(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    raw = json.dumps({"wallet_address": wallet.address}).encode("utf-16")
    for content_type, status in (
        ("application/json; charset=utf-16", 415),
        ("application/json", 400),
        ("application/json; charset=utf-8", 400),
    ):
        response = await client.post(
            "/login_random_secret", content=raw, headers={"content-type": content_type}
        )
        assert_refused(response, status)


# -- JSON types ---------------------------------------------------------------------------------

WRONG_TYPES: list[object] = [
    0,
    -1,
    1.5,
    1e308,
    True,
    False,
    [],
    {},
    [None],
    {"$ne": None},
    10**100,
    "",
]

FIELDS = {
    "/login_random_secret": ["wallet_address"],
    "/login": ["login_random_secret", "signature", "wallet_address", "signature_content"],
    "/api/user_login/": [
        "userid",
        "did_type",
        "did_value",
        "timestamp",
        "pubkey_type",
        "pubkey_value",
        "signature_content",
        "did_signature",
        "nickname",
        "avatar_url",
        "avatar_base64",
    ],
}


@pytest.mark.parametrize("route", ROUTES)
async def test_wrong_json_type_in_any_field_is_a_4xx_and_burns_nothing(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, route: str
) -> None:
    body = await valid_body(route, client, wallet)
    issued = secrets_issued(auth)
    for name in FIELDS[route]:
        values = [*WRONG_TYPES, [body.get(name)], {"value": body.get(name)}]
        if name == "timestamp":
            values += [str(NOW_MS), float(NOW_MS), NOW_MS + 0.5, 2**53, 10**4000]
        for value in values:
            response = await client.post(route, json={**body, name: value})
            assert_refused(response, 400, 401, 413)
    # Nothing was burned or issued by the refusals: the untouched body still succeeds.
    assert secrets_issued(auth) == issued
    assert_ok(await client.post(route, json=body))


@pytest.mark.parametrize("route", ROUTES)
async def test_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, wallet: LocalAccount, route: str
) -> None:
    body = await valid_body(route, client, wallet)
    for raw in (
        json.dumps([body]),
        json.dumps(list(body.items())),
        json.dumps(json.dumps(body)),
        "null",
        "true",
        "0",
        "1" + "0" * 5000,
        "",
        " ",
        json.dumps(body) + json.dumps(body),
        json.dumps(body) + ",",
    ):
        response = await client.post(
            route, content=raw.encode(), headers={"content-type": "application/json"}
        )
        assert_refused(response, 400)
    assert_ok(await client.post(route, json=body))


@pytest.mark.parametrize(
    "literal",
    ["1" + "0" * 5000, "-1" + "0" * 5000, "1" + "0" * 4300, "1e400", "-1e400", "1e-400", "NaN"],
)
async def test_huge_number_as_web3mq_timestamp_is_400_not_500(
    client: httpx.AsyncClient, wallet: LocalAccount, literal: str
) -> None:
    # 10**5000 passes Python's 4300-digit int parsing limit: that ValueError must be a 400.
    body = web3mq_body(wallet)
    raw = dumps(body).replace(str(NOW_MS).encode(), literal.encode(), 1)
    assert literal.encode() in raw
    response = await client.post(
        "/api/user_login/", content=raw, headers={"content-type": "application/json"}
    )
    assert_refused(response, 400)
    assert_ok(await client.post("/api/user_login/", json=body))


@pytest.mark.parametrize("carrier", ["headers", "query", "body"])
async def test_huge_timestamp_in_a_signed_request_is_refused_not_500(
    clock: FakeClock, wallet: LocalAccount, carrier: str
) -> None:
    auth = make_auth(clock, signed_requests=True)
    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    huge = "1" + "0" * 5000
    signature = "A" * 86 + "=="
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://example.com") as client:
        assert_ok(await client.post("/auth/api/user_login/", json=web3mq_body(wallet)))
        if carrier == "headers":
            response = await client.post(
                "/echo",
                headers={
                    "web3mq-userid": "user:alice",
                    "web3mq-timestamp": huge,
                    "web3mq-user-signature": signature,
                },
            )
        elif carrier == "query":
            response = await client.post(
                "/echo",
                params={
                    "userid": "user:alice",
                    "timestamp": huge,
                    "web3mq_user_signature": signature,
                },
            )
        else:
            raw = (
                b'{"userid": "user:alice", "timestamp": '
                + huge.encode()
                + b', "web3mq_user_signature": "'
                + signature.encode()
                + b'"}'
            )
            response = await client.post(
                "/echo", content=raw, headers={"content-type": "application/json"}
            )
    assert response.status_code != 500
    if response.status_code == 200:  # an unparsable body is not a signed request: anonymous
        assert response.json() == {"authenticated": False}
    else:
        assert_refused(response, 401)


# -- duplicate keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_duplicate_keys_are_400_so_parsers_cannot_disagree_on_what_was_signed(
    auth: WalletAuth,
    client: httpx.AsyncClient,
    wallet: LocalAccount,
    other_wallet: LocalAccount,
    route: str,
) -> None:
    body = await valid_body(route, client, wallet)
    issued = secrets_issued(auth)
    first = next(iter(body))
    text = json.dumps(body)
    escaped_key = "".join(f"\\u{ord(c):04x}" for c in first)
    attempts = [
        # The same key twice: the second value would silently win in json.loads.
        text[:-1] + f", {json.dumps(first)}: {json.dumps(other_wallet.address)}}}",
        "{" + f"{json.dumps(first)}: {json.dumps(other_wallet.address)}, " + text[1:],
        # The same key spelled with escapes: equal only after decoding.
        text[:-1] + f', "{escaped_key}": {json.dumps(body[first])}}}',
        # A duplicate deep inside a field the route ignores.
        text[:-1] + ', "extra": {"a": {"b": 1, "b": 2}}}',
        text[:-1] + ', "extra": [{"c": 1, "c": 1}]}',
    ]
    for raw in attempts:
        response = await client.post(
            route, content=raw.encode(), headers={"content-type": "application/json"}
        )
        assert assert_refused(response, 400)["code"] == 40001, raw[:80]
    assert secrets_issued(auth) == issued
    assert_ok(await client.post(route, json=body))


# -- nesting and width --------------------------------------------------------------------------


@pytest.fixture(params=[1_000, 100_000], ids=["default-limit", "raised-limit"])
def recursion_limit(request: pytest.FixtureRequest) -> Iterator[int]:
    """The interpreter's recursion limit during the test.

    1000 is CPython's default; 100 000 is what ``py_ecc`` sets at import (it is imported by
    ``eth_account``, hence by every web3.py application, and by this test session's conftest).
    """
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(request.param)
    try:
        yield request.param
    finally:
        sys.setrecursionlimit(saved)


def nested(depth: int, opener: str = "[") -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + "1" + closer * depth


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("opener", ["[", '{"a":'], ids=["arrays", "objects"])
async def test_nesting_bomb_of_10000_levels_in_place_of_a_field_is_400(
    clock: FakeClock, wallet: LocalAccount, recursion_limit: int, route: str, opener: str
) -> None:
    auth = make_auth(clock, max_body_size=128 * 1024)  # let the bomb reach the parser
    async with client_for(auth) as client:
        body = await valid_body(route, client, wallet)
        first = next(iter(body))
        for raw in (
            nested(10_000, opener),
            json.dumps({**body, first: "BOMB"}).replace('"BOMB"', nested(10_000, opener)),
            "{" + f"{json.dumps(first)}: {nested(10_000, opener)}" + "}",
        ):
            response = await client.post(
                route, content=raw.encode(), headers={"content-type": "application/json"}
            )
            assert_refused(response, 400)


@pytest.mark.parametrize("route", ROUTES)
async def test_nesting_bomb_of_10000_levels_in_an_ignored_field_is_400(
    clock: FakeClock, wallet: LocalAccount, recursion_limit: int, route: str
) -> None:
    # docs/protocol.md: "no absurd nesting; anything else is a 400". Unknown fields are
    # ignored, so only the parser stands between this bomb and the handler; its refusal must
    # not depend on a process-wide setting that any imported library may raise.
    auth = make_auth(clock, max_body_size=128 * 1024)
    async with client_for(auth) as client:
        body = await valid_body(route, client, wallet)
        raw = json.dumps(body)[:-1] + f', "extra": {nested(10_000)}}}'
        response = await client.post(
            route, content=raw.encode(), headers={"content-type": "application/json"}
        )
        assert_refused(response, 400)
        assert_ok(await client.post(route, json=body))  # nothing was burned


_CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.setrecursionlimit(max(100_000, sys.getrecursionlimit()))  # what py_ecc does at import
    from asgi_wallet_auth import WalletAuth

    async def main():
        auth = WalletAuth(secret_key="k" * 32, domain="example.com", uri="https://example.com")
        depth = 99_000  # 198 kB: inside /api/user_login/'s 366 kB body cap
        body = b'{"extra": ' + b"[" * depth + b"]" * depth + b"}"
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return pending.pop(0)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/user_login/", "root_path": "",
                 "query_string": b"", "headers": [(b"content-type", b"application/json")]}
        await auth(scope, receive, send)
        print(json.dumps({"status": sent[0]["status"]}))

    asyncio.run(main())
    """
)


def test_nesting_bomb_near_the_web3mq_body_cap_does_not_crash_the_process() -> None:
    # In a process whose recursion limit was raised (any app that imports eth_account or web3),
    # a decoder that relies on RecursionError recurses ~99 000 C frames deep and overflows the
    # C stack: the worker dies with SIGSEGV (found by this suite: returncode -11 before the
    # explicit depth limit), taking every in-flight request with it. It must answer 400.
    result = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"worker died: returncode {result.returncode} {result.stderr}"
    assert json.loads(result.stdout) == {"status": 400}


async def test_huge_number_of_keys_is_a_4xx(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    many = {f"k{i}": i for i in range(15_000)}
    raw = dumps(many)
    assert len(raw) < WEB3MQ_CAP
    response = await client.post(
        "/api/user_login/", content=raw, headers={"content-type": "application/json"}
    )
    assert_refused(response, 400)
    # The same keys around a valid body: unknown fields are ignored, and a late duplicate of
    # a signed field is still caught among them.
    body = web3mq_body(wallet)
    tail = json.dumps({**many, **body})[:-1] + ', "userid": "user:mallory"}'
    response = await client.post(
        "/api/user_login/", content=tail.encode(), headers={"content-type": "application/json"}
    )
    assert_refused(response, 400)
    assert_ok(await client.post("/api/user_login/", json={**many, **body}))


# -- long strings -------------------------------------------------------------------------------


def _over_long(route: str, name: str, body: dict[str, Any], huge: bool) -> object:
    """One character past the field's limit, or a very long value when ``huge``."""
    if huge:
        size = 100_000 if route == "/api/user_login/" else 12_000
        return "a" * size
    value = body.get(name) or ""
    limits = {
        "login_random_secret": "a" * 129,
        "signature": str(value) + "0",
        "wallet_address": str(value) + "0",
        "did_value": str(value) + "0",
        "signature_content": "a" * 8193,
        "userid": "u" * 129,
        "did_type": "e" * 33,
        "pubkey_value": str(value) + "0",
        "did_signature": str(value) + "0",
        "nickname": "n" * 65,
        "avatar_url": "https://example.com/" + "a" * 2029,
        "avatar_base64": "A" * (encoded_avatar_limit(256 * 1024) + 4),
        "pubkey_type": "ed25519" + "x" * 100,
    }
    return limits.get(name, "x" * 10_000)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("huge", [False, True], ids=["one-past-the-limit", "huge"])
async def test_over_long_string_in_any_field_is_a_4xx(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, route: str, huge: bool
) -> None:
    body = await valid_body(route, client, wallet)
    issued = secrets_issued(auth)
    for name in FIELDS[route]:
        value = _over_long(route, name, body, huge)
        response = await client.post(route, json={**body, name: value})
        assert_refused(response, 400, 401, 413)
    assert secrets_issued(auth) == issued
    assert_ok(await client.post(route, json=body))


async def test_control_profile_fields_exactly_at_their_limits_are_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = web3mq_body(
        wallet,
        nickname="n" * 64,
        avatar_url="https://example.com/" + "a" * 2028,
        avatar_base64="data:image/png;base64," + base64.b64encode(PNG).decode(),
    )
    assert len(body["avatar_url"]) == 2048
    assert_ok(await client.post("/api/user_login/", json=body))


@pytest.mark.parametrize("route", ROUTES)
async def test_lone_surrogate_in_any_string_field_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, route: str
) -> None:
    body = await valid_body(route, client, wallet)
    issued = secrets_issued(auth)
    for name in FIELDS[route]:
        original = body.get(name)
        prefix = original[:-1] if isinstance(original, str) and original else "a"
        raw = json.dumps({**body, name: prefix + "\ud800"})  # json.dumps escapes it as \ud800
        assert "\\ud800" in raw
        response = await client.post(
            route, content=raw.encode(), headers={"content-type": "application/json"}
        )
        assert_refused(response, 400, 401, 413)
    assert secrets_issued(auth) == issued
    assert_ok(await client.post(route, json=body))
