"""Key sets: ES256, Ed25519 and HS256 keys, their states, the JWKS route; PyJWT as the reference.

Every token issued here is checked by PyJWT with the public key (or secret) alone; the kids are
RFC 7638 thumbprints computed here independently; states are walked through a whole rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import OKPAlgorithm

from asgi_wallet_auth import KeySet, SigningKey, TokenSettings, WalletAuth
from asgi_wallet_auth.errors import TokenInvalid
from asgi_wallet_auth.keyfile import key_file_text, main, parse_key_file
from asgi_wallet_auth.tokens import TokenService
from tests.conftest import DOMAIN, SECRET_KEY, T0, URI, FakeClock, client_for
from tests.helpers import login
from tests.key_kit import ED_KEY, ES_KEY, ES_KEY_2

ISSUER = AUDIENCE = URI
NOW = int(T0)
SUBJECT = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551



def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(members: dict[str, str]) -> str:
    """RFC 7638, written out here: required members in order, compact JSON, SHA-256."""
    text = json.dumps(dict(sorted(members.items())), separators=(",", ":"))
    return b64url(hashlib.sha256(text.encode()).digest())


def service(clock: FakeClock, keys: KeySet) -> TokenService:
    return TokenService(
        secret_key=SECRET_KEY.encode(),
        issuer=ISSUER,
        audience=AUDIENCE,
        lifetime=3600,
        session_lifetime=86400,
        clock=clock,
        keys=keys,
    )


def pyjwt_decode(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    """PyJWT's verdict with every check on; it learns RFC 9864's ``Ed25519`` name here."""
    reference = jwt.PyJWT()
    reference._jws.register_algorithm("Ed25519", OKPAlgorithm())
    claims: dict[str, Any] = reference.decode(
        token,
        key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_iat": False, "verify_exp": False},
    )
    return claims


# -- keys --------------------------------------------------------------------------------------


def test_kid_is_the_rfc7638_thumbprint_of_each_key_type() -> None:
    es = SigningKey.from_key(ES_KEY)
    numbers = ES_KEY.public_key().public_numbers()
    assert es.kid == thumbprint(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    )
    ed = SigningKey.from_key(ED_KEY)
    raw = ED_KEY.public_key().public_bytes_raw()
    assert ed.kid == thumbprint({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)})
    hs = SigningKey.hmac(SECRET_KEY)
    assert hs.kid == thumbprint({"kty": "oct", "k": b64url(SECRET_KEY.encode())})
    assert (es.algorithm, ed.algorithm, hs.algorithm) == ("ES256", "Ed25519", "HS256")


def test_key_material_never_appears_in_a_repr() -> None:
    hs = SigningKey.hmac(SECRET_KEY)
    es = SigningKey.from_key(ES_KEY)
    for key in (hs, es, KeySet((hs,))):
        assert SECRET_KEY not in repr(key)
        assert "PRIVATE" not in repr(key)
    assert repr(hs).startswith("SigningKey(kid=")


@pytest.mark.parametrize(
    ("build", "fix"),
    [
        (lambda: SigningKey.hmac(b"short"), "at least 32 bytes"),
        (lambda: SigningKey.hmac(b"k" * 40, algorithm="HS512"), "at least 64 bytes"),
        (lambda: SigningKey.hmac(SECRET_KEY, state="active"), "state must be one of"),  # type: ignore[arg-type]
        (lambda: SigningKey.hmac(SECRET_KEY, kid='a"b'), "kid must be"),
        (lambda: SigningKey.hmac(SECRET_KEY, kid=""), "kid must be"),
        (lambda: SigningKey.generate("RS256"), "ES256' or 'Ed25519"),
        (lambda: SigningKey.from_key(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        (lambda: SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nxx\n"), "not an unencrypted"),
        (lambda: KeySet(()), "1 to 32"),
        (
            lambda: KeySet((SigningKey.hmac(SECRET_KEY), SigningKey.hmac(SECRET_KEY))),
            "own kid",
        ),
        (
            lambda: KeySet((SigningKey.from_key(ES_KEY), SigningKey.from_key(ED_KEY))),
            "at most one key may be 'current'",
        ),
        (lambda: KeySet((SigningKey.from_key(ES_KEY),), max_age=-1), "max_age"),
        (lambda: KeySet.hmac(SECRET_KEY), "list of secrets"),  # type: ignore[arg-type]
        (lambda: TokenSettings(keys=KeySet.hmac([SECRET_KEY]), algorithm="HS512"), "own algo"),
    ],
)
def test_misconfigured_keys_fail_at_construction_with_the_fix(build: Any, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        build()


def test_a_set_without_a_signing_key_cannot_issue(clock: FakeClock) -> None:
    public_only = SigningKey.from_key(ES_KEY.public_key())
    with pytest.raises(ValueError, match="one 'current' key with its secret or private key"):
        service(clock, KeySet((public_only,)))
    with pytest.raises(ValueError, match="one 'current' key"):
        service(clock, KeySet((SigningKey.from_key(ES_KEY, state="next"),)))


def test_pem_round_trip_keeps_kid_and_algorithm() -> None:
    for private in (ES_KEY, ED_KEY):
        key = SigningKey.from_key(private)
        again = SigningKey.from_pem(key.private_pem())
        assert (again.kid, again.algorithm, again.can_sign) == (key.kid, key.algorithm, True)
        public = SigningKey.from_pem(key.public_pem(), state="previous")
        assert (public.kid, public.can_sign, public.state) == (key.kid, False, "previous")
    with pytest.raises(ValueError, match="no private part"):
        SigningKey.from_key(ES_KEY.public_key()).private_pem()


# -- tokens under each algorithm, checked by PyJWT ------------------------------------------


@pytest.mark.parametrize(
    ("private", "algorithm"), [(ES_KEY, "ES256"), (ED_KEY, "Ed25519")], ids=["ES256", "Ed25519"]
)
def test_asymmetric_tokens_verify_here_and_in_pyjwt_with_the_public_key_alone(
    clock: FakeClock, private: Any, algorithm: str
) -> None:
    key = SigningKey.from_key(private)
    tokens = service(clock, KeySet((key,)))
    for i in range(20):
        issued = tokens.issue(subject=SUBJECT, auth_time=NOW, extra={"n": i, "nested": [{"a": i}]})
        header = jwt.get_unverified_header(issued.token)
        assert header == {"alg": algorithm, "kid": key.kid, "typ": "JWT"}
        assert tokens.verify(issued.token) == dict(issued.claims)
        assert pyjwt_decode(issued.token, private.public_key(), algorithm) == dict(issued.claims)


def test_es256_signatures_are_raw_low_s_pairs(clock: FakeClock) -> None:
    tokens = service(clock, KeySet((SigningKey.from_key(ES_KEY),)))
    for _ in range(40):  # a random s is high half the time: every one must come out low
        signature = tokens.issue(subject=SUBJECT, auth_time=NOW).token.rsplit(".", 1)[1]
        raw = base64.urlsafe_b64decode(signature + "==")
        assert len(raw) == 64
        assert 0 < int.from_bytes(raw[32:], "big") <= P256_ORDER // 2


def test_a_pyjwt_signed_es256_token_under_our_header_verifies(clock: FakeClock) -> None:
    # The other way round: PyJWT signs (DER -> raw r||s, low or high S), our path verifies.
    key = SigningKey.from_key(ES_KEY)
    tokens = service(clock, KeySet((key,)))
    claims = dict(tokens.issue(subject=SUBJECT, auth_time=NOW).claims)
    accepted = refused = 0
    for _ in range(30):
        token = jwt.encode(claims, ES_KEY, algorithm="ES256", headers={"kid": key.kid})
        s = int.from_bytes(base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")[32:], "big")
        try:
            tokens.verify(token)
            accepted += 1
            assert s <= P256_ORDER // 2
        except TokenInvalid:
            refused += 1
            assert s > P256_ORDER // 2  # only the high-S spelling is refused
    assert accepted and accepted + refused == 30


def test_eddsa_is_accepted_on_input_and_ed25519_is_written(clock: FakeClock) -> None:
    key = SigningKey.from_key(ED_KEY)
    tokens = service(clock, KeySet((key,)))
    claims = dict(tokens.issue(subject=SUBJECT, auth_time=NOW).claims)
    older = jwt.encode(claims, ED_KEY, algorithm="EdDSA", headers={"kid": key.kid})
    assert jwt.get_unverified_header(older)["alg"] == "EdDSA"
    assert tokens.verify(older)["sub"] == SUBJECT


# -- states and rotation --------------------------------------------------------------------


def test_a_rotation_walks_next_current_previous_retired_without_refusing_live_tokens(
    clock: FakeClock,
) -> None:
    old, new = SigningKey.from_key(ES_KEY), SigningKey.from_key(ED_KEY)
    # 1. publish next: the old key signs, the new one already verifies.
    step1 = service(clock, KeySet((old, new.with_state("next"))))
    old_token = step1.issue(subject=SUBJECT, auth_time=NOW).token
    # 2. promote: the new key signs, the old one verifies what it signed.
    step2 = service(clock, KeySet((old.with_state("previous"), new)))
    new_token = step2.issue(subject=SUBJECT, auth_time=NOW).token
    for tokens in (step1, step2):  # a process of either step accepts both tokens
        assert tokens.verify(old_token)["sub"] == tokens.verify(new_token)["sub"] == SUBJECT
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    # 3. retire: the old key's tokens are refused; the new one's are not.
    step3 = service(clock, KeySet((old.with_state("retired"), new)))
    with pytest.raises(TokenInvalid):
        step3.verify(old_token)
    assert step3.verify(new_token)["sub"] == SUBJECT
    assert [k["kid"] for k in step3.keys.jwks()["keys"]] == [new.kid]


def test_hmac_secrets_rotate_as_a_list_whose_first_signs(clock: FakeClock) -> None:
    first, second = (
        "first-secret-0123456789abcdef-0123456789",
        "second-secret-0123456789abcdef-01234",
    )
    before = service(clock, KeySet.hmac([first]))
    token = before.issue(subject=SUBJECT, auth_time=NOW).token
    after = service(clock, KeySet.hmac([second, first]))
    assert after.verify(token)["sub"] == SUBJECT
    fresh = after.issue(subject=SUBJECT, auth_time=NOW).token
    assert pyjwt_decode(fresh, second, "HS256")["sub"] == SUBJECT
    with pytest.raises(TokenInvalid):
        service(clock, KeySet.hmac([second])).verify(token)
    assert after.keys.jwks() == {"keys": []}  # a shared secret is never published


def test_tokens_of_01_without_a_kid_stay_valid_while_the_secret_verifies(
    clock: FakeClock,
) -> None:
    legacy = jwt.encode(
        {
            "sub": SUBJECT,
            "iat": NOW,
            "exp": NOW + 60,
            "jti": "j",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "auth_time": NOW,
        },
        SECRET_KEY,
        algorithm="HS256",
    )
    assert jwt.get_unverified_header(legacy) == {"alg": "HS256", "typ": "JWT"}
    secret_as_previous = SigningKey.hmac(SECRET_KEY, state="previous")
    moved = service(clock, KeySet((SigningKey.from_key(ES_KEY), secret_as_previous)))
    assert moved.verify(legacy)["sub"] == SUBJECT
    # Retired, or not in the set at all: the kid-less token is refused.
    for keys in (
        KeySet((SigningKey.from_key(ES_KEY), secret_as_previous.with_state("retired"))),
        KeySet((SigningKey.from_key(ES_KEY),)),
    ):
        with pytest.raises(TokenInvalid):
            service(clock, keys).verify(legacy)


# -- the JWKS route -------------------------------------------------------------------------


async def test_jwks_route_publishes_public_keys_of_verifying_states_only(
    clock: FakeClock, wallet: Any
) -> None:
    keys = KeySet(
        (
            SigningKey.from_key(ES_KEY),
            SigningKey.from_key(ED_KEY, state="next"),
            SigningKey.from_key(ES_KEY_2, state="retired"),
            SigningKey.hmac(SECRET_KEY, state="previous"),
        ),
        max_age=123,
    )
    auth = WalletAuth(
        secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock, tokens=TokenSettings(keys=keys)
    )
    async with client_for(auth) as client:
        response = await client.get("/.well-known/jwks.json")
        head = await client.head("/.well-known/jwks.json")
        token = (await login(client, wallet))["access_token"]
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=123"
    assert response.headers["content-type"] == "application/json"
    assert head.status_code == 200 and head.content == b""
    document = response.json()
    assert [k["kid"] for k in document["keys"]] == [keys.keys[0].kid, keys.keys[1].kid]
    for jwk in document["keys"]:
        assert "d" not in jwk and "k" not in jwk and jwk["use"] == "sig"
        assert jwk["kid"] == thumbprint({n: jwk[n] for n in ("kty", "crv", "x", "y") if n in jwk})
    # PyJWT reads the published ES256 key and verifies a real login's token with it alone.
    published = jwt.PyJWKSet.from_dict(document)["" + keys.keys[0].kid]
    assert pyjwt_decode(token, published.key, "ES256")["sub"] == wallet.address
    ed_jwk = next(k for k in document["keys"] if k["kty"] == "OKP")
    assert ed_jwk["alg"] == "Ed25519"


async def test_a_service_on_its_hmac_secret_publishes_an_empty_set(clock: FakeClock) -> None:
    auth = WalletAuth(secret_key=SECRET_KEY, domain=DOMAIN, uri=URI, clock=clock)
    async with client_for(auth) as client:
        response = await client.get("/.well-known/jwks.json")
        posted = await client.post("/.well-known/jwks.json")
    assert response.json() == {"keys": []}
    assert SECRET_KEY not in response.text
    assert posted.status_code == 405


# -- the key file ---------------------------------------------------------------------------


def test_key_file_round_trips_states_kids_and_public_only_keys() -> None:
    keys = (
        SigningKey.from_key(ES_KEY, state="previous"),
        SigningKey.from_key(ED_KEY),
        SigningKey.from_key(ES_KEY_2.public_key(), state="retired", kid="2025-old"),
    )
    parsed = parse_key_file(key_file_text(keys))
    assert [(k.kid, k.state, k.algorithm, k.can_sign) for k in parsed.keys] == [
        (keys[0].kid, "previous", "ES256", True),
        (keys[1].kid, "current", "Ed25519", True),
        ("2025-old", "retired", "ES256", False),
    ]


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("", "holds no key"),
        ("state: current\n", "ends inside a key"),
        ("status: current\n", "expected 'state:"),
        ("state: current\nstate: next\n", "expected 'state:"),
    ],
)
def test_malformed_key_files_are_refused_with_the_line(text: str, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        parse_key_file(text)


def test_a_pem_block_without_a_state_names_its_line() -> None:
    block = SigningKey.from_key(ES_KEY).private_pem().decode()
    with pytest.raises(ValueError, match=r"line \d+: the key ending here needs a 'state:'"):
        parse_key_file(block)
    with pytest.raises(ValueError) as refused:
        parse_key_file("state: next\n" + block[:60] + "\n-----END PRIVATE KEY-----\n")
    assert block[30:60] not in str(refused.value)  # never the key's text in a message


def test_keyfile_command_prints_a_new_block_and_shows_a_file(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "--algorithm", "Ed25519", "--state", "next"]) == 0
    block = capsys.readouterr().out
    parsed = parse_key_file(block)
    assert parsed.keys[0].state == "next" and parsed.keys[0].algorithm == "Ed25519"
    path = tmp_path / "keys.pem"
    path.write_text(key_file_text((SigningKey.from_key(ES_KEY),)) + block)
    assert main(["show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert SigningKey.from_key(ES_KEY).kid in shown and "PRIVATE" not in shown
    assert "next" in shown and "current" in shown
