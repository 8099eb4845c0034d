"""Attacks on asymmetric tokens and on the JWKS: each one tried on the login service's middleware
and on a verify-only app that fetches the service's keys from a real loopback JWKS endpoint.

A control shows a real login's token accepted by both, so each refusal comes from the one thing
the attack changes. Attacker keys are real key pairs; every signature is a real one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import JwksAuthenticator, KeySet, SigningKey, WalletAuth
from asgi_wallet_auth.jwks import JwksFetcher
from tests.conftest import T0, URI, FakeClock, client_for
from tests.helpers import login
from tests.jwks_server import JwksServer, Reply, jwks_reply
from tests.key_kit import (
    ATTACKER_ED,
    ATTACKER_ES,
    ED_KEY,
    ES_KEY,
    b64json,
    b64url,
    bearer,
    login_service,
    protected_app,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ES = SigningKey.from_key(ES_KEY)
ED = SigningKey.from_key(ED_KEY, state="next")
NOW = int(T0)


@dataclass
class Deployment:
    """The login service, a verify-only app on its JWKS, the endpoint, and a real token."""

    service: WalletAuth
    verify_only: JwksAuthenticator
    endpoint: JwksServer
    token: str
    claims: dict[str, Any]


@pytest.fixture
def endpoint() -> Iterator[JwksServer]:
    with JwksServer(jwks_reply(KeySet((ES, ED)).jwks())) as server:
        yield server


@pytest.fixture
async def deployment(
    clock: FakeClock, wallet: LocalAccount, endpoint: JwksServer
) -> AsyncIterator[Deployment]:
    service = login_service(clock, KeySet((ES, ED)))
    async with client_for(service) as client:
        token = (await login(client, wallet))["access_token"]
    fetcher = JwksFetcher(endpoint.url, clock=clock)
    verify_only = JwksAuthenticator(issuer=URI, audience=URI, fetcher=fetcher, clock=clock)
    claims = service.tokens.verify(token)
    yield Deployment(service, verify_only, endpoint, token, claims)
    await verify_only.aclose()


async def status_on(auth: Any, token: str) -> int:
    async with client_for(protected_app(auth)) as client:
        response: httpx.Response = await client.get("/whoami", headers=bearer(token))
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json() == {
            "code": 40111,
            "msg": "access token is invalid or expired",
            "data": None,
        }
    return response.status_code


async def assert_refused_by_both(deployment: Deployment, token: str) -> None:
    assert await status_on(deployment.service, token) == 401
    assert await status_on(deployment.verify_only, token) == 401


def signed(header: dict[str, Any] | str, claims: dict[str, Any], sign: Any) -> str:
    """A compact JWS over any header (a dict, or raw JSON text) with ``sign(signing_input)``."""
    head = b64url(header.encode()) if isinstance(header, str) else b64json(header)
    signing_input = f"{head}.{b64json(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def es256_raw(key: ec.EllipticCurvePrivateKey, data: bytes, size: int = 32) -> bytes:
    """A JWS ECDSA signature, r || s, in its low-S spelling (so only what a test changes fails)."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    if size == 32 and s > P256_ORDER // 2:
        s = P256_ORDER - s
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def hs256(secret: bytes) -> Any:
    import hashlib
    import hmac

    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


# -- control ------------------------------------------------------------------------------------


async def test_control_a_real_token_is_accepted_by_both(deployment: Deployment) -> None:
    assert await status_on(deployment.service, deployment.token) == 200
    assert await status_on(deployment.verify_only, deployment.token) == 200
    # And one we sign here with the service's real key under its header is too.
    header = {"alg": "ES256", "kid": ES.kid, "typ": "JWT"}
    ours = signed(header, deployment.claims, lambda d: es256_raw(ES_KEY, d))
    assert await status_on(deployment.verify_only, ours) == 200


# -- algorithm confusion ------------------------------------------------------------------------


