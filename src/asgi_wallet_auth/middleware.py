"""``WalletAuthMiddleware``: pure ASGI; turns access tokens into ``request.user``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .envelope import header, send_error
from .errors import InvalidRequest, TokenInvalid, WalletAuthError
from .tokens import MAX_TOKEN_LENGTH

if TYPE_CHECKING:
    from .app import WalletAuth

# base64url segments separated by dots: anything else cannot be one of our tokens.
_TOKEN_RE = re.compile(rb"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_WS_POLICY_VIOLATION = 1008


def bearer_token(scope: Scope) -> str | None:
    """The bearer token of the ``Authorization`` header, None when there is none.

    Another scheme (``Basic``, ...) is left to other middleware and counts as no token; a bearer
    credential that cannot be a JWT, or two ``Authorization`` headers, is an invalid token.
    """
    try:
        raw = header(scope, b"authorization")
    except InvalidRequest:
        raise TokenInvalid() from None
    if raw is None:
        return None
    scheme, _, value = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = value.strip()
    if len(token) > MAX_TOKEN_LENGTH or _TOKEN_RE.fullmatch(token) is None:
        raise TokenInvalid()
    return token.decode("ascii")


def query_token(scope: Scope) -> str | None:
    """The ``access_token`` query parameter (websockets: browsers cannot set headers there)."""
    raw: bytes = scope.get("query_string", b"")
    if b"access_token" not in raw:
        return None
    values = [
        v
        for k, v in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if k == "access_token"
    ]
    if not values:
        return None
    if len(values) != 1:
        raise TokenInvalid()
    token = values[0]
    if len(token) > MAX_TOKEN_LENGTH or _TOKEN_RE.fullmatch(token.encode("latin-1")) is None:
        raise TokenInvalid()
    return token


class WalletAuthMiddleware:
    """Validate the access token on every http and websocket request and set ``scope["user"]``.

    No token: ``UnauthenticatedUser`` and empty credentials, and the app decides. A valid token:
    a ``WalletUser`` and the ``"authenticated"`` scope, so ``request.user``, ``request.auth`` and
    Starlette's ``@requires("authenticated")`` work. A present but invalid, expired or forged token:
    a 401 envelope with ``WWW-Authenticate: Bearer error="invalid_token"`` (websockets are closed
    with 1008) and the app is never called. Lifespan and other scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, auth: WalletAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate http and websocket scopes, then call the wrapped app."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            token = bearer_token(scope)
            if token is None and kind == "websocket":
                token = query_token(scope)
            if token is None:
                scope["user"] = UnauthenticatedUser()
                scope["auth"] = AuthCredentials()
            else:
                scope["user"] = self.auth.authenticate_token(token)
                scope["auth"] = AuthCredentials(["authenticated"])
        except WalletAuthError as error:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            else:
                await send_error(send, error)
            return
        await self.app(scope, receive, send)


__all__ = ["WalletAuthMiddleware", "bearer_token", "query_token"]
