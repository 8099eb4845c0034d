"""FastAPI integration: typed dependencies, a bearer security scheme, the login routes in OpenAPI.

Install with ``pip install 'asgi-wallet-auth[fastapi]'``::

    from asgi_wallet_auth.fastapi import CurrentWallet, add_wallet_auth

    app = FastAPI()
    add_wallet_auth(app, auth, prefix="/auth")   # routes, middleware, envelope errors

    @app.get("/me")
    async def me(wallet: CurrentWallet) -> dict[str, str]:
        return {"address": wallet.address}

The routes in the schema are the same ``WalletAuth`` handlers (the router only describes them),
so there is one implementation of the login logic; bodies are still parsed by the strict reader.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Message

from .app import WalletAuth
from .envelope import render
from .errors import InsufficientScope, TokenMissing, WalletAuthError
from .middleware import WalletAuthMiddleware
from .users import WalletUser

#: The OpenAPI security scheme: Swagger UI's "Authorize" takes a token from ``/login``.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="WalletAuth",
    description="An access token from POST /login (or /api/user_login/).",
)


def _user_in_scope(request: Request) -> Any:
    if "user" not in request.scope:
        raise RuntimeError(
            "no WalletAuthMiddleware in front of this route: call add_wallet_auth(app, auth) "
            "or app.add_middleware(WalletAuthMiddleware, auth=auth)"
        )
    return request.scope["user"]


async def optional_wallet(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
) -> WalletUser | None:
    """The wallet of a request with a valid credential, None for an anonymous one."""
    user = _user_in_scope(request)
    return user if isinstance(user, WalletUser) else None


async def current_wallet(
    user: Annotated[WalletUser | None, Depends(optional_wallet)],
) -> WalletUser:
    """The wallet of the request; an anonymous request is refused with 401 in the envelope."""
    if user is None:
        raise TokenMissing()
    return user


#: ``wallet: CurrentWallet`` in a handler: the authenticated ``WalletUser``, or a 401.
CurrentWallet = Annotated[WalletUser, Depends(current_wallet)]
#: ``wallet: OptionalWallet``: the ``WalletUser``, or None when the request has no credential.
OptionalWallet = Annotated[WalletUser | None, Depends(optional_wallet)]


def require_scopes(*scopes: str) -> DependsParam:
    """A dependency that refuses (403) a wallet whose credentials lack any of ``scopes``."""
    needed = frozenset(scopes)

    async def dependency(request: Request, user: CurrentWallet) -> WalletUser:
        if not needed <= set(request.auth.scopes):
            raise InsufficientScope()
        return user

    marker: DependsParam = Depends(dependency)
    return marker


def require_recent_login(seconds: float, *, clock: Callable[[], float] = time.time) -> DependsParam:
    """A dependency that refuses (401, code 40114) a wallet whose session last signed more than
    ``seconds`` ago: the client re-authenticates (``POST /reauthenticate``) and retries."""
    from .stepup import check_max_age, check_recent_login

    max_age = check_max_age(seconds)

    async def dependency(user: CurrentWallet) -> WalletUser:
        return check_recent_login(user, max_age, clock())

    marker: DependsParam = Depends(dependency)
    return marker


async def envelope_error_handler(request: Request, exc: Exception) -> Response:
    """Render a ``WalletAuthError`` raised in a FastAPI handler or dependency as the envelope."""
    error = exc if isinstance(exc, WalletAuthError) else WalletAuthError()
    return Response(
        render(error.code, error.msg, None),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


# -- the schema of the login routes (documentation; the handlers parse strictly) -----------------


class _Envelope(BaseModel):
    code: int = Field(description="0 on success; see docs/errors.md for the others")
    msg: str


class ErrorEnvelope(_Envelope):
    """Every refusal: a stable non-zero code and ``data: null``."""

    data: None = None


class SecretRequest(BaseModel):
    """Body of ``POST /login_random_secret``."""

    wallet_address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    resources: list[str] | None = Field(
        default=None, description="Resources the EIP-4361 message must carry, exactly"
    )
    request_id: str | None = Field(
        default=None, description="Request ID the EIP-4361 message must carry"
    )
    not_before: str | None = Field(
        default=None, description="Not Before (RFC 3339) the EIP-4361 message must carry"
    )


class SecretEnvelope(_Envelope):
    """The login secret: 40 hex characters, single use, bound to the address."""

    data: str


class LoginRequest(BaseModel):
    """Body of ``POST /login``: the secret, and its signature (or an EIP-4361 message's)."""

    login_random_secret: str
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")
    wallet_address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    signature_content: str | None = Field(
        default=None, description="An EIP-4361 message whose Nonce is the secret"
    )


class TokenData(BaseModel):
    """An issued access token and who it is for."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_in: int
    access_expired_at: int
    wallet_address: str
    userid: str
    did_type: str
    did_value: str


class TokenEnvelope(_Envelope):
    """Success of ``/login`` and ``/refresh``."""

    data: TokenData


class UserLoginRequest(BaseModel):
    """Body of Web3MQ's ``POST /api/user_login/`` (see docs/web3mq.md)."""

    userid: str
    did_type: str = "eth"
    did_value: str
    timestamp: int
    did_signature: str
    signature_content: str
    pubkey_type: str = "ed25519"
    pubkey_value: str
    nickname: str | None = None
    avatar_url: str | None = None
    avatar_base64: str | None = None


class UserLoginData(TokenData):
    """An issued token and the registered device key."""

    pubkey_type: str
    pubkey_value: str


class UserLoginEnvelope(_Envelope):
    """Success of ``/api/user_login/``."""

    data: UserLoginData


class EmptyEnvelope(_Envelope):
    """Success with no data (``/logout``)."""

    data: None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in (
        (400, "malformed input"),
        (401, "authentication failed"),
        (403, "refused by a hook"),
        (409, "identity conflict"),
        (413, "body too large"),
        (415, "not JSON"),
        (503, "a store is unreachable"),
    )
}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def login_router(auth: WalletAuth) -> APIRouter:
    """An ``APIRouter`` exposing ``auth``'s routes with their bodies in the OpenAPI schema.

    Each endpoint hands the raw request to ``auth`` itself: no second implementation, the same
    strict body reading, the same envelope.
    """
    router = APIRouter(tags=["wallet login"])

    def delegate(path: str | None) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            scope = dict(request.scope)
            route_path = path if path is not None else "/" + request.path_params["rest"]
            scope["path"], scope["root_path"] = route_path, ""
            start: Message = {}
            chunks: list[bytes] = []

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                else:
                    chunks.append(message.get("body", b""))

            await auth(scope, request.receive, send)
            response = Response(b"".join(chunks), status_code=start["status"])
            response.raw_headers = list(start.get("headers", []))
            return response

        endpoint.__name__ = "wallet_auth" + (path or "/any").replace("/", "_").rstrip("_")
        return endpoint

    routes: list[tuple[str, str, type[BaseModel] | None, type[BaseModel], bool, str]] = [
        (
            "/login_random_secret",
            "POST",
            SecretRequest,
            SecretEnvelope,
            False,
            "Get a login secret",
        ),
        ("/login", "POST", LoginRequest, TokenEnvelope, False, "Log in with a wallet signature"),
        ("/refresh", "GET", None, TokenEnvelope, True, "Refresh an access token"),
        ("/api/user_login/", "POST", UserLoginRequest, UserLoginEnvelope, False, "Web3MQ login"),
        (
            "/reauthenticate",
            "POST",
            LoginRequest,
            TokenEnvelope,
            True,
            "Sign again for the same session (step-up)",
        ),
    ]
    if auth.revocation:
        routes.append(("/logout", "POST", None, EmptyEnvelope, True, "Revoke the access token"))
    for path, method, body, response, secured, summary in routes:
        router.add_api_route(
            path,
            delegate(path),
            methods=[method],
            summary=summary,
            response_model=None,
            responses={200: {"model": response}, **_ERRORS},
            openapi_extra=_body(body) if body is not None else None,
            dependencies=[Security(bearer_scheme)] if secured else None,
        )
    # Everything else under the prefix (unknown paths, wrong methods) is answered by WalletAuth
    # too, so it gets the envelope (40401, 40501) rather than FastAPI's {"detail": ...}.
    router.add_api_route(
        "/{rest:path}",
        delegate(None),
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    return router


def add_wallet_auth(
    app: FastAPI, auth: WalletAuth, *, prefix: str = "/auth", include_in_schema: bool = True
) -> None:
    """Wire ``auth`` into ``app``: routes under ``prefix``, the middleware, envelope errors."""
    app.include_router(login_router(auth), prefix=prefix, include_in_schema=include_in_schema)
    app.add_middleware(WalletAuthMiddleware, auth=auth)
    app.add_exception_handler(WalletAuthError, envelope_error_handler)
    _name_login_route(app, prefix)


def _name_login_route(app: FastAPI, prefix: str) -> None:
    """Make the security scheme's description name the login route where it is mounted."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        schemes = schema.get("components", {}).get("securitySchemes", {})
        scheme = schemes.get(bearer_scheme.scheme_name)
        if fresh and isinstance(scheme, dict):
            scheme["description"] = (
                f"An access token from POST {prefix}/login (or {prefix}/api/user_login/)."
            )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "CurrentWallet",
    "ErrorEnvelope",
    "LoginRequest",
    "OptionalWallet",
    "SecretRequest",
    "TokenEnvelope",
    "UserLoginRequest",
    "add_wallet_auth",
    "bearer_scheme",
    "current_wallet",
    "envelope_error_handler",
    "login_router",
    "optional_wallet",
    "require_recent_login",
    "require_scopes",
]
