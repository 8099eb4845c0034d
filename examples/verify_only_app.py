"""An API that checks wallet-login tokens without being able to issue one: keys from a JWKS.

Run from this folder, next to a login service (``asgi-wallet-auth serve --signing-key keys.pem``):

    WALLET_AUTH_JWKS_URL=http://127.0.0.1:8000/.well-known/jwks.json \\
    WALLET_AUTH_ISSUER=http://127.0.0.1:8000 uvicorn verify_only_app:app --port 8001

``WALLET_AUTH_ISSUER`` is the login service's uri (its tokens' ``iss`` and ``aud``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_wallet_auth import JwksAuthenticator, WalletAuthMiddleware, WalletUser

issuer = os.environ["WALLET_AUTH_ISSUER"]
verifier = JwksAuthenticator(
    jwks_url=os.environ["WALLET_AUTH_JWKS_URL"], issuer=issuer, audience=issuer
)


async def me(request: Request) -> JSONResponse:
    """The wallet behind the bearer token; 401 without one."""
    user = request.user
    if not isinstance(user, WalletUser):
        return JSONResponse({"error": "login required"}, status_code=401)
    return JSONResponse({"address": user.address, "account_id": user.account_id})


async def greet(websocket: WebSocket) -> None:
    """Greet the authenticated wallet (token in Authorization or ?access_token=)."""
    user = websocket.user
    if not isinstance(user, WalletUser):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    await websocket.send_json({"hello": user.address})
    await websocket.close()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await verifier.refresh()  # the keys before the first request (a failure is retried later)
    try:
        yield
    finally:
        await verifier.aclose()


app = Starlette(
    routes=[Route("/me", me), WebSocketRoute("/ws", greet)],
    middleware=[Middleware(WalletAuthMiddleware, auth=verifier)],
    lifespan=lifespan,
)
