"""Access tokens: a pinned HMAC algorithm, required claims and time checks on an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest

from asgi_wallet_auth.errors import SessionExpired, TokenInvalid
from asgi_wallet_auth.tokens import MAX_TOKEN_LENGTH, REQUIRED_CLAIMS, TokenService
from tests.conftest import T0, FakeClock

SECRET = b"k" * 32
ATTACKER_KEY = b"a" * 32
LONG_SECRET = b"L" * 64  # long enough for HS512 without PyJWT's key-length warning
ISSUER = AUDIENCE = "https://example.com"
LIFETIME = 7 * 86400
SESSION = 30 * 86400
NOW = int(T0)
SUBJECT = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
DROP = object()
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def make_service(clock: FakeClock, **overrides: Any) -> TokenService:
    settings: dict[str, Any] = {
        "secret_key": SECRET,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "lifetime": LIFETIME,
        "session_lifetime": SESSION,
        "clock": clock,
    }
    settings.update(overrides)
    return TokenService(**settings)


@pytest.fixture
def service(clock: FakeClock) -> TokenService:
    return make_service(clock)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: object) -> dict[str, Any]:
    """Valid claims at ``T0``; an override of ``DROP`` removes the claim."""
    base: dict[str, Any] = {
        "sub": SUBJECT,
        "iat": NOW,
        "exp": NOW + 3600,
        "jti": "0123456789abcdef",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "auth_time": NOW,
    }
    for name, value in overrides.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def forge(
    payload: dict[str, Any],
    *,
    key: bytes = SECRET,
    header: dict[str, Any] | None = None,
    mac: str = "HS256",
) -> str:
    """A compact JWS written by hand, so any header or payload can be tried."""
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = hmac.new(key, signing_input.encode("ascii"), _HASHES[mac]).digest()
    return f"{signing_input}.{b64url(signature)}"


def assert_refused(service: TokenService, token: object) -> None:
    with pytest.raises(TokenInvalid) as excinfo:
        service.verify(token)  # type: ignore[arg-type]
    assert type(excinfo.value) is TokenInvalid
    assert excinfo.value.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# --------------------------------------------------------------------------- round trip


def test_issued_token_verifies_to_its_claims(service: TokenService) -> None:
    issued = service.issue(subject=SUBJECT, auth_time=NOW)
    verified = service.verify(issued.token)
    assert verified == dict(issued.claims)
    assert verified["sub"] == SUBJECT
    assert verified["iat"] == NOW
    assert verified["exp"] == NOW + LIFETIME == issued.expires_at
    assert verified["access_expired_at"] == verified["exp"]
    assert verified["iss"] == ISSUER
    assert verified["aud"] == AUDIENCE
    assert verified["auth_time"] == NOW
    assert isinstance(verified["jti"], str) and len(verified["jti"]) >= 16
    # The kid of an HMAC key is its RFC 7638 thumbprint, computed here independently.
    kid = b64url(hashlib.sha256(b'{"k":"%s","kty":"oct"}' % b64url(SECRET).encode()).digest())
    assert jwt.get_unverified_header(issued.token) == {"alg": "HS256", "kid": kid, "typ": "JWT"}


def test_each_issued_token_has_a_fresh_jti(service: TokenService) -> None:
    jtis = {
        service.verify(service.issue(subject=SUBJECT, auth_time=NOW).token)["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_extra_claims_are_carried_but_cannot_override_computed_ones(
    service: TokenService,
) -> None:
    issued = service.issue(
        subject=SUBJECT,
        auth_time=NOW,
        extra={"role": "admin", "sub": "0xevil", "exp": NOW + 10 * SESSION, "aud": "evil"},
    )
    verified = service.verify(issued.token)
    assert verified["role"] == "admin"
    assert verified["sub"] == SUBJECT
    assert verified["exp"] == NOW + LIFETIME
    assert verified["aud"] == AUDIENCE


@pytest.mark.parametrize(
    "extra",
    [
        {"nickname": "Zoë 🦊", "tags": ["a", "b"], "nested": {"x": None, "y": 1.5}},
        {"huge": 2**70, "negative": -(2**65)},  # wider than orjson takes: the stdlib path
    ],
    ids=["unicode-and-nesting", "wide-integers"],
)
def test_extra_claims_of_any_json_shape_round_trip_through_pyjwt(
    service: TokenService, extra: dict[str, Any]
) -> None:
    issued = service.issue(subject=SUBJECT, auth_time=NOW, extra=extra)
    decoded = jwt.decode(
        issued.token,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},  # T0 is a fixed past time
    )
    assert {k: decoded[k] for k in extra} == extra
    assert service.verify(issued.token) == dict(issued.claims)


def test_many_issued_tokens_all_carry_a_valid_mac(service: TokenService) -> None:
    # The prepared HMAC state is copied per token: no token may inherit another's input.
    for i in range(50):
        issued = service.issue(subject=SUBJECT, auth_time=NOW, extra={"i": i})
        signing_input, _, mac = issued.token.rpartition(".")
        expected = hmac.new(SECRET, signing_input.encode("ascii"), hashlib.sha256).digest()
        assert mac == b64url(expected)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_pinned_hmac_algorithms_round_trip(clock: FakeClock, algorithm: str) -> None:
    service = make_service(clock, algorithm=algorithm, secret_key=LONG_SECRET)
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert service.verify(token)["sub"] == SUBJECT


def test_hand_forged_token_with_valid_claims_and_our_key_is_accepted(
    service: TokenService,
) -> None:
    # The control for every refusal below: forge() with default arguments makes a valid token.
    assert service.verify(forge(claims())) == claims()
    assert service.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))["sub"] == SUBJECT


# --------------------------------------------------------------------------- algorithm attacks


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_unsigned_alg_none_token_is_refused(service: TokenService, alg: str) -> None:
    unsigned = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(claims())}."
    assert_refused(service, unsigned)
    # Even with our valid HMAC appended, a "none" header is not HS256.
    assert_refused(service, forge(claims(), header={"alg": alg, "typ": "JWT"}))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_same_key_with_another_hmac_algorithm_is_refused(service: TokenService, alg: str) -> None:
    assert_refused(service, jwt.encode(claims(), SECRET, algorithm=alg))
    assert_refused(service, forge(claims(), header={"alg": alg, "typ": "JWT"}, mac=alg))


def test_service_pinned_to_hs512_refuses_hs256_tokens(clock: FakeClock) -> None:
    service = make_service(clock, algorithm="HS512", secret_key=LONG_SECRET)
    assert_refused(service, forge(claims(), key=LONG_SECRET))
    accepted = forge(claims(), key=LONG_SECRET, header={"alg": "HS512", "typ": "JWT"}, mac="HS512")
    assert service.verify(accepted)["sub"] == SUBJECT
    # The same MAC under a header this service never wrote (no typ) is refused.
    assert_refused(service, forge(claims(), key=LONG_SECRET, header={"alg": "HS512"}, mac="HS512"))


def test_token_signed_by_another_key_is_refused(service: TokenService) -> None:
    assert_refused(service, jwt.encode(claims(), ATTACKER_KEY, algorithm="HS256"))
    assert_refused(service, forge(claims(), key=ATTACKER_KEY))
    assert_refused(service, forge(claims(), key=SECRET[:-1]))
    assert_refused(service, forge(claims(), key=SECRET + b"k"))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "ES256K"])
def test_asymmetric_algorithm_token_is_refused(service: TokenService, alg: str) -> None:
    header = b64json({"alg": alg, "typ": "JWT"})
    junk = b64url(bytes(range(64)) * 4)
    assert_refused(service, f"{header}.{b64json(claims())}.{junk}")
    # Algorithm confusion: the header names an asymmetric scheme, the MAC is made with our secret.
    assert_refused(service, forge(claims(), header={"alg": alg, "typ": "JWT"}))


def test_hs256_token_signed_with_a_public_key_as_hmac_secret_is_refused(
    service: TokenService,
) -> None:
    public_pem = (
        b"-----BEGIN PUBLIC KEY-----\n"
        b"MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEFx3bVOkFXS7xPV9y5ZzD8oP5nE6rWkHd\n"
        b"-----END PUBLIC KEY-----\n"
    )
    assert_refused(service, forge(claims(), key=public_pem))


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize("name", REQUIRED_CLAIMS)
def test_token_missing_a_required_claim_is_refused(service: TokenService, name: str) -> None:
    assert_refused(service, forge(claims(**{name: DROP})))
    assert_refused(service, jwt.encode(claims(**{name: DROP}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("name", REQUIRED_CLAIMS)
def test_token_with_a_null_required_claim_is_refused(service: TokenService, name: str) -> None:
    assert_refused(service, forge(claims(**{name: None})))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("iss", "https://evil.example"),
        ("iss", "https://example.com/"),
        ("iss", "http://example.com"),
        ("aud", "https://evil.example"),
        ("aud", "https://example.com/"),
        ("aud", ["https://evil.example"]),
        ("aud", []),
    ],
)
def test_wrong_issuer_or_audience_is_refused(
    service: TokenService, name: str, value: object
) -> None:
    assert_refused(service, forge(claims(**{name: value})))


def test_token_is_accepted_until_one_second_before_exp_and_refused_at_exp(
    service: TokenService, clock: FakeClock
) -> None:
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    clock.advance(LIFETIME - 1)
    assert service.verify(token)["sub"] == SUBJECT
    clock.advance(1)
    assert clock() == NOW + LIFETIME
    assert_refused(service, token)
    clock.advance(1000)
    assert_refused(service, token)


def test_token_with_exp_in_the_past_is_refused(service: TokenService) -> None:
    assert_refused(service, forge(claims(exp=NOW)))
    assert_refused(service, forge(claims(exp=NOW - 1, iat=NOW - 10, auth_time=NOW - 10)))
    assert service.verify(forge(claims(exp=NOW + 1)))["exp"] == NOW + 1


def test_iat_more_than_60_seconds_in_the_future_is_refused(service: TokenService) -> None:
    assert_refused(service, forge(claims(iat=NOW + 61, exp=NOW + 3600)))
    assert_refused(service, forge(claims(iat=NOW + 86400, exp=NOW + 90000)))
    assert service.verify(forge(claims(iat=NOW + 60)))["iat"] == NOW + 60


def test_auth_time_after_iat_is_refused(service: TokenService) -> None:
    assert_refused(service, forge(claims(auth_time=NOW + 1)))
    assert service.verify(forge(claims(auth_time=NOW)))["auth_time"] == NOW
    assert service.verify(forge(claims(auth_time=NOW - 100)))["auth_time"] == NOW - 100


def test_exp_beyond_the_absolute_session_lifetime_is_refused(service: TokenService) -> None:
    auth_time = NOW - SESSION + 100
    assert_refused(service, forge(claims(auth_time=auth_time, exp=auth_time + SESSION + 1)))
    assert_refused(service, forge(claims(exp=NOW + SESSION + 1)))
    accepted = service.verify(forge(claims(auth_time=auth_time, exp=auth_time + SESSION)))
    assert accepted["exp"] == auth_time + SESSION


@pytest.mark.parametrize("name", ["exp", "iat", "auth_time"])
@pytest.mark.parametrize("kind", ["bool", "float", "str", "list"])
def test_non_integer_time_claim_is_refused(service: TokenService, name: str, kind: str) -> None:
    good = claims()[name]
    value = {"bool": True, "float": float(good), "str": str(good), "list": [good]}[kind]
    assert_refused(service, forge(claims(**{name: value})))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sub", 123),
        ("sub", ["0xabc"]),
        ("sub", {"address": SUBJECT}),
        ("sub", True),
        ("jti", 12345),
        ("jti", ["a"]),
        ("jti", False),
    ],
)
def test_non_string_sub_or_jti_is_refused(service: TokenService, name: str, value: object) -> None:
    assert_refused(service, forge(claims(**{name: value})))


@pytest.mark.parametrize("nbf", [NOW + 1, NOW + 3600, float(NOW), str(NOW), True])
def test_nbf_in_the_future_or_not_an_integer_is_refused(service: TokenService, nbf: object) -> None:
    assert_refused(service, forge(claims(nbf=nbf)))


def test_nbf_reached_is_accepted(service: TokenService) -> None:
    assert service.verify(forge(claims(nbf=NOW)))["nbf"] == NOW
    assert service.verify(forge(claims(nbf=NOW - 100)))["nbf"] == NOW - 100


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["x-unknown"], []])
def test_token_with_a_crit_header_is_refused(service: TokenService, crit: list[str]) -> None:
    assert_refused(service, forge(claims(), header={"alg": "HS256", "typ": "JWT", "crit": crit}))


_ATTACKER_HEADERS = {
    "kid": "../../attacker-key",
    "jku": "https://evil.example/jwks.json",
    "x5u": "https://evil.example/cert.pem",
}


def test_key_location_headers_are_refused_even_on_a_token_signed_with_our_key(
    service: TokenService,
) -> None:
    # Only the headers this service writes are accepted: anything else is not one of our tokens.
    assert service.verify(forge(claims()))["sub"] == SUBJECT  # control: the 0.1 header
    for name, value in _ATTACKER_HEADERS.items():
        assert_refused(service, forge(claims(), header={"alg": "HS256", "typ": "JWT", name: value}))
    header = {"alg": "HS256", "typ": "JWT", **_ATTACKER_HEADERS}
    assert_refused(service, forge(claims(), header=header))


@pytest.mark.parametrize("name", sorted(_ATTACKER_HEADERS))
def test_key_location_headers_do_not_let_another_key_in(service: TokenService, name: str) -> None:
    header = {"alg": "HS256", "typ": "JWT", name: _ATTACKER_HEADERS[name]}
    assert_refused(service, forge(claims(), header=header, key=ATTACKER_KEY))
    header = {"alg": "HS256", "typ": "JWT", **_ATTACKER_HEADERS}
    assert_refused(service, forge(claims(), header=header, key=ATTACKER_KEY))


# --------------------------------------------------------------------------- malformed tokens


def _flip(char: str) -> str:
    return "B" if char == "A" else "A"


def test_any_changed_character_in_header_or_payload_is_refused(service: TokenService) -> None:
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    signed_part = token.rsplit(".", 1)[0]
    for i, char in enumerate(signed_part):
        if char == ".":
            continue
        assert_refused(service, token[:i] + _flip(char) + token[i + 1 :])


def test_payload_swapped_under_a_valid_signature_is_refused(service: TokenService) -> None:
    header, _, signature = service.issue(subject=SUBJECT, auth_time=NOW).token.split(".")
    other_payload = b64json(claims(sub="0x" + "1" * 40))
    assert_refused(service, f"{header}.{other_payload}.{signature}")


def test_signature_swapped_from_another_valid_token_is_refused(service: TokenService) -> None:
    first = service.issue(subject=SUBJECT, auth_time=NOW).token
    second = service.issue(subject=SUBJECT, auth_time=NOW).token
    assert_refused(service, first.rsplit(".", 1)[0] + "." + second.rsplit(".", 1)[1])


def test_truncated_token_is_refused(service: TokenService) -> None:
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    header, payload, signature = token.split(".")
    for truncated in (
        token[:-1],
        token[:-4],
        token[: len(token) // 2],
        f"{header}.{payload}",
        f"{header}.{payload}.",
        f"{header}.{payload}.{signature[:20]}",
        header,
        f"{header}.",
    ):
        assert_refused(service, truncated)


def _token_of_length(service: TokenService, length: int) -> str:
    """The shortest issued token of at least ``length`` characters (padded with an extra claim)."""
    start = length * 3 // 4 - 600
    assert (
        len(service.issue(subject=SUBJECT, auth_time=NOW, extra={"pad": "x" * start}).token)
        < length
    )
    for pad in range(start, length):
        token = service.issue(subject=SUBJECT, auth_time=NOW, extra={"pad": "x" * pad}).token
        if len(token) >= length:
            return token
    raise AssertionError("no padding reached the wanted length")


def test_token_longer_than_the_cap_is_refused_even_when_valid(service: TokenService) -> None:
    at_cap = _token_of_length(service, MAX_TOKEN_LENGTH - 3)
    assert len(at_cap) <= MAX_TOKEN_LENGTH
    assert service.verify(at_cap)["sub"] == SUBJECT
    over = _token_of_length(service, MAX_TOKEN_LENGTH + 1)
    assert MAX_TOKEN_LENGTH < len(over) < MAX_TOKEN_LENGTH + 8
    # Correctly signed: only the length cap refuses it.
    unchecked = {"verify_exp": False, "verify_iat": False}
    decoded = jwt.decode(over, SECRET, algorithms=["HS256"], audience=AUDIENCE, options=unchecked)
    assert decoded["sub"] == SUBJECT
    assert_refused(service, over)
    assert_refused(
        service, service.issue(subject=SUBJECT, auth_time=NOW, extra={"p": "x" * 10**5}).token
    )


@pytest.mark.parametrize("value", [None, 0, 1.5, ["a.b.c"], {"token": "x"}, object()])
def test_non_string_token_is_refused(service: TokenService, value: object) -> None:
    assert_refused(service, value)


def test_valid_token_as_bytes_is_refused(service: TokenService) -> None:
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    assert_refused(service, token.encode("ascii"))
    assert_refused(service, bytearray(token.encode("ascii")))


@pytest.mark.parametrize("value", ["", " ", ".", "..", "...", "a.b.c", "Bearer x.y.z"])
def test_empty_or_garbage_token_is_refused(service: TokenService, value: str) -> None:
    assert_refused(service, value)


def test_token_with_extra_dots_or_segments_is_refused(service: TokenService) -> None:
    token = service.issue(subject=SUBJECT, auth_time=NOW).token
    header, payload, signature = token.split(".")
    for variant in (
        token + ".",
        "." + token,
        token + "." + signature,
        f"{header}..{payload}.{signature}",
        f"{header}.{payload}..{signature}",
        f"{header}.{payload}.{signature}.{signature}.{signature}",  # JWE-shaped
        " " + token,
        token + "\n",
    ):
        assert_refused(service, variant)


# --------------------------------------------------------------------------- issue


def test_issue_caps_exp_at_the_absolute_session_end(service: TokenService) -> None:
    auth_time = NOW - SESSION + 3600
    issued = service.issue(subject=SUBJECT, auth_time=auth_time)
    assert issued.claims["exp"] == auth_time + SESSION == NOW + 3600
    assert issued.claims["access_expired_at"] == issued.claims["exp"]
    assert service.verify(issued.token)["exp"] == auth_time + SESSION


def test_issue_one_second_before_session_end_gives_a_one_second_token(
    service: TokenService, clock: FakeClock
) -> None:
    issued = service.issue(subject=SUBJECT, auth_time=NOW - SESSION + 1)
    assert issued.expires_at == NOW + 1
    assert service.verify(issued.token)["sub"] == SUBJECT
    clock.advance(1)
    assert_refused(service, issued.token)


@pytest.mark.parametrize("age", [SESSION, SESSION + 1, 10 * SESSION])
def test_issue_after_the_session_end_raises_session_expired(
    service: TokenService, age: int
) -> None:
    with pytest.raises(SessionExpired):
        service.issue(subject=SUBJECT, auth_time=NOW - age)


def test_issue_reaches_session_expired_as_the_clock_moves(
    service: TokenService, clock: FakeClock
) -> None:
    service.issue(subject=SUBJECT, auth_time=NOW)
    clock.advance(SESSION - 1)
    assert service.issue(subject=SUBJECT, auth_time=NOW).expires_at == NOW + SESSION
    clock.advance(1)
    with pytest.raises(SessionExpired):
        service.issue(subject=SUBJECT, auth_time=NOW)


@pytest.mark.parametrize(
    "algorithm", ["none", "None", "RS256", "ES256", "EdDSA", "hs256", "Hs256", "HS256 ", ""]
)
def test_non_pinned_algorithm_is_refused_at_construction(clock: FakeClock, algorithm: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        make_service(clock, algorithm=algorithm)