@pytest.mark.parametrize("secret_form", ["pem", "der", "jwk", "raw-point"])
@pytest.mark.parametrize("kid", ["ours", "none"])
async def test_hs256_token_whose_secret_is_our_public_key_is_refused(
    deployment: Deployment, secret_form: str, kid: str
) -> None:
    public = ES_KEY.public_key()
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(ES.public_jwk()).encode(),
        "raw-point": public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    }[secret_form]
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid == "ours":
        header = {"alg": "HS256", "kid": ES.kid, "typ": "JWT"}
    await assert_refused_by_both(deployment, signed(header, deployment.claims, hs256(secret)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature", ["", "junk", "real"])
async def test_alg_none_under_our_kid_is_refused(
    deployment: Deployment, alg: str, signature: str
) -> None:
    head = b64json({"alg": alg, "kid": ES.kid, "typ": "JWT"})
    body = b64json(deployment.claims)
    tail = {"": "", "junk": b64url(b"x" * 64), "real": deployment.token.rsplit(".", 1)[1]}
    await assert_refused_by_both(deployment, f"{head}.{body}.{tail[signature]}")


async def test_es256_token_with_a_high_s_signature_is_refused(deployment: Deployment) -> None:
    head, body, signature = deployment.token.split(".")
    raw = jwt.utils.base64url_decode(signature)
    s = int.from_bytes(raw[32:], "big")
    malleated = f"{head}.{body}.{b64url(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
    # The twin is a mathematically valid ECDSA signature: PyJWT accepts it...
    decoded = jwt.decode(
        malleated, ES_KEY.public_key(), algorithms=["ES256"], audience=URI,
        options={"verify_exp": False, "verify_iat": False},
    )  # fmt: skip
    assert decoded["sub"] == deployment.claims["sub"]
    # ...and both of ours refuse it: one token, one spelling.
    await assert_refused_by_both(deployment, malleated)


@pytest.mark.parametrize("alg", ["ES256", "ES384"])
async def test_es256_kid_with_a_signature_on_another_curve_is_refused(
    deployment: Deployment, alg: str
) -> None:
    p384 = ec.derive_private_key(0xC0FFEE1234567890, ec.SECP384R1())
    header = {"alg": alg, "kid": ES.kid, "typ": "JWT"}
    token = signed(header, deployment.claims, lambda d: es256_raw(p384, d, size=48))
    await assert_refused_by_both(deployment, token)


async def test_a_jwks_publishing_a_p384_key_as_es256_does_not_make_it_trusted(
    deployment: Deployment,
) -> None:
    p384 = ec.derive_private_key(0xC0FFEE1234567890, ec.SECP384R1())
    numbers = p384.public_key().public_numbers()
    rogue = {
        "kty": "EC", "crv": "P-384", "alg": "ES256", "kid": "rogue", "use": "sig",
        "x": b64url(numbers.x.to_bytes(48, "big")), "y": b64url(numbers.y.to_bytes(48, "big")),
    }  # fmt: skip
    deployment.endpoint.reply = jwks_reply({"keys": [ES.public_jwk(), rogue]})
    token = signed(
        {"alg": "ES256", "kid": "rogue", "typ": "JWT"},
        deployment.claims,
        lambda d: es256_raw(p384, d, size=48),
    )
    assert await status_on(deployment.verify_only, token) == 401
    assert deployment.endpoint.fetches == 1  # fetched once, the rogue key skipped as unusable
    assert deployment.verify_only.fetcher is not None
    assert deployment.verify_only.fetcher.snapshot()["kids"] == [ES.kid]


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519", "ES256"])
async def test_an_eddsa_signature_under_our_es256_kid_is_refused(
    deployment: Deployment, alg: str
) -> None:
    header = {"alg": alg, "kid": ES.kid, "typ": "JWT"}
    token = signed(header, deployment.claims, ATTACKER_ED.sign)
    await assert_refused_by_both(deployment, token)
    # Even our own Ed25519 key's signature does not pass under the ES256 key's kid.
    await assert_refused_by_both(deployment, signed(header, deployment.claims, ED_KEY.sign))


async def test_a_der_encoded_es256_signature_is_refused(deployment: Deployment) -> None:
    header = {"alg": "ES256", "kid": ES.kid, "typ": "JWT"}
    token = signed(header, deployment.claims, lambda d: ES_KEY.sign(d, ec.ECDSA(hashes.SHA256())))
    await assert_refused_by_both(deployment, token)


# -- headers and kids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"jwk": ES.public_jwk()},
        {"crit": ["exp"]},
        {"cty": "JWT"},
    ],
    ids=["jku", "x5u", "jwk", "crit", "cty"],
)
async def test_headers_we_never_write_are_refused_even_over_our_real_signature(
    deployment: Deployment, extra: dict[str, Any]
) -> None:
    header = {"alg": "ES256", "kid": ES.kid, "typ": "JWT", **extra}
    token = signed(header, deployment.claims, lambda d: es256_raw(ES_KEY, d))
    await assert_refused_by_both(deployment, token)


