"""Attacks on access tokens, through ``WalletAuthMiddleware`` and ``GET /refresh``.

Every token here is either issued by a real login (real EIP-191 signatures by the fixed wallet
keys) or written by hand as a compact JWS, so any header, payload or signature can be tried. A
control test shows that a hand-forged token with valid claims and *our* key is accepted, so each
refusal below is caused by the one thing the attack changes. Each test is named after the attack
it blocks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware, WalletUser
from asgi_wallet_auth.cookies import CookieSettings
from asgi_wallet_auth.tokens import REQUIRED_CLAIMS
from tests.conftest import SECRET_KEY, T0, URI, FakeClock, client_for
from tests.helpers import login, make_auth

try:  # real asymmetric keys where the optional library is present; crafted headers otherwise
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - cryptography is installed in the dev environment
    HAVE_CRYPTOGRAPHY = False

DAY = 86_400
NOW = int(T0)
KEY = SECRET_KEY.encode()
ATTACKER_KEY = b"attacker-controlled-hmac-key-0123456789abcdef"
DROP = object()
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# -- hand-written tokens ----------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def forge(
    payload: dict[str, Any] | str,
    *,
    key: bytes = KEY,
    header: dict[str, Any] | str | None = None,
    mac: str = "HS256",
) -> str:
    """A compact JWS written by hand; ``payload`` and ``header`` may be raw JSON text."""
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    head = b64url(header.encode()) if isinstance(header, str) else b64json(header)
    body = b64url(payload.encode()) if isinstance(payload, str) else b64json(payload)
    signing_input = f"{head}.{body}"
    signature = hmac.new(key, signing_input.encode("ascii"), _HASHES[mac]).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims_for(address: str, **overrides: object) -> dict[str, Any]:
    """Valid claims at ``T0`` for this service; an override of ``DROP`` removes the claim."""
    base: dict[str, Any] = {
        "sub": address,
        "iat": NOW,
        "exp": NOW + 3600,
        "jti": "5f1c0ffee5f1c0ffee5f1c0ffee5f1c0",
        "iss": URI,
        "aud": URI,
        "auth_time": NOW,
        "userid": address,
        "did_type": "eth",
        "did_value": address,
    }
    for name, value in overrides.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def non_canonical_signature_spellings(token: str) -> list[str]:
    """The same token with the unused low bits of the signature's last character set.

    A 32-byte HMAC is 43 base64url characters whose last one carries 2 unused bits: these
    spellings decode to the very same signature bytes under a lenient decoder.
    """
    head, body, sig = token.split(".")
    index = _ALPHABET.index(sig[-1])
    return [
        f"{head}.{body}.{sig[:-1]}{_ALPHABET[(index & ~3) | bits]}"
        for bits in range(4)
        if (index & ~3) | bits != index
    ]


# -- the application under attack -------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "reached": True,
            "authenticated": user.is_authenticated,
            "address": user.address if isinstance(user, WalletUser) else None,
        }
    )


def build_app(auth: WalletAuth) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "POST"]), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, revocation=True)


@pytest.fixture
async def client(auth: WalletAuth) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app(auth)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response, code: int = 40111) -> None:
    """The middleware's or the route's 401 envelope, never the application's own answer."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    body = response.json()
    assert body == {"code": code, "msg": body["msg"], "data": None}
    assert "reached" not in response.text and "access_token" not in response.text


async def assert_refused_everywhere(client: httpx.AsyncClient, token: str) -> None:
    """Refused by the middleware (GET and POST), by /refresh and by /logout."""
    assert_invalid_token(await client.get("/whoami", headers=bearer(token)))
    assert_invalid_token(await client.post("/whoami", headers=bearer(token)))
    assert_invalid_token(await client.get("/auth/refresh", headers=bearer(token)))
    assert_invalid_token(await client.post("/auth/logout", headers=bearer(token)))


async def assert_accepted(client: httpx.AsyncClient, token: str, address: str) -> None:
    response = await client.get("/whoami", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"reached": True, "authenticated": True, "address": address}


# -- control ------------------------------------------------------------------------------------


