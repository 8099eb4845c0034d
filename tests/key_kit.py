"""Fixed signing keys and the two sides of a deployment: a login service and a verify-only app."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_wallet_auth import (
    Authenticator,
    KeySet,
    SigningKey,
    TokenSettings,
    WalletAuth,
    WalletAuthMiddleware,
    WalletUser,
)
from tests.conftest import DOMAIN, SECRET_KEY, URI, FakeClock

# Fixed keys: the suite never depends on a random one.
ES_KEY = ec.derive_private_key(0x1D2C3B4A5F6E7D8C9BAAB9C8D7E6F50413223140516, ec.SECP256R1())
ES_KEY_2 = ec.derive_private_key(0x2468ACE02468ACE02468ACE02468ACE02468ACE02468, ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ATTACKER_ES = ec.derive_private_key(0xBAD0BAD0BAD0BAD0BAD0BAD0BAD0BAD0BAD0, ec.SECP256R1())
ATTACKER_ED = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def login_service(clock: FakeClock, keys: KeySet, **tokens: Any) -> WalletAuth:
    """A login service on the test domain signing with ``keys``."""
    return WalletAuth(
        secret_key=SECRET_KEY,
        domain=DOMAIN,
        uri=URI,
        clock=clock,
        tokens=TokenSettings(keys=keys, **tokens),
    )


def public_set(*keys: SigningKey) -> KeySet:
    """The same keys with their public parts only, as a verify-only app holds them."""
    return KeySet(
        tuple(SigningKey.from_key(k.public_key, state=k.state, kid=k.kid) for k in keys)  # type: ignore[arg-type]
    )


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    if not isinstance(user, WalletUser):
        return JSONResponse({"authenticated": False})
    return JSONResponse(
        {
            "authenticated": True,
            "address": user.address,
            "userid": user.userid,
            "did_type": user.did_type,
            "account_id": user.account_id,
            "scopes": list(request.auth.scopes),
        }
    )


def protected_app(auth: Authenticator) -> Starlette:
    """``GET /whoami`` behind ``WalletAuthMiddleware`` with ``auth``."""
    return Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
