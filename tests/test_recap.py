"""ReCaps (ERC-5573): the siwe-recap package's own vectors and a cross-check against it, the
ERC's example, every strictness rule, logins carrying capabilities, and secrets bound to fields."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import SiweError, SiweMessage, WalletAuth, WalletAuthMiddleware
from asgi_wallet_auth.errors import InvalidCapabilities
from asgi_wallet_auth.recap import PREAMBLE, ReCap, check_cid, recap_of
from tests.conftest import DOMAIN, T0, URI, FakeClock, client_for, sign_text
from tests.helpers import assert_error, iso, make_auth
from tests.recap_support import node_recap
from tests.solana_support import ADDRESS as SOLANA_ADDRESS

# The ERC's own example: its ReCap URI and the statement it translates to (URI https://example.com).
ERC_URI = (
    "urn:recap:eyJhdHQiOnsiaHR0cHM6Ly9leGFtcGxlLmNvbS9waWN0dXJlcy8iOnsiY3J1ZC9kZWxldGUiOlt7fV0sImNy"
    "dWQvdXBkYXRlIjpbe31dLCJvdGhlci9hY3Rpb24iOlt7fV19LCJtYWlsdG86dXNlcm5hbWVAZXhhbXBsZS5jb20iOnsibXNn"
    "L3JlY2VpdmUiOlt7Im1heF9jb3VudCI6NSwidGVtcGxhdGVzIjpbIm5ld3NsZXR0ZXIiLCJtYXJrZXRpbmciXX1dLCJtc2cv"
    "c2VuZCI6W3sidG8iOiJzb21lb25lQGVtYWlsLmNvbSJ9LHsidG8iOiJqb2VAZW1haWwuY29tIn1dfX0sInByZiI6WyJ6ZGo3"
    "V2o2Rk5TNHJVVWJzaUp2amp4Y3NOcVpkRENTaVlSOHNLUVhmb1BmcFNadUF3Il19"
)
ERC_STATEMENT = (
    PREAMBLE + " (1) 'crud': 'delete', 'update' for 'https://example.com/pictures/'. (2) 'other': "
    "'action' for 'https://example.com/pictures/'. (3) 'msg': 'receive', 'send' for "
    "'mailto:username@example.com'."
)
READ = {"https://example.com/files/": {"crud/read": [{}]}}


def urn(payload: str | bytes) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return "urn:recap:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- the package's vectors and the ERC's example ---------------------------------------------


def test_the_packages_valid_vectors_give_their_capabilities() -> None:
    vectors = node_recap("vectors")
    assert len(vectors["valid"]) == 3
    for name, vector in vectors["valid"].items():
        message = SiweMessage.parse(vector["text"])
        recap = recap_of(message.statement, message.resources)
        assert recap is not None, name
        assert recap.to_json()["att"] == vector["recap"]["att"], name
        assert list(recap.prf) == vector["recap"]["prf"], name
        assert recap.encode() == message.resources[-1], name  # one spelling: ours is the same
    assert ReCap.from_json(vectors["serialized"]).prf[0].startswith("bafy")


def test_the_packages_invalid_vectors_give_no_capabilities() -> None:
    vectors = node_recap("vectors")
    assert len(vectors["invalid"]) == 3
    for name, vector in vectors["invalid"].items():
        try:
            message = SiweMessage.from_fields(vector["message"])
        except SiweError:
            continue  # not even an EIP-4361 message (a '"' in the statement, a misspelt field)
        assert recap_of(message.statement, message.resources) is None, name


def test_the_ercs_example_decodes_translates_and_encodes_back() -> None:
    recap = ReCap.decode(ERC_URI)
    assert recap.statement() == ERC_STATEMENT
    assert recap.encode() == ERC_URI
    assert recap.prf == ("zdj7Wj6FNS4rUUbsiJvjjxcsNqZdDCSiYR8sKQXfoPfpSZuAw",)
    assert recap.allows("mailto:username@example.com", "msg/send")
    assert not recap.allows("mailto:username@example.com", "msg/delete")
    assert ("https://example.com/pictures/", "crud/update") in set(recap)


CROSS = [
    READ,
    {
        "https://example.com/a": {"crud/delete": [{}], "crud/read": [{}], "other/x": [{"n": 1}]},
        "kepler:ens:example.eth://default/kv": {"kv/get": [{}], "kv/put": [{}, {"max": 2}]},
        "urn:credential:type:type1": {"credential/present": [{}]},
    },
    {"mailto:a@example.com": {"msg/send": [{"to": "b@example.com"}], "msg/send-to": [{}]}},
]


def test_encoding_and_translation_agree_with_the_package() -> None:
    theirs = node_recap("build", [{"att": att, "prf": []} for att in CROSS])
    for att, built in zip(CROSS, theirs, strict=True):
        ours = ReCap.from_json({"att": att, "prf": []})
        assert ours.encode() == built["uri"]
        assert ours.statement() == built["statement"]


def siwe(
    account: LocalAccount | str,
    nonce: str,
    *,
    statement: str | None = None,
    resources: list[str] | None = None,
    request_id: str | None = None,
    not_before: float | None = None,
) -> str:
    """An EIP-4361 text written out by hand, with the optional fields given."""
    address = account if isinstance(account, str) else account.address
    lines = [f"{DOMAIN} wants you to sign in with your Ethereum account:", address, ""]
    lines += [statement, ""] if statement is not None else [""]
    lines += [
        f"URI: {URI}",
        "Version: 1",
        "Chain ID: 1",
        f"Nonce: {nonce}",
        f"Issued At: {iso(T0)}",
    ]
    if not_before is not None:
        lines.append(f"Not Before: {iso(not_before)}")
    if request_id is not None:
        lines.append(f"Request ID: {request_id}")
    if resources is not None:
        lines += ["Resources:", *(f"- {r}" for r in resources)]
    return "\n".join(lines)


def with_recap(
    att: dict[str, Any], *, prefix: str | None = "Sign in to Example"
) -> tuple[str, str]:
    recap = ReCap.from_json({"att": att, "prf": []})
    text = recap.statement() if prefix is None else f"{prefix} {recap.statement()}"
    return text, recap.encode()


def test_messages_we_accept_the_package_accepts_and_refusals_agree(wallet: LocalAccount) -> None:
    statement, uri = with_recap(CROSS[1])
    good = siwe(wallet, "abcdefgh12", statement=statement, resources=["https://x.example", uri])
    unsorted = urn('{"prf":[],"att":{"https://example.com/files/":{"crud/read":[{}]}}}')
    bad_ability = urn('{"att":{"https://example.com/files/":{"crud":[{}]}},"prf":[]}')
    wrong_statement = with_recap(READ)[0].replace("'read'", "'write'")
    refused = [
        siwe(wallet, "abcdefgh12", statement=statement, resources=[unsorted]),
        siwe(wallet, "abcdefgh12", statement=statement, resources=[bad_ability]),
        siwe(wallet, "abcdefgh12", statement=wrong_statement, resources=[with_recap(READ)[1]]),
        siwe(wallet, "abcdefgh12", statement=statement, resources=[uri, "https://x.example"]),
    ]
    verdicts = node_recap("verify", [good, *refused])
    assert verdicts[0]["ok"] and verdicts[0]["att"] == CROSS[1]
    message = SiweMessage.parse(good)
    assert recap_of(message.statement, message.resources) is not None
    for text, theirs in zip(refused, verdicts[1:], strict=True):
        assert not theirs["ok"], text
        message = SiweMessage.parse(text)
        with pytest.raises(InvalidCapabilities):
            recap_of(message.statement, message.resources)


# -- strictness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        (urn('{"att":{"https://a.example/":{"crud/read":[{}]}},"prf":[]}') + "=", "base64url"),
        ("urn:recap:" + "e30", "att"),  # "{}"
        (urn('{"att":{},"prf":[]}'), "non-empty"),
        (urn('{"att":{"https://a.example/":{}},"prf":[]}'), "non-empty object of abilities"),
        (urn('{"att":{"https://a.example/":{"crud/read":[{}],"crud/read":[{}]}}}'), "duplicate"),
        (urn('{"att":{"https://a.example/":{"crud/write":[{}],"crud/read":[{}]}}}'), "order"),
        (urn('{"att":{"https://a.example/":{"crud/read":[{"b":1,"a":2}]}}}'), "order"),
        (urn('{"att":{"https://a.example/":{"crud/read":[1]}},"prf":[]}'), "objects"),
        (urn('{"att":{"https://a.example/":{"crud/read":{}}},"prf":[]}'), "objects"),
        (urn('{"att":{"https://a.example/":{"crud read/x":[{}]}},"prf":[]}'), "namespace/name"),
        (urn('{"att":{"not a uri":{"crud/read":[{}]}},"prf":[]}'), "not a URI"),
        (urn('{"att":{"https://a.example/":{"crud/read":[{}]}},"prf":"x"}'), "prf"),
        (urn('{"att":{"https://a.example/":{"crud/read":[{}]}},"prf":["Qmnot"]}'), "CID"),
        (urn('{"att":{"https://a.example/":{"crud/read":[{}]}},"ext":1}'), "att"),
        (urn('{"att":{"https://a.example/":{"crud/read":[NaN]}}}'), "NaN"),
        (urn(b'\xff{"att":1}'), "JSON"),
        ("urn:recap:eyJhdHQiOnt9fR", "canonical"),  # trailing bits that are not zero
    ],
)
def test_a_malformed_recap_is_refused(resource: str, why: str) -> None:
    with pytest.raises(InvalidCapabilities, match=why):
        ReCap.decode(resource)


def test_one_recap_at_most_and_only_last_and_its_statement_must_end_the_statement() -> None:
    statement, uri = with_recap(READ)
    assert recap_of(statement, ("https://x.example", uri)) is not None
    assert recap_of(None, ("https://x.example",)) is None  # no ReCap: nothing to check
    for resources in ((uri, uri), (uri, "https://x.example")):
        with pytest.raises(InvalidCapabilities, match="at most one"):
            recap_of(statement, resources)
    translated = ReCap.decode(uri).statement()
    for bad in (None, "Sign in", statement + " More.", "Sign in" + translated):
        with pytest.raises(InvalidCapabilities, match="statement"):
            recap_of(bad, (uri,))


def test_cids_of_every_accepted_form() -> None:
    for good in (
        "zdj7Wj6FNS4rUUbsiJvjjxcsNqZdDCSiYR8sKQXfoPfpSZuAw",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    ):
        assert check_cid(good) == good
    for bad in ("", "bafy", "Qm" + "1" * 44, "zzz", "mAXASIA", "b" + "a" * 300, 7):
        with pytest.raises(InvalidCapabilities):
            check_cid(bad)


# -- logins ----------------------------------------------------------------------------------


def app_for(auth: WalletAuth) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        caps = request.auth.capabilities
        return JSONResponse(
            {
                "read": caps is not None and caps.allows("https://example.com/files/", "crud/read"),
                "user": request.user.capabilities == caps,
            }
        )

    return Starlette(
        routes=[Route("/me", me), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


async def secret_for(client: httpx.AsyncClient, address: str, **terms: Any) -> str:
    response = await client.post(
        "/auth/login_random_secret", json={"wallet_address": address, **terms}
    )
    assert response.status_code == 200, response.text
    secret: str = response.json()["data"]
    return secret


async def post_login(
    client: httpx.AsyncClient, account: LocalAccount, secret: str, text: str, path: str = "/login"
) -> httpx.Response:
    body = {
        "login_random_secret": secret,
        "signature": sign_text(account, text),
        "wallet_address": account.address,
        "signature_content": text,
    }
    return await client.post(f"/auth{path}", json=body)


async def test_a_login_carries_its_recap_to_request_auth(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    statement, uri = with_recap(READ)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, wallet.address)
        text = siwe(wallet, secret, statement=statement, resources=[uri])
        response = await post_login(client, wallet, secret, text)
        assert response.status_code == 200, response.text
        token = response.json()["data"]["access_token"]
        me = await client.get("/me", headers={"authorization": f"Bearer {token}"})
        assert me.json() == {"read": True, "user": True}
    assert auth.authenticate_token(token).claims["recap"] == {"att": READ, "prf": []}


async def test_a_bad_recap_is_refused_before_the_proof_and_burns_nothing(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    statement, uri = with_recap(READ)
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, wallet.address)
        lying = siwe(wallet, secret, statement="Sign in to Example", resources=[uri])
        assert_error(await post_login(client, wallet, secret, lying), 400, 40006)
        huge = {f"https://example.com/{i:04}": {"crud/read": [{}]} for i in range(60)}
        big_statement, big_uri = with_recap(huge, prefix=None)
        too_big = siwe(wallet, secret, statement=big_statement, resources=[big_uri])
        assert_error(await post_login(client, wallet, secret, too_big), 400, 40006)
        good = siwe(wallet, secret, statement=statement, resources=[uri])
        assert (await post_login(client, wallet, secret, good)).status_code == 200


async def test_a_secret_bound_to_fields_takes_only_a_message_carrying_exactly_them(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock)
    terms = {
        "resources": ["https://example.com/doc/1"],
        "request_id": "req-42",
        "not_before": iso(T0 - 10),
    }
    async with client_for(app_for(auth)) as client:
        secret = await secret_for(client, wallet.address, **terms)

        def text(**overrides: Any) -> str:
            fields: dict[str, Any] = {
                "resources": terms["resources"],
                "request_id": "req-42",
                "not_before": T0 - 10,
            }
            fields.update(overrides)
            return siwe(wallet, secret, statement="Sign in to Example", **fields)

        for wrong in (
            text(request_id=None),
            text(request_id="req-43"),
            text(resources=None),
            text(resources=["https://example.com/doc/2"]),
            text(not_before=None),
            text(not_before=T0 - 11),
        ):
            assert_error(await post_login(client, wallet, secret, wrong), 401, 40102)
        raw = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        assert_error(await client.post("/auth/login", json=raw), 401, 40102)
        assert (await post_login(client, wallet, secret, text())).status_code == 200
        # An unbound secret takes a message with any of the fields.
        plain = await secret_for(client, wallet.address)
        free = siwe(wallet, plain, resources=["https://other.example"], request_id="x")
        assert (await post_login(client, wallet, plain, free)).status_code == 200


@pytest.mark.parametrize(
    "terms",
    [
        {"resources": []},
        {"resources": ["not a uri"]},
        {"resources": "https://example.com"},
        {"request_id": "a b"},
        {"request_id": 7},
        {"not_before": "yesterday"},
    ],
)
async def test_malformed_terms_are_refused(
    clock: FakeClock, wallet: LocalAccount, terms: dict[str, Any]
) -> None:
    async with client_for(make_auth(clock)) as client:
        response = await client.post(
            "/login_random_secret", json={"wallet_address": wallet.address, **terms}
        )
        assert_error(response, 400, 40001)


async def test_terms_bind_only_eip_4361_messages(clock: FakeClock) -> None:
    from asgi_wallet_auth import EthereumVerifier, SolanaVerifier

    auth = make_auth(clock, chains=[EthereumVerifier(), SolanaVerifier()])
    async with client_for(auth) as client:
        response = await client.post(
            "/login_random_secret", json={"wallet_address": SOLANA_ADDRESS, "request_id": "r1"}
        )
    body = assert_error(response, 400, 40001)
    assert "EIP-4361" in body["msg"]


def test_recap_json_round_trips_through_the_token_claim() -> None:
    recap = ReCap.decode(ERC_URI)
    assert ReCap.from_json(json.loads(json.dumps(recap.to_json()))) == recap
