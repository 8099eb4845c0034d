"""Web3MQ signed requests through ``WalletAuthMiddleware`` (docs/web3mq.md, "Signed requests").

A device key is registered through the real ``/auth/api/user_login/`` route; requests are then
signed with that fixed-seed ed25519 key (PyNaCl), exactly as Web3MQ's SDKs sign them.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Mapping
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
from starlette.types import Message, Scope

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware, WalletUser
from tests.conftest import FakeClock, client_for
from tests.helpers import assert_error, login, make_auth
from tests.test_web3mq import DEVICE, DEVICE_2, NOW_MS, USERID, login_body

SIG = "web3mq_user_signature"


def sign(device: nacl.signing.SigningKey, text: str) -> str:
    """Standard base64 of the ed25519 signature of ``text`` (UTF-8)."""
    return base64.b64encode(device.sign(text.encode("utf-8")).signature).decode("ascii")


def signed(
    ts: int = NOW_MS, *, userid: str = USERID, device: nacl.signing.SigningKey = DEVICE
) -> dict[str, Any]:
    """The three signed-request parameters over the default content ``userid + str(ts)``."""
    return {"userid": userid, "timestamp": str(ts), SIG: sign(device, userid + str(ts))}


def as_headers(params: Mapping[str, Any]) -> dict[str, str]:
    return {
        "web3mq-userid": params["userid"],
        "web3mq-timestamp": str(params["timestamp"]),
        "web3mq-user-signature": params[SIG],
    }


def describe(request: Request) -> dict[str, Any]:
    user = request.user
    claims = dict(user.claims) if isinstance(user, WalletUser) else {}
    return {
        "type": type(user).__name__,
        "authenticated": user.is_authenticated,
        "address": getattr(user, "address", None),
        "userid": getattr(user, "userid", None),
        "auth_method": claims.get("auth_method"),
        "scopes": list(request.auth.scopes),
    }


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(describe(request))


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({**describe(request), "body": base64.b64encode(body).decode()})


def build_app(auth: WalletAuth) -> Starlette:
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/echo", echo, methods=["POST"]),
            Mount("/auth", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


def assert_signed_in(response: httpx.Response, wallet: LocalAccount) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    assert seen["type"] == "WalletUser"
    assert seen["authenticated"] is True
    assert seen["address"] == wallet.address
    assert seen["userid"] == USERID
    assert seen["auth_method"] == "web3mq_signature"
    assert seen["scopes"] == ["authenticated"]
    return seen


def assert_anonymous(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = response.json()
    assert seen["type"] == "UnauthenticatedUser" and seen["authenticated"] is False
    return seen


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, signed_requests=True)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(build_app(auth)) as c:
        yield c


async def register(
    client: httpx.AsyncClient, wallet: LocalAccount, **overrides: Any
) -> dict[str, Any]:
    """Register a device key through the mounted Web3MQ login route."""
    response = await client.post("/auth/api/user_login/", json=login_body(wallet, **overrides))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
async def registered(client: httpx.AsyncClient, wallet: LocalAccount) -> dict[str, Any]:
    return await register(client, wallet)


# -- the three carriers ---------------------------------------------------------------------


async def test_signed_query_authenticates_the_wallet(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    assert_signed_in(await client.get("/whoami", params=signed()), wallet)


async def test_signed_headers_authenticate_the_wallet(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    assert_signed_in(await client.get("/whoami", headers=as_headers(signed())), wallet)


async def test_signed_json_body_authenticates_and_reaches_the_app_byte_for_byte(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    params = signed()
    fields = {"userid": params["userid"], "timestamp": NOW_MS, SIG: params[SIG], "text": "héllo"}
    raw = json.dumps(fields, indent=3, ensure_ascii=False).encode("utf-8") + b"\n"
    response = await client.post("/echo", content=raw, headers={"content-type": "application/json"})
    seen = assert_signed_in(response, wallet)
    assert base64.b64decode(seen["body"]) == raw


async def test_second_registered_device_may_sign(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    await register(client, wallet, device=DEVICE_2, timestamp=NOW_MS + 1)
    assert_signed_in(await client.get("/whoami", params=signed(device=DEVICE_2)), wallet)
    assert_signed_in(await client.get("/whoami", params=signed(NOW_MS + 5)), wallet)


def _http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def drive(app: Starlette, scope: Scope, chunks: list[bytes]) -> tuple[int, bytes, int]:
    """Call the ASGI app with the body in ``chunks``; the status, body and chunks read."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if pending:
            read += 1
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):  # a middleware that loses a chunk would leave the app waiting
        await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), read


