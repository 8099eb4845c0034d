"""Where credentials come from, and what the middleware needs of whoever checks them.

``bearer_token`` and ``query_token`` read a request's token; ``Authenticator`` is the small
protocol ``WalletAuthMiddleware`` depends on, so the middleware never imports the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope

from .envelope import header
from .errors import InvalidRequest, TokenInvalid
from .tokens import MAX_TOKEN_LENGTH
from .users import WalletUser


@runtime_checkable
class Authenticator(Protocol):
    """What turns a request's credential into a ``WalletUser``; ``WalletAuth`` is one.

    Every method raises a ``WalletAuthError`` for a credential that is present but bad.
    """

    @property
    def clock(self) -> Callable[[], float]:
        """The Unix-time source tokens are checked against."""
        ...

    @property
    def revocation(self) -> bool:
        """Whether a token's verdict can change before it expires (revoked sessions)."""
        ...

    @property
    def token_cache_size(self) -> int:
        """How many verified Authorization headers the middleware may remember (0: none)."""
        ...

    def authenticate_token(self, token: str) -> WalletUser:
        """The user of a valid token, from its signature and claims alone (no I/O)."""
        ...

    async def authenticate_bearer(self, token: str) -> WalletUser:
        """``authenticate_token`` plus the revocation check where revocation is on."""
        ...

    async def authenticate_cookie(self, scope: Scope) -> WalletUser | None:
        """The user of the auth cookie (None: no cookie, or a stale one), CSRF checked."""
        ...

    async def authenticate_signed(
        self, scope: Scope, receive: Receive
    ) -> tuple[WalletUser | None, Receive]:
        """The user of a signed request (None: not one), and the receive to pass on."""
        ...


@runtime_checkable
class UncachedTokens(Protocol):
    """An ``Authenticator`` whose token check can skip its own cache (``WalletAuth`` is one).

    Optional: the middleware remembers verified ``Authorization`` headers itself, and where it
    does it verifies a header it has not seen through ``verify_token``, so that the token is
    not kept twice.
    """

    def verify_token(self, token: str) -> WalletUser:
        """``authenticate_token`` without the authenticator's cache of verified tokens."""
        ...


@runtime_checkable
class CorsHeaders(Protocol):
    """An ``Authenticator`` that also serves browsers on other origins (``WalletAuth`` is one).

    Optional: the middleware asks for these headers on the 401s it answers itself, so that a
    dapp's page can read why it was refused.
    """

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The ``Access-Control-*`` headers for an answer to this request (may be empty)."""
        ...


def bearer_token(scope: Scope) -> str | None:
    """The bearer token of the ``Authorization`` header, None when there is none.

    Another scheme (``Basic``, ...) is left to other middleware and counts as no token; a bearer
    credential that cannot be a JWT, or two ``Authorization`` headers, is an invalid token.
    """
    try:
        raw = header(scope, b"authorization")
    except InvalidRequest:
        raise TokenInvalid() from None
    return None if raw is None else bearer_value(raw)


def bearer_value(raw: bytes) -> str | None:
    """The token of one ``Authorization`` value; None for another scheme (see ``bearer_token``)."""
    scheme, _, value = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = value.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenInvalid()
    # The full grammar check runs in WalletAuth.authenticate_token, after the cache of
    # already-verified tokens: a token served from it needs none.
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
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenInvalid()
    return token


__all__ = [
    "Authenticator",
    "CorsHeaders",
    "UncachedTokens",
    "bearer_token",
    "bearer_value",
    "query_token",
]