async def test_control_hand_forged_token_with_our_key_is_accepted_so_refusals_are_meaningful(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = forge(claims_for(wallet.address))
    await assert_accepted(client, token, wallet.address)
    refreshed = await client.get("/auth/refresh", headers=bearer(token))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["data"]["wallet_address"] == wallet.address


# -- alg: none ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "our_hmac", "junk"])
async def test_alg_none_token_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, alg: str, signature: str
) -> None:
    header = {"alg": alg, "typ": "JWT"}
    payload = claims_for(wallet.address)
    if signature == "empty":
        token = f"{b64json(header)}.{b64json(payload)}."
    elif signature == "our_hmac":  # a valid HS256 MAC under a header that says "none"
        token = forge(payload, header=header)
    else:
        token = f"{b64json(header)}.{b64json(payload)}.{b64url(b'x' * 32)}"
    await assert_refused_everywhere(client, token)


@pytest.mark.parametrize(
    "raw_header",
    ['{"alg":"HS256","alg":"none"}', '{"alg":"none","alg":"HS256","alg":"none"}'],
)
async def test_alg_none_smuggled_by_a_duplicate_alg_key_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, raw_header: str
) -> None:
    await assert_refused_everywhere(client, forge(claims_for(wallet.address), header=raw_header))


# -- algorithm confusion ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_algorithm_confusion_with_another_hmac_hash_and_the_same_key_is_refused(
    clock: FakeClock, wallet: LocalAccount, alg: str
) -> None:
    # A key long enough for HS512: PyJWT's short-key warning (an error under this suite's
    # filterwarnings) must not be what refuses the token; only the pinned algorithm may.
    long_key = b"L" * 64
    auth = make_auth(clock, secret_key=long_key, revocation=True)
    claims = claims_for(wallet.address)
    async with client_for(build_app(auth)) as client:
        await assert_accepted(client, forge(claims, key=long_key), wallet.address)  # control
        token = forge(claims, key=long_key, header={"alg": alg, "typ": "JWT"}, mac=alg)
        await assert_refused_everywhere(client, token)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "ES256K"])
async def test_algorithm_confusion_asymmetric_header_with_our_hmac_key_as_public_key_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, alg: str
) -> None:
    # A verifier that took the key from its configuration and the algorithm from the header
    # would check this "RS256" token's MAC with the HMAC key: ours must not.
    token = forge(claims_for(wallet.address), header={"alg": alg, "typ": "JWT"})
    await assert_refused_everywhere(client, token)


def _attacker_asymmetric_tokens(address: str) -> dict[str, str]:
    """Tokens really signed by attacker key pairs, each embedding its public key as ``jwk``."""
    if not HAVE_CRYPTOGRAPHY:  # pragma: no cover - crafted stand-ins without the library
        junk = b64url(bytes(range(64)) * 4)
        return {
            alg: f"{b64json({'alg': alg, 'jwk': {'kty': 'RSA'}})}.{b64json(claims_for(address))}"
            f".{junk}"
            for alg in ("RS256", "ES256")
        }
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = claims_for(address)
    return {
        "RS256": jwt.encode(claims, rsa_key, algorithm="RS256", headers={"jwk": rsa_jwk}),
        "ES256": jwt.encode(claims, ec_key, algorithm="ES256", headers={"jwk": ec_jwk}),
        # The classic confusion the other way round: HS256 keyed with the attacker's public key.
        "HS256-with-public-pem": forge(
            claims, key=public_pem, header={"alg": "HS256", "jwk": rsa_jwk}
        ),
    }


async def test_token_signed_by_an_attacker_key_pair_with_embedded_jwk_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    tokens = _attacker_asymmetric_tokens(wallet.address)
    assert len(tokens) >= 2
    for token in tokens.values():
        await assert_refused_everywhere(client, token)


# -- keys from elsewhere ------------------------------------------------------------------------