async def test_signed_body_in_three_chunks_authenticates_and_the_app_sees_every_byte_in_order(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    params = signed()
    raw = json.dumps({"userid": USERID, "timestamp": NOW_MS, SIG: params[SIG], "n": 1}).encode()
    chunks = [raw[:7], raw[7:40], raw[40:]]
    assert all(chunks) and b"".join(chunks) == raw
    app = build_app(auth)
    scope = _http_scope("/echo", [(b"content-type", b"application/json")])
    status, body, read = await drive(app, scope, chunks)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["type"] == "WalletUser" and seen["userid"] == USERID
    assert seen["auth_method"] == "web3mq_signature"
    assert base64.b64decode(seen["body"]) == raw
    assert read == 3


async def test_signed_body_over_max_body_size_passes_through_untouched_and_unauthenticated(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    params = signed()
    fields = {"userid": USERID, "timestamp": NOW_MS, SIG: params[SIG], "pad": "x" * 17_000}
    raw = json.dumps(fields).encode()
    assert len(raw) > auth.max_body_size
    response = await client.post("/echo", content=raw, headers={"content-type": "application/json"})
    seen = assert_anonymous(response)
    assert base64.b64decode(seen["body"]) == raw
    # The same large body in chunks: still every byte, in order.
    scope = _http_scope("/echo", [(b"content-type", b"application/json")])
    chunks = [raw[:10_000], raw[10_000:17_000], raw[17_000:]]
    status, body, read = await drive(build_app(auth), scope, chunks)
    assert status == 200
    assert json.loads(body)["type"] == "UnauthenticatedUser"
    assert base64.b64decode(json.loads(body)["body"]) == raw
    assert read == 3


async def test_non_json_body_with_signature_fields_is_not_inspected(
    client: httpx.AsyncClient, registered: dict[str, Any]
) -> None:
    raw = json.dumps({"userid": USERID, "timestamp": NOW_MS, SIG: signed()[SIG]}).encode()
    response = await client.post("/echo", content=raw, headers={"content-type": "text/plain"})
    seen = assert_anonymous(response)
    assert base64.b64decode(seen["body"]) == raw


# -- refusals -------------------------------------------------------------------------------


def _other_text() -> dict[str, Any]:
    return {**signed(), SIG: sign(DEVICE, USERID + str(NOW_MS + 1))}


def _unregistered_key() -> dict[str, Any]:
    return signed(device=nacl.signing.SigningKey(bytes(range(100, 132))))


def _unknown_userid() -> dict[str, Any]:
    return signed(userid="user:nobody")


def _flipped_bit() -> dict[str, Any]:
    params = signed()
    raw = bytearray(base64.b64decode(params[SIG]))
    raw[10] ^= 1
    return {**params, SIG: base64.b64encode(bytes(raw)).decode()}


REFUSED_QUERIES: dict[str, tuple[dict[str, Any], int]] = {
    "signature over another text": (_other_text(), 40107),
    "tampered signature": (_flipped_bit(), 40107),
    "signature by an unregistered key": (_unregistered_key(), 40107),
    "unknown userid": (_unknown_userid(), 40107),
    "stale timestamp": (signed(NOW_MS - 300_001), 40106),
    "future timestamp": (signed(NOW_MS + 60_001), 40106),
    "non-numeric timestamp": ({**signed(), "timestamp": "17672256OOOOO"}, 40107),
    "negative timestamp": ({**signed(), "timestamp": "-1767225600000"}, 40107),
    "fractional timestamp": ({**signed(), "timestamp": "1767225600000.0"}, 40107),
    "empty timestamp": ({**signed(), "timestamp": ""}, 40107),
    "malformed base64": ({**signed(), SIG: "!" * 86 + "=="}, 40107),
    "base64url alphabet": ({**signed(), SIG: signed()[SIG].replace("+", "-")}, 40107),
    "unpadded base64": ({**signed(), SIG: signed()[SIG].rstrip("=")}, 40107),
    "empty signature": ({**signed(), SIG: ""}, 40107),
    "hex signature": ({**signed(), SIG: base64.b64decode(signed()[SIG]).hex()}, 40107),
    "bad userid grammar": ({**signed(), "userid": "user alice"}, 40107),
}


@pytest.mark.parametrize("case", list(REFUSED_QUERIES))
async def test_bad_signed_query_is_401_and_never_reaches_the_app(
    client: httpx.AsyncClient, registered: dict[str, Any], case: str
) -> None:
    params, code = REFUSED_QUERIES[case]
    if case == "base64url alphabet":
        assert params[SIG] != signed()[SIG]  # the fixed signature has a "+" to translate
    assert_error(await client.get("/whoami", params=params), 401, code)


async def test_bad_signed_headers_are_401(
    client: httpx.AsyncClient, registered: dict[str, Any]
) -> None:
    assert_error(await client.get("/whoami", headers=as_headers(_other_text())), 401, 40107)
    stale = as_headers(signed(NOW_MS - 300_001))
    assert_error(await client.get("/whoami", headers=stale), 401, 40106)


@pytest.mark.parametrize("missing", ["web3mq-user-signature", "web3mq-timestamp", "web3mq-userid"])
async def test_incomplete_signed_headers_are_401(
    client: httpx.AsyncClient, registered: dict[str, Any], missing: str
) -> None:
    headers = as_headers(signed())
    del headers[missing]
    assert_error(await client.get("/whoami", headers=headers), 401, 40107)


async def test_repeated_signed_header_is_401(
    client: httpx.AsyncClient, registered: dict[str, Any]
) -> None:
    headers = [*as_headers(signed()).items(), ("web3mq-userid", "user:bob")]
    assert_error(await client.get("/whoami", headers=headers), 401, 40107)


@pytest.mark.parametrize("name", ["userid", "timestamp", SIG])
async def test_duplicate_query_parameter_is_401(
    client: httpx.AsyncClient, registered: dict[str, Any], name: str
) -> None:
    params = signed()
    query = [*params.items(), (name, params[name])]
    assert_error(await client.get("/whoami", params=query), 401, 40107)


async def test_replayed_signed_request_is_401(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock, registered: dict[str, Any]
) -> None:
    params = signed()
    assert_signed_in(await client.get("/whoami", params=params), wallet)
    assert_error(await client.get("/whoami", params=params), 401, 40105)
    # The same signature through another carrier is the same request.
    assert_error(await client.get("/whoami", headers=as_headers(params)), 401, 40105)
    clock.advance(300)  # the marker lives as long as the timestamp is acceptable
    assert_error(await client.get("/whoami", params=params), 401, 40105)
    clock.advance(0.001)
    assert_error(await client.get("/whoami", params=params), 401, 40106)


def _base64_twins(signature: str) -> list[str]:
    """The other spellings of the same 64 bytes: the last data character carries 2 spare bits."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    index = alphabet.index(signature[-3])
    return [
        signature[:-3] + alphabet[(index & ~3) | low] + "=="
        for low in range(4)
        if (index & ~3) | low != index
    ]


async def test_replay_with_a_non_canonical_base64_spelling_of_the_signature_is_401(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    params = signed()
    twins = _base64_twins(params[SIG])
    assert len(twins) == 3
    assert all(base64.b64decode(t) == base64.b64decode(params[SIG]) for t in twins)
    assert_signed_in(await client.get("/whoami", params=params), wallet)
    for twin in twins:
        response = await client.get("/whoami", params={**params, SIG: twin})
        assert response.status_code == 401, f"replay accepted with {twin[-4:]}: {response.text}"


@pytest.mark.parametrize("carrier", ["query", "headers", "json"])
async def test_superscript_digit_timestamp_is_401_not_500(
    auth: WalletAuth, registered: dict[str, Any], carrier: str
) -> None:
    # "\u00b2".isdigit() is True but int("\u00b2") raises: the request must still be a refusal.
    params = {**signed(), "timestamp": "\u00b2"}
    transport = httpx.ASGITransport(app=build_app(auth), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        if carrier == "query":
            response = await client.get("/whoami", params=params)
        elif carrier == "headers":
            headers = {**as_headers(params), "web3mq-timestamp": b"\xb2"}  # latin-1 "\u00b2"
            response = await client.get("/whoami", headers=headers)
        else:
            response = await client.post("/echo", json=params)
        assert_error(response, 401, 40107)


async def test_bad_signed_json_body_is_401(
    client: httpx.AsyncClient, registered: dict[str, Any]
) -> None:
    cases = [
        {"userid": USERID, "timestamp": NOW_MS, SIG: _other_text()[SIG]},
        {"userid": USERID, "timestamp": float(NOW_MS), SIG: signed()[SIG]},
        {"userid": 7, "timestamp": NOW_MS, SIG: signed()[SIG]},
        {"userid": USERID, "timestamp": NOW_MS, SIG: None},
    ]
    for fields in cases:
        assert_error(await client.post("/echo", json=fields), 401, 40107)


# -- the signed_content hook ----------------------------------------------------------------


def _topic_content(scope: Scope, params: Mapping[str, Any]) -> str:
    return str(params["userid"]) + str(params["topic"]) + str(params["timestamp"])


async def test_signed_content_hook_defines_what_is_signed(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, signed_requests=True, signed_content=_topic_content)
    async with client_for(build_app(auth)) as client:
        await register(client, wallet)
        ts = str(NOW_MS)
        good = {"userid": USERID, "topic": "news", "timestamp": ts}
        good[SIG] = sign(DEVICE, USERID + "news" + ts)
        assert_signed_in(await client.get("/whoami", params=good), wallet)
        # The default content no longer passes, nor does a signature for another topic.
        default = {**signed(NOW_MS + 1), "topic": "news"}
        assert_error(await client.get("/whoami", params=default), 401, 40107)
        other_topic = {**good, "topic": "admin", "timestamp": str(NOW_MS + 2)}
        other_topic[SIG] = sign(DEVICE, USERID + "news" + str(NOW_MS + 2))
        assert_error(await client.get("/whoami", params=other_topic), 401, 40107)
        # The hook sees JSON body fields too.
        fields = {"userid": USERID, "topic": "x", "timestamp": NOW_MS + 3}
        fields[SIG] = sign(DEVICE, f"{USERID}x{NOW_MS + 3}")
        assert_signed_in(await client.post("/echo", json=fields), wallet)


def _raising_hook(scope: Scope, params: Mapping[str, Any]) -> str:
    raise RuntimeError("bug in the application's hook")


def _non_string_hook(scope: Scope, params: Mapping[str, Any]) -> str:
    return b"bytes, not text"  # type: ignore[return-value]


@pytest.mark.parametrize("hook", [_raising_hook, _topic_content, _non_string_hook])
async def test_broken_signed_content_hook_is_401_never_500(
    clock: FakeClock, wallet: LocalAccount, hook: Any
) -> None:
    auth = make_auth(clock, signed_requests=True, signed_content=hook)
    app = build_app(auth)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await register(client, wallet)
        # No "topic" parameter: _topic_content raises KeyError.
        assert_error(await client.get("/whoami", params=signed()), 401, 40107)


# -- switched off, and beside bearer tokens -------------------------------------------------


async def test_signed_parameters_are_ignored_when_signed_requests_is_off(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    assert auth.signed_requests is False
    async with client_for(build_app(auth)) as client:
        await register(client, wallet)
        assert_anonymous(await client.get("/whoami", params=signed()))
        assert_anonymous(await client.get("/whoami", headers=as_headers(signed())))
        bad = {**signed(), SIG: "!" * 86 + "=="}
        assert_anonymous(await client.get("/whoami", params=bad))
        fields = {"userid": USERID, "timestamp": NOW_MS, SIG: signed()[SIG]}
        seen = assert_anonymous(await client.post("/echo", json=fields))
        assert json.loads(base64.b64decode(seen["body"])) == fields


async def test_bearer_token_still_works_beside_signed_requests(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {registered['access_token']}"}
    seen = (await client.get("/whoami", headers=headers)).json()
    assert seen["type"] == "WalletUser" and seen["userid"] == USERID
    assert seen["auth_method"] is None
    legacy = await login(client, wallet, prefix="/auth")
    headers = {"Authorization": f"Bearer {legacy['access_token']}"}
    assert (await client.get("/whoami", headers=headers)).json()["address"] == wallet.address


async def test_bearer_token_takes_precedence_over_a_signature(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {registered['access_token']}"}
    bad = {**signed(), SIG: "!" * 86 + "=="}
    response = await client.get("/whoami", params=bad, headers=headers)
    assert response.status_code == 200
    assert response.json()["auth_method"] is None  # the token's user, not the signature's
    # A valid signature beside the token is not even consumed: it still works on its own.
    params = signed()
    seen = (await client.get("/whoami", params=params, headers=headers)).json()
    assert seen["auth_method"] is None
    assert_signed_in(await client.get("/whoami", params=params), wallet)
    # And a bad token is refused even beside a valid signature.
    response = await client.get(
        "/whoami", params=signed(NOW_MS + 1), headers={"Authorization": "Bearer a.b.c"}
    )
    assert_error(response, 401, 40111)


async def test_signed_request_user_matches_the_token_user(
    client: httpx.AsyncClient, wallet: LocalAccount, registered: dict[str, Any]
) -> None:
    via_token = (
        await client.get(
            "/whoami", headers={"Authorization": f"Bearer {registered['access_token']}"}
        )
    ).json()
    via_signature = assert_signed_in(await client.get("/whoami", params=signed()), wallet)
    for key in ("address", "userid", "type", "scopes"):
        assert via_token[key] == via_signature[key]
