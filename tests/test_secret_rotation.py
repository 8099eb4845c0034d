"""Rotating the service secret (HS256): earlier secrets keep verifying, in the library and in serve.

``KeySet.hmac([new, old])`` in the library, ``$WALLET_AUTH_PREVIOUS_SECRETS`` for ``serve``: the
new secret signs, the old ones verify the tokens (and the CSRF tokens) they signed, so nobody is
logged out; once an old secret is dropped, its tokens are refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import CookieSettings, KeySet, SigningKey, TokenSettings, WalletAuth
from asgi_wallet_auth.cookies import CsrfTokens
from asgi_wallet_auth.private_files import (
    PREVIOUS_SECRETS_ENV,
    previous_secrets_from_env,
    with_secret,
)
from asgi_wallet_auth.service import SECRET_ENV
from tests.conftest import DOMAIN, URI
from tests.helpers import login_at
from tests.processes import free_port, running_service

OLD = "old-service-secret-" + "o" * 32
NEW = "new-service-secret-" + "n" * 32


def kid(token: str) -> str:
    header = token.split(".")[0]
    value: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return value


def test_without_earlier_secrets_the_service_secret_alone_signs() -> None:
    assert with_secret(None, NEW) is None  # secret_key=, as in 0.1


def test_earlier_secrets_verify_and_the_service_secret_signs() -> None:
    keys = with_secret(None, NEW, [OLD])
    assert keys is not None
    assert keys.current == SigningKey.hmac(NEW)
    assert [k.kid for k in keys.verifying()] == [
        SigningKey.hmac(NEW).kid,
        SigningKey.hmac(OLD).kid,
    ]
    assert keys.jwks() == {"keys": []}  # shared secrets are never published


def test_with_a_key_file_every_secret_only_verifies_and_none_twice() -> None:
    signing = SigningKey.generate("ES256")
    keys = with_secret(KeySet((signing,)), NEW, [OLD, NEW])
    assert keys is not None and keys.current == signing
    assert [(k.kid, k.state) for k in keys.keys] == [
        (signing.kid, "current"),
        (SigningKey.hmac(NEW).kid, "previous"),
        (SigningKey.hmac(OLD).kid, "previous"),
    ]


def test_earlier_secrets_come_from_the_environment_and_must_be_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PREVIOUS_SECRETS_ENV, raising=False)
    assert previous_secrets_from_env() == ()
    monkeypatch.setenv(PREVIOUS_SECRETS_ENV, f"  {OLD}\n{NEW} ")
    assert previous_secrets_from_env() == (OLD, NEW)
    monkeypatch.setenv(PREVIOUS_SECRETS_ENV, f"{OLD} short")
    with pytest.raises(SystemExit, match="shorter than 32") as refused:
        previous_secrets_from_env()
    assert OLD not in str(refused.value)  # no secret in the message


def test_a_csrf_token_of_an_earlier_secret_stays_valid_while_that_secret_verifies() -> None:
    session = "0xabc:1700000000"
    token = CsrfTokens(OLD.encode(), 3600).issue(session)
    assert CsrfTokens(NEW.encode(), 3600, older=[OLD.encode()]).valid(token, session)
    assert not CsrfTokens(NEW.encode(), 3600).valid(token, session)
    # The new secret signs: its tokens are refused by a service that has only the old one.
    fresh = CsrfTokens(NEW.encode(), 3600, older=[OLD.encode()]).issue(session)
    assert not CsrfTokens(OLD.encode(), 3600).valid(fresh, session)


def test_the_cookie_transport_takes_its_earlier_secrets_from_the_key_set() -> None:
    auth = WalletAuth(
        secret_key=NEW,
        domain=DOMAIN,
        uri=URI,
        tokens=TokenSettings(keys=KeySet.hmac([NEW, OLD])),
        cookie=CookieSettings(secure=False),
    )
    session = "0xabc:1700000000"
    old_token = CsrfTokens(OLD.encode(), 3600).issue(session)
    assert auth.sessions.cookies is not None
    assert auth.sessions.cookies.csrf.valid(old_token, session)


def me(base: str, token: str) -> int:
    return httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_serve_rotates_its_secret_without_logging_anyone_out(
    tmp_path: Path, wallet: LocalAccount
) -> None:
    port = free_port()
    with running_service(tmp_path, port, env={SECRET_ENV: OLD}) as base:
        old_token = login_at(base, wallet)
        assert me(base, old_token) == 200
    rotating = {SECRET_ENV: NEW, PREVIOUS_SECRETS_ENV: OLD}
    with running_service(tmp_path, port, env=rotating) as base:
        assert me(base, old_token) == 200  # signed by the old secret, still verified
        new_token = login_at(base, wallet)
        assert kid(new_token) == SigningKey.hmac(NEW).kid != kid(old_token)
        assert me(base, new_token) == 200
    # A process of the rolling restart's first step (the new secret verifies, does not sign)
    # accepts what the processes already promoted sign.
    publishing = {SECRET_ENV: OLD, PREVIOUS_SECRETS_ENV: NEW}
    with running_service(tmp_path, port, env=publishing) as base:
        assert me(base, new_token) == 200
        assert kid(login_at(base, wallet)) == kid(old_token)  # still signed by the old secret
    with running_service(tmp_path, port, env={SECRET_ENV: NEW}) as base:
        assert me(base, old_token) == 401  # the old secret is gone: its tokens with it
        assert me(base, new_token) == 200