async def test_our_header_respelled_is_refused(deployment: Deployment) -> None:
    for raw in (
        f'{{"kid":"{ES.kid}","alg":"ES256","typ":"JWT"}}',  # members reordered
        f'{{"alg": "ES256", "kid": "{ES.kid}", "typ": "JWT"}}',  # whitespace
        f'{{"alg":"ES256","kid":"{ES.kid}","typ":"JWT","alg":"ES256"}}',  # duplicate
    ):
        token = signed(raw, deployment.claims, lambda d: es256_raw(ES_KEY, d))
        await assert_refused_by_both(deployment, token)


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "1; DROP TABLE keys; --",
        "kid\u0000",
        "",
        "x" * 2000,
    ],
    ids=["traversal", "absolute", "sql-or", "sql-drop", "nul", "empty", "huge"],
)
async def test_path_and_sql_looking_kids_are_refused_without_a_fetch_storm(
    deployment: Deployment, kid: str
) -> None:
    claims = deployment.claims
    tokens = [
        signed({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims, hs256(b"")),
        signed(
            {"alg": "ES256", "kid": kid, "typ": "JWT"}, claims, lambda d: es256_raw(ATTACKER_ES, d)
        ),
    ]
    for _ in range(3):
        for token in tokens:
            await assert_refused_by_both(deployment, token)
    # One fetch to start, one for the first unknown kid, then the cooldown holds.
    assert deployment.endpoint.fetches <= 2


async def test_a_token_signed_by_a_key_that_was_never_published_is_refused(
    deployment: Deployment,
) -> None:
    stranger = SigningKey.from_key(ATTACKER_ES)
    own_kid = signed(
        {"alg": "ES256", "kid": stranger.kid, "typ": "JWT"},
        deployment.claims,
        lambda d: es256_raw(ATTACKER_ES, d),
    )
    our_kid = signed(
        {"alg": "ES256", "kid": ES.kid, "typ": "JWT"},
        deployment.claims,
        lambda d: es256_raw(ATTACKER_ES, d),
    )
    await assert_refused_by_both(deployment, own_kid)
    await assert_refused_by_both(deployment, our_kid)


# -- hostile JWKS documents ------------------------------------------------------------------


def _with_attacker_key(extra: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [ES.public_jwk(), extra]}


@pytest.mark.parametrize(
    "document",
    [
        _with_attacker_key({"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(b"s" * 32)}),
        _with_attacker_key({"kid": "hmac", "alg": "HS256", "k": b64url(b"s" * 32)}),
        _with_attacker_key(
            {**SigningKey.from_key(ATTACKER_ES, kid="hmac").public_jwk(),  # type: ignore[dict-item]
             "d": b64url(b"\x01" * 32)}
        ),
    ],
    ids=["oct-key", "k-without-kty", "private-d"],
)  # fmt: skip
async def test_a_jwks_with_secret_material_is_refused_whole(
    deployment: Deployment, document: dict[str, Any]
) -> None:
    deployment.endpoint.reply = jwks_reply(document)
    header = {"alg": "HS256", "kid": "hmac", "typ": "JWT"}
    token = signed(header, deployment.claims, hs256(b"s" * 32))
    await assert_refused_by_both(deployment, token)
    fetcher = deployment.verify_only.fetcher
    assert fetcher is not None and fetcher.snapshot()["kids"] == []  # nothing ever trusted
    assert deployment.endpoint.fetches >= 1


@pytest.mark.parametrize("announced", [True, False])
async def test_an_oversized_jwks_is_refused_and_never_fully_read(
    deployment: Deployment, announced: bool
) -> None:
    attacker = SigningKey.from_key(ATTACKER_ES)
    padding = {"kty": "RSA", "kid": "pad", "n": "A" * 200_000, "e": "AQAB"}
    body = json.dumps({"keys": [ES.public_jwk(), attacker.public_jwk(), padding]}).encode()
    deployment.endpoint.reply = Reply(body, length=announced)
    token = signed(
        {"alg": "ES256", "kid": attacker.kid, "typ": "JWT"},
        deployment.claims,
        lambda d: es256_raw(ATTACKER_ES, d),
    )
    assert await status_on(deployment.verify_only, token) == 401
    assert await status_on(deployment.verify_only, deployment.token) == 401  # nothing cached


async def test_a_jwks_with_more_keys_than_the_cap_is_refused(deployment: Deployment) -> None:
    many = [SigningKey.from_key(ec.derive_private_key(i + 1, ec.SECP256R1())) for i in range(17)]
    deployment.endpoint.reply = jwks_reply({"keys": [k.public_jwk() for k in many]})
    token = signed(
        {"alg": "ES256", "kid": many[0].kid, "typ": "JWT"},
        deployment.claims,
        lambda d: es256_raw(ec.derive_private_key(1, ec.SECP256R1()), d),
    )
    assert await status_on(deployment.verify_only, token) == 401


async def test_a_jwks_repeating_a_kid_is_refused(deployment: Deployment) -> None:
    twin = SigningKey.from_key(ATTACKER_ES, kid=ES.kid)
    deployment.endpoint.reply = jwks_reply({"keys": [ES.public_jwk(), twin.public_jwk()]})
    assert await status_on(deployment.verify_only, deployment.token) == 401
