"""``WalletAuthMiddleware``: pure ASGI; turns access tokens into ``request.user``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import header, parse_json_object, send_error
from .errors import InvalidRequest, SignedRequestRejected, TokenInvalid, WalletAuthError
from .tokens import MAX_TOKEN_LENGTH

if TYPE_CHECKING:
    from .app import WalletAuth

_WS_POLICY_VIOLATION = 1008


class _Authenticated(AuthCredentials):
    """``AuthCredentials(["authenticated"])`` that nobody can change: one serves every request."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes = ("authenticated",)  # type: ignore[assignment]


_AUTHENTICATED = _Authenticated()


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


_SIGNATURE_PARAM = "web3mq_user_signature"
_SIGNATURE_HEADERS = {
    b"web3mq-userid": "userid",
    b"web3mq-timestamp": "timestamp",
    b"web3mq-user-signature": _SIGNATURE_PARAM,
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _signed_params_from_headers(scope: Scope) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    for key, value in scope["headers"]:
        name = _SIGNATURE_HEADERS.get(key.lower())
        if name is not None:
            if name in found:
                raise SignedRequestRejected()
            found[name] = value.decode("latin-1")
    if not found:
        return None
    if len(found) != len(_SIGNATURE_HEADERS):
        raise SignedRequestRejected()
    return found


def _signed_params_from_query(scope: Scope) -> dict[str, Any] | None:
    raw: bytes = scope.get("query_string", b"")
    if _SIGNATURE_PARAM.encode() not in raw:
        return None
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in params:
            raise SignedRequestRejected()  # which of two values was signed is ambiguous
        params[key] = value
    return params if _SIGNATURE_PARAM in params else None


async def _signed_params_from_body(
    scope: Scope, receive: Receive, limit: int
) -> tuple[dict[str, Any] | None, Receive]:
    """Buffer a JSON body (up to ``limit``) to read its fields; the app still gets every byte."""
    if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
        return None, receive
    content_type = header(scope, b"content-type") or b""
    if content_type.split(b";")[0].strip().lower() != b"application/json":
        return None, receive
    declared = header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None, receive  # too large to inspect (or unreadable): not read at all here
    messages: list[Message] = []
    size = 0
    complete = False
    while not complete and size <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        complete = not message.get("more_body", False)
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    if not complete or size > limit:
        return None, replay  # too large to inspect: the app sees it untouched, unauthenticated
    try:
        body = parse_json_object(b"".join(m.get("body", b"") for m in messages))
    except WalletAuthError:
        return None, replay
    return (body if _SIGNATURE_PARAM in body else None), replay


class WalletAuthMiddleware:
    """Validate the access token on every http and websocket request and set ``scope["user"]``.

    No token: ``UnauthenticatedUser`` and empty credentials, and the app decides. A valid token:
    a ``WalletUser`` and the ``"authenticated"`` scope, so ``request.user``, ``request.auth`` and
    Starlette's ``@requires("authenticated")`` work. A present but invalid, expired or forged token:
    a 401 envelope with ``WWW-Authenticate: Bearer error="invalid_token"`` (websockets are closed
    with 1008) and the app is never called. Lifespan and other scopes pass through untouched.

    With ``WalletAuth(signed_requests=True)`` a request without a bearer token may instead carry
    a Web3MQ request signature (``userid``, ``timestamp``, ``web3mq_user_signature``) in the
    ``web3mq-*`` headers, the query string or a JSON body (buffered up to ``max_body_size`` and
    replayed to the app unchanged); a bad one is a 401 like a bad token.
    """

    def __init__(self, app: ASGIApp, *, auth: WalletAuth) -> None:
        self.app = app
        self.auth = auth
        # Verified Authorization header values (bytes as received), only where a verdict cannot
        # change before expiry: no revocation. The WalletAuth's own token cache backs it.
        self._fast_size = auth.token_cache_size
        self._fast: dict[bytes, tuple[int, BaseUser]] | None = (
            {} if auth.token_cache_size and not auth.revocation else None
        )
        self._clock = auth.clock

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
            hit = fast.get(raw)  # type: ignore[arg-type]  # None is never a key
            if hit is not None and self._clock() < hit[0]:
                scope["user"] = hit[1]
                scope["auth"] = _AUTHENTICATED
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
                await send_error(send, error)
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
            fast = self._fast
            if fast is not None and from_header:  # only a bearer header may fill the fast path
                raw = header(scope, b"authorization")
                if raw is not None:
                    if len(fast) >= self._fast_size:
                        fast.pop(next(iter(fast)), None)
                    fast[raw] = (int(user.claims["exp"]), user)
            return user, _AUTHENTICATED, receive
        cookie_token = self.auth.cookie_token(scope)
        if cookie_token is not None:
            try:
                user = await self.auth.authenticate_bearer(cookie_token)
            except TokenInvalid:
                # A stale cookie is not an attack: the browser simply is not logged in.
                return UnauthenticatedUser(), AuthCredentials(), receive
            self.auth.check_cookie_request(scope, user)
            return user, _AUTHENTICATED, receive
        if self.auth.signed_requests:
            params = _signed_params_from_headers(scope) or _signed_params_from_query(scope)
            if params is None:
                params, receive = await _signed_params_from_body(
                    scope, receive, self.auth.max_body_size
                )
            if params is not None:
                user = await self.auth.authenticate_signed_request(scope, params)
                return user, _AUTHENTICATED, receive
        return UnauthenticatedUser(), AuthCredentials(), receive


__all__ = ["WalletAuthMiddleware", "bearer_token", "query_token"]
