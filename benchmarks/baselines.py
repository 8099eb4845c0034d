"""What ``WalletAuthMiddleware`` is measured against: the floor of a layer and a hand-written one.

Imported by ``run.py`` (ASGI direct) and ``server_app.py`` (under uvicorn), so both measure the
very same code.
"""

from __future__ import annotations

from typing import Any

import jwt
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send


class DoNothingMiddleware:
    """A pure-ASGI middleware that only awaits the app: the cost floor of any middleware layer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class PyJWTBackend(AuthenticationBackend):
    """The bearer-token backend teams write by hand today: one ``jwt.decode`` per request.

    It checks what PyJWT checks by default plus ``iss`` and ``aud`` (signature, ``exp`` when
    present, the pinned algorithm), which is what such backends usually stop at.
    """

    def __init__(self, secret: str, *, issuer: str, audience: str) -> None:
        self.secret = secret
        self.issuer = issuer
        self.audience = audience

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.issuer,
            )
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("invalid token") from exc
        return AuthCredentials(["authenticated"]), SimpleUser(claims["sub"])


def pyjwt_middleware(app: ASGIApp, secret: str, *, issuer: str, audience: str) -> ASGIApp:
    """``app`` behind Starlette's ``AuthenticationMiddleware`` with the hand-written backend."""
    backend = PyJWTBackend(secret, issuer=issuer, audience=audience)
    return AuthenticationMiddleware(app, backend=backend)
