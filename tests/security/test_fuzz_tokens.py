"""The direct path against PyJWT, under fuzzing: it never accepts what PyJWT refuses.

Hypothesis changes valid tokens of each key type (characters replaced, inserted or deleted,
segments swapped or truncated, headers rewritten and re-signed with the real key). Whenever the
direct path accepts a token, PyJWT, with every check on and the same key, accepts it too and
returns the same claims; and every token issued is accepted by both.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import OKPAlgorithm

from asgi_wallet_auth import KeySet, SigningKey
from asgi_wallet_auth.errors import TokenInvalid
from asgi_wallet_auth.tokens import TokenService
from tests.conftest import SECRET_KEY, T0, URI, FakeClock
from tests.key_kit import ED_KEY, ES_KEY

SUBJECT = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
KINDS = {
    "HS256": (SigningKey.hmac(SECRET_KEY), SECRET_KEY.encode()),
    "ES256": (SigningKey.from_key(ES_KEY), ES_KEY.public_key()),
    "Ed25519": (SigningKey.from_key(ED_KEY), ED_KEY.public_key()),
}


def service(kind: str) -> TokenService:
    return TokenService(
        secret_key=SECRET_KEY.encode(),
        issuer=URI,
        audience=URI,
        lifetime=3600,
        session_lifetime=86400,
        clock=FakeClock(T0),
        keys=KeySet((KINDS[kind][0],)),
    )


SERVICES = {kind: service(kind) for kind in KINDS}
TOKENS = {
    kind: s.issue(subject=SUBJECT, auth_time=int(T0), extra={"userid": "u", "n": [1, {"a": None}]})
    for kind, s in SERVICES.items()
}


def pyjwt_claims(token: str, kind: str) -> dict[str, Any] | None:
    """PyJWT's verdict with the key of ``kind``, every check on, at the test's instant."""
    reference = jwt.PyJWT()
    reference._jws.register_algorithm("Ed25519", OKPAlgorithm())
    algorithms = {"HS256": ["HS256"], "ES256": ["ES256"], "Ed25519": ["Ed25519", "EdDSA"]}[kind]
    try:
        claims: dict[str, Any] = reference.decode(
            token,
            KINDS[kind][1],
            algorithms=algorithms,
            audience=URI,
            issuer=URI,
            leeway=10**9,  # time is checked against the injected clock below, not the real one
            options={"require": ["sub", "iat", "exp", "jti", "iss", "aud"]},
        )
    except jwt.InvalidTokenError:
        return None
    if not claims["iat"] <= T0 < claims["exp"]:
        return None
    return claims


def ours(token: str, kind: str) -> dict[str, Any] | None:
    try:
        return SERVICES[kind].verify(token)
    except TokenInvalid:
        return None


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    token = TOKENS[kind].token
    how = draw(st.sampled_from(["replace", "insert", "delete", "segments", "header"]))
    if how == "segments":
        parts = token.split(".")
        order = draw(st.permutations(range(3)))
        count = draw(st.integers(1, 4))
        return kind, ".".join(parts[i % 3] for i in [*order, *order][:count])
    if how == "header":
        header = {"alg": KINDS[kind][0].algorithm, "kid": KINDS[kind][0].kid, "typ": "JWT"}
        name = draw(st.sampled_from(["alg", "kid", "typ", "jku", "crit", "x5u"]))
        values: list[Any] = ["", "EdDSA", "HS256", "none", "JWT", "x"]
        header[name] = draw(st.sampled_from([*values, ["exp"]] if name == "crit" else values))
        return kind, _resign(kind, header, token.split(".")[1])
    position = draw(st.integers(0, len(token) - 1))
    char = draw(st.sampled_from(_ALPHABET))
    if how == "replace":
        return kind, token[:position] + char + token[position + 1 :]
    if how == "insert":
        return kind, token[:position] + char + token[position:]
    return kind, token[:position] + token[position + 1 :]


def _resign(kind: str, header: dict[str, Any], payload: str) -> str:
    """A token over ``header`` really signed by the service's own key (through PyJWT)."""
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    key = {"HS256": SECRET_KEY, "ES256": ES_KEY, "Ed25519": ED_KEY}[kind]
    alg = {"HS256": "HS256", "ES256": "ES256", "Ed25519": "EdDSA"}[kind]
    extra = {k: v for k, v in header.items() if k != "alg"}
    return jwt.encode(claims, key, algorithm=alg, headers=extra)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_issued_token_is_accepted_by_both_with_the_same_claims(kind: str) -> None:
    issued = TOKENS[kind]
    assert ours(issued.token, kind) == pyjwt_claims(issued.token, kind) == dict(issued.claims)


@FUZZ
@given(mutated())
def test_the_direct_path_never_accepts_what_pyjwt_refuses(case: tuple[str, str]) -> None:
    kind, token = case
    accepted = ours(token, kind)
    if accepted is not None:
        assert pyjwt_claims(token, kind) == accepted