async def test_token_signed_by_another_services_key_is_refused(
    client: httpx.AsyncClient, clock: FakeClock, wallet: LocalAccount
) -> None:
    other = make_auth(clock, secret_key="another-service-with-its-own-key-0123456789")
    async with client_for(other) as other_client:
        token = (await login(other_client, wallet))["access_token"]
        # It is a perfectly good token where it was issued...
        assert (await other_client.get("/refresh", headers=bearer(token))).status_code == 200
    # ...and worthless here, though issuer, audience and claims are identical to ours.
    await assert_refused_everywhere(client, token)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "kid": "attacker-key"},
        {"alg": "HS256", "jku": "https://evil.example/jwks.json"},
        {"alg": "HS256", "x5u": "https://evil.example/cert.pem"},
        {"alg": "HS256", "jwk": {"kty": "oct", "k": b64url(ATTACKER_KEY)}},
        {
            "alg": "HS256",
            "kid": "attacker-key",
            "jku": "https://evil.example/jwks.json",
            "x5u": "https://evil.example/cert.pem",
            "jwk": {"kty": "oct", "kid": "attacker-key", "k": b64url(ATTACKER_KEY)},
        },
    ],
    ids=["kid", "jku", "x5u", "jwk", "all"],
)
async def test_key_location_headers_pointing_at_an_attacker_key_are_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, header: dict[str, Any]
) -> None:
    claims = claims_for(wallet.address)
    await assert_refused_everywhere(client, forge(claims, header=header, key=ATTACKER_KEY))
    # Even MACed with our key, a header this service never writes is refused: the header is
    # matched whole against the ones we issue, and never consulted for a key. The control,
    # our own header and key, is accepted.
    await assert_refused_everywhere(client, forge(claims, header=header))
    await assert_accepted(client, forge(claims), wallet.address)


async def test_kid_path_traversal_to_an_empty_key_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    # A verifier that read the key file named by "kid" would get b"" from /dev/null.
    header = {"alg": "HS256", "kid": "../../../../../../dev/null"}
    await assert_refused_everywhere(
        client, forge(claims_for(wallet.address), header=header, key=b"")
    )


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["x-unknown"], []])
async def test_crit_header_naming_an_extension_we_do_not_implement_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, crit: list[str]
) -> None:
    header = {"alg": "HS256", "typ": "JWT", "crit": crit, "x-unknown": True}
    await assert_refused_everywhere(client, forge(claims_for(wallet.address), header=header))


