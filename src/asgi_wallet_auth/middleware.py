"""``WalletAuthMiddleware``: pure ASGI; turns access tokens into ``request.user``."""

from __future__ import annotations

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .caches import make_room
from .credentials import (
    Authenticator,
    CorsHeaders,
    UncachedTokens,
    bearer_token,
    query_token,
)
from .envelope import header, send_error
from .errors import WalletAuthError
from .grants import credentials_for, has_grants

_WS_POLICY_VIOLATION = 1008


class _Authenticated(AuthCredentials):
    """``AuthCredentials(["authenticated"])`` that nobody can change: one serves every request."""

    #: No ReCap: a token with one gets ``WalletCredentials`` (grants.py) instead.
    capabilities = None

    def __init__(self) -> None:
        super().__init__()
        self.scopes = ("authenticated",)  # type: ignore[assignment]


_AUTHENTICATED = _Authenticated()


class WalletAuthMiddleware:
    """Validate the access token on every http and websocket request and set ``scope["user"]``.

    No token: ``UnauthenticatedUser`` and empty credentials, and the app decides. A valid token:
    a ``WalletUser`` and the ``"authenticated"`` scope, so ``request.user``, ``request.auth`` and
    Starlette's ``@requires("authenticated")`` work. A present but invalid, expired or forged token:
    a 401 envelope with ``WWW-Authenticate: Bearer error="invalid_token"`` (websockets are closed
    with 1008) and the app is never called. Lifespan and other scopes pass through untouched.

    With ``Web3MQSettings(signed_requests=True)`` a request without a bearer token may instead carry
    a Web3MQ request signature (``userid``, ``timestamp``, ``web3mq_user_signature``) in the
    ``web3mq-*`` headers, the query string or a JSON body (buffered up to ``max_body_size`` and
    replayed to the app unchanged); a bad one is a 401 like a bad token.
    """

    def __init__(self, app: ASGIApp, *, auth: Authenticator) -> None:
        if not isinstance(auth, Authenticator):
            raise ValueError("auth must be a WalletAuth (or another Authenticator)")
        self.app = app
        self.auth = auth
        # Verified Authorization header values (bytes as received), only where a verdict cannot
        # change before expiry: no revocation. Looked up by the lowercase name ASGI servers send
        # (as Starlette's own Headers does); a first sight checks the names in any case.
        self._fast_size = auth.token_cache_size
        # A plain dict bounded by make_room (caches.py): its oldest eighth goes when it is full.
        self._fast: dict[bytes, tuple[int, BaseUser, AuthCredentials]] | None = (
            {} if auth.token_cache_size and not auth.revocation else None
        )
        self._clock = auth.clock
        # A header this middleware has not seen: verified without the authenticator's own
        # cache where it has one to skip, since the verdict is kept here.
        self._first_sight = (
            auth.verify_token
            if self._fast is not None and isinstance(auth, UncachedTokens)
            else auth.authenticate_token
        )
        # Refusals a page on another origin must be able to read (WalletAuth(cors=...)).
        self._cors = auth.cors_headers if isinstance(auth, CorsHeaders) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate http and websocket scopes, then call the wrapped app."""
        # Fast path: exactly one Authorization header whose bytes were verified before. Without
        # revocation nothing else can change a verdict but the clock, checked here. Only http:
        # a websocket pays the full check once per connection, not per message.
        fast = self._fast
        if fast is not None and scope["type"] == "http":
            raw = None
            for key, value in scope["headers"]:
                if key == b"authorization":
                    if raw is not None:  # two headers: ambiguous, the full path refuses it
                        raw = None
                        break
                    raw = value
            if raw is not None:
                hit = fast.get(raw)
                if hit is not None:
                    if self._clock() < hit[0]:
                        scope["user"] = hit[1]
                        scope["auth"] = hit[2]
                        await self.app(scope, receive, send)
                        return
                    del fast[raw]  # expired: checked again below, and refused
                # First sight of a bearer token: checked here, in a straight line, since this
                # is the request that pays a signature verification. Another scheme goes on.
                # The header is read again with names in any case, so that a second one spelled
                # "Authorization" is refused as ambiguous, as on the full path.
                try:
                    token = bearer_token(scope)
                    user = None if token is None else self._first_sight(token)
                except WalletAuthError as error:
                    cors = self._cors
                    await send_error(send, error, () if cors is None else cors(scope))
                    return
                if user is not None:
                    credentials = credentials_for(user) if has_grants(user) else _AUTHENTICATED
                    if len(fast) >= self._fast_size:
                        make_room(fast, self._fast_size)
                    fast[raw] = (user.claims["exp"], user, credentials)
                    scope["user"] = user
                    scope["auth"] = credentials
                    await self.app(scope, receive, send)
                    return
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            scope["user"], scope["auth"], receive = await self._authenticate(scope, receive)
        except WalletAuthError as error:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            else:
                cors = self._cors
                await send_error(send, error, () if cors is None else cors(scope))
            return
        await self.app(scope, receive, send)

    async def _authenticate(
        self, scope: Scope, receive: Receive
    ) -> tuple[BaseUser, AuthCredentials, Receive]:
        token = bearer_token(scope)
        from_header = token is not None
        if token is None and scope["type"] == "websocket":
            token = query_token(scope)
        if token is not None:
            # Without revocation the check is synchronous: no coroutine on the hot path.
            auth = self.auth
            user = (
                await auth.authenticate_bearer(token)
                if auth.revocation
                else auth.authenticate_token(token)
            )
            credentials = credentials_for(user) if has_grants(user) else _AUTHENTICATED
            fast = self._fast
            if fast is not None and from_header:  # only a bearer header may fill the fast path
                raw = header(scope, b"authorization")
                if raw is not None:
                    if len(fast) >= self._fast_size:
                        make_room(fast, self._fast_size)
                    fast[raw] = (int(user.claims["exp"]), user, credentials)
            return user, credentials, receive
        cookie_user = await self.auth.authenticate_cookie(scope)
        if cookie_user is not None:
            grants = credentials_for(cookie_user) if has_grants(cookie_user) else _AUTHENTICATED
            return cookie_user, grants, receive
        signed_user, receive = await self.auth.authenticate_signed(scope, receive)
        if signed_user is not None:
            return signed_user, _AUTHENTICATED, receive
        return UnauthenticatedUser(), AuthCredentials(), receive


__all__ = ["WalletAuthMiddleware", "bearer_token", "query_token"]