# -- claims -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIRED_CLAIMS)
async def test_token_missing_a_required_claim_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, name: str
) -> None:
    await assert_refused_everywhere(client, forge(claims_for(wallet.address, **{name: DROP})))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("exp", str(NOW + 3600)),
        ("exp", float(NOW + 3600)),
        ("exp", NOW + 3600.5),
        ("exp", True),
        ("exp", [NOW + 3600]),
        ("exp", {"$gt": NOW}),
        ("exp", -1),
        ("exp", 2**63),
        ("exp", 10**40),
        ("iat", True),
        ("iat", False),
        ("iat", str(NOW)),
        ("iat", NOW + 3600),
        ("iat", 2**64),
        ("auth_time", True),
        ("auth_time", float(NOW)),
        ("auth_time", -(10**40)),
        ("auth_time", NOW - 31 * DAY),
        ("auth_time", NOW + 1),
        ("nbf", str(NOW)),
        ("nbf", NOW + 3600),
        ("sub", {"address": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"}),
        ("sub", ["0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"]),
        ("sub", {"sub": {"sub": {"sub": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"}}}),
        ("sub", 0x2C7536E3605D9C16A7A3D7B1898E529396A65C23),
        ("jti", 123),
        ("jti", {"id": "x"}),
        ("iss", [URI]),
        ("iss", URI + "/"),
        ("aud", "https://evil.example"),
    ],
)
async def test_token_with_a_malformed_claim_is_refused_even_with_our_key(
    client: httpx.AsyncClient, wallet: LocalAccount, name: str, value: object
) -> None:
    await assert_refused_everywhere(client, forge(claims_for(wallet.address, **{name: value})))


@pytest.mark.parametrize("raw_exp", ["1e400", "NaN", "Infinity", "-Infinity", "17672292e2"])
async def test_token_with_a_non_json_or_non_integer_exp_literal_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, raw_exp: str
) -> None:
    text = json.dumps(claims_for(wallet.address, exp=DROP), separators=(",", ":"))
    payload = text[:-1] + f',"exp":{raw_exp}}}'
    await assert_refused_everywhere(client, forge(payload))


@pytest.mark.parametrize(
    ("name", "value"),
    [("exp", 10**400), ("exp", -(10**400)), ("auth_time", -(10**400)), ("iat", -(10**400))],
    ids=["exp=10**400", "exp=-10**400", "auth_time=-10**400", "iat=-10**400"],
)
async def test_time_claim_too_large_for_a_float_is_a_401_not_a_server_error(
    auth: WalletAuth, wallet: LocalAccount, name: str, value: int
) -> None:
    # JSON integers are unbounded; the time checks must not do float arithmetic on them.
    # Found by this suite: exp=10**400 overflowed ``exp + leeway`` (OverflowError, a 500 from
    # the middleware and /refresh). Reaching the time checks takes a valid MAC, so this is a
    # robustness bug: verify() promises TokenInvalid "for anything else".
    token = forge(claims_for(wallet.address, **{name: value}))
    assert len(token) < 4096
    transport = httpx.ASGITransport(app=build_app(auth), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await assert_refused_everywhere(client, token)


@pytest.mark.parametrize(
    "sub",
    ["admin", "*", "", "0x" + "0" * 40, "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", "user:alice"],
)
async def test_attacker_token_whose_sub_is_not_our_wallet_address_is_refused(
    client: httpx.AsyncClient, wallet: LocalAccount, sub: str
) -> None:
    claims = claims_for(wallet.address, sub=sub)
    await assert_refused_everywhere(client, forge(claims, key=ATTACKER_KEY))
    await assert_refused_everywhere(client, jwt.encode(claims, ATTACKER_KEY, algorithm="HS256"))


async def test_token_of_another_issuer_or_audience_sharing_our_key_is_refused(
    client: httpx.AsyncClient, clock: FakeClock, wallet: LocalAccount
) -> None:
    # One key reused by a staging service, by an old ("deleted") issuer and for another audience.
    others = [
        make_auth(clock, domain="staging.example.com", uri="https://staging.example.com"),
        make_auth(clock, issuer="https://retired-issuer.example.com"),
        make_auth(clock, audience="https://another-api.example.com"),
    ]
    for other in others:
        async with client_for(other) as other_client:
            token = (await login(other_client, wallet))["access_token"]
            assert (await other_client.get("/refresh", headers=bearer(token))).status_code == 200
        await assert_refused_everywhere(client, token)


# -- spellings of one token ---------------------------------------------------------------------


def _spellings(token: str) -> dict[str, tuple[str, bool | None]]:
    """Authorization header values carrying ``token``: (value, accepted while valid)."""
    head, body, sig = token.split(".")
    spellings: dict[str, tuple[str, bool | None]] = {
        "canonical": (f"Bearer {token}", True),
        # RFC 7235: the scheme is case-insensitive and 1*SP separates it from the credential.
        "two spaces": (f"Bearer  {token}", True),
        "lowercase scheme": (f"bearer {token}", True),
        "uppercase scheme": (f"BEARER {token}", True),
        "surrounding whitespace": (f"  Bearer {token}  ", True),
        # Padding and other characters outside base64url are never part of our tokens.
        "= on header": (f"Bearer {head}=.{body}.{sig}", False),
        "== on payload": (f"Bearer {head}.{body}==.{sig}", False),
        "= on signature": (f"Bearer {token}=", False),
        "== on signature": (f"Bearer {token}==", False),
        "standard base64 alphabet": (f"Bearer {token.replace('-', '+').replace('_', '/')}", None),
        "trailing dot": (f"Bearer {token}.", False),
        "inner space": (f"Bearer {head}. {body}.{sig}", False),
        "quoted": (f'Bearer "{token}"', False),
    }
    for n, variant in enumerate(non_canonical_signature_spellings(token)):
        spellings[f"non-canonical signature {n}"] = (f"Bearer {variant}", False)
    return spellings


async def test_padding_and_whitespace_spellings_of_a_valid_token_never_yield_another_identity(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    spellings = _spellings(token)
    assert len(spellings) >= 14
    for name, (value, accepted) in spellings.items():
        response = await client.get("/whoami", headers={"Authorization": value})
        if accepted is None:  # same as another spelling only when the token has no - or _
            accepted = value == f"Bearer {token}"
        if accepted:
            assert response.status_code == 200, name
            assert response.json()["address"] == wallet.address, name
        else:
            assert_invalid_token(response)


async def test_revoked_token_is_refused_in_every_spelling(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    # Warm the verified-token cache with the canonical spelling first.
    await assert_accepted(client, token, wallet.address)
    logout = await client.post("/auth/logout", headers=bearer(token))
    assert logout.status_code == 200 and logout.json() == {"code": 0, "msg": "ok", "data": None}
    values = [value for value, _ in _spellings(token).values()] + [f"Bearer\t{token}"]
    for value in values:
        header = {"Authorization": value}
        seen = await client.get("/whoami", headers=header)
        # A revoked token never authenticates: 401, or (for a header that is not a bearer
        # credential at all) an anonymous request.
        assert seen.status_code == 401 or seen.json()["authenticated"] is False, value
        for response in (
            await client.get("/auth/refresh", headers=header),
            await client.post("/auth/logout", headers=header),
        ):
            assert response.status_code == 401, value
            assert "access_token" not in response.text


async def test_revoked_token_in_a_websocket_query_string_is_closed(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 200
    unsigned = f"{b64json({'alg': 'none'})}.{b64json(claims_for(wallet.address))}.x"
    for query in (f"access_token={token}", f"access_token={unsigned}"):
        sent, reached = await _websocket_handshake(auth, query)
        assert reached is False
        assert sent == [{"type": "websocket.close", "code": 1008}]


async def _websocket_handshake(auth: WalletAuth, query: str) -> tuple[list[Any], bool]:
    sent: list[dict[str, Any]] = []
    reached = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal reached
        reached = True

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"example.com")],
    }
    await WalletAuthMiddleware(app, auth=auth)(scope, receive, send)
    return sent, reached


# -- the session's absolute end -------------------------------------------------------------


async def test_refresh_chain_cannot_outlive_the_absolute_session_lifetime(
    client: httpx.AsyncClient, clock: FakeClock, wallet: LocalAccount
) -> None:
    token = (await login(client, wallet, prefix="/auth"))["access_token"]
    session_end = NOW + 30 * DAY
    # Refresh as late as possible each time: every refresh is single use and capped.
    while clock.now < session_end - 1:
        claims = jwt.decode(token, options={"verify_signature": False})
        clock.now = min(claims["exp"] - 1, session_end - 1)
        response = await client.get("/auth/refresh", headers=bearer(token))
        assert response.status_code == 200, response.text
        old, token = token, response.json()["data"]["access_token"]
        new_claims = jwt.decode(token, options={"verify_signature": False})
        assert new_claims["auth_time"] == NOW
        assert new_claims["exp"] <= session_end
        assert_invalid_token(await client.get("/auth/refresh", headers=bearer(old)))
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == session_end
    await assert_accepted(client, token, wallet.address)  # one last second
    clock.now = session_end
    # The last token expires with the session, so refresh sees an expired token (docs: 40111).
    assert_invalid_token(await client.get("/auth/refresh", headers=bearer(token)))
    assert_invalid_token(await client.get("/whoami", headers=bearer(token)))


# -- the cookie transport -------------------------------------------------------------------


@pytest.fixture
def cookie_auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock, cookie=CookieSettings(secure=False), revocation=True)


async def test_cookie_token_on_post_without_csrf_is_refused(
    cookie_auth: WalletAuth, wallet: LocalAccount
) -> None:
    async with client_for(build_app(cookie_auth), base_url="http://example.com") as client:
        data = await login(client, wallet, prefix="/auth")
        token, csrf = data["access_token"], data["csrf_token"]
        assert client.cookies.get("wallet_auth") == token
        # The cookie alone authenticates a safe request...
        assert (await client.get("/whoami")).json()["address"] == wallet.address
        # ...but never an unsafe one without the CSRF header, however it is dressed up.
        attempts: list[dict[str, str]] = [
            {},
            {"x-csrf-token": ""},
            {"x-csrf-token": token},  # the access token is not a CSRF token
            {"x-csrf-token": csrf + "x"},
            {"Authorization": "Basic dXNlcjpwYXNz"},  # another scheme leaves the cookie in use
            {"x-xsrf-token": csrf},  # another framework's header name
        ]
        for headers in attempts:
            for method, path in (
                ("POST", "/whoami"),
                ("PURGE", "/whoami"),
                ("POST", "/auth/logout"),
            ):
                response = await client.request(method, path, headers=headers)
                assert response.status_code == 403, (method, path, headers)
                assert response.json() == {
                    "code": 40303,
                    "msg": "CSRF token missing or invalid",
                    "data": None,
                }
        # The CSRF header without its cookie (a page cannot read it cross-site, and without
        # the cookie the double submit has nothing to compare with) is refused too.
        client.cookies.delete("wallet_auth_csrf")
        response = await client.post("/whoami", headers={"x-csrf-token": csrf})
        assert response.status_code == 403
        client.cookies.set("wallet_auth_csrf", csrf)
        # None of the refused logouts revoked the session, and the right header still works.
        assert (await client.get("/whoami")).json()["address"] == wallet.address
        response = await client.post("/whoami", headers={"x-csrf-token": csrf})
        assert response.json()["address"] == wallet.address
