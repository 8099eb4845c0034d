"""A Starlette app with wallet login mounted at /auth and a protected GET /me.

Run from this folder:  WALLET_AUTH_SECRET=... uvicorn starlette_app:app
Settings: WALLET_AUTH_SECRET (required, >= 32 bytes), WALLET_AUTH_DOMAIN (default 127.0.0.1:8000),
WALLET_AUTH_URI (default http://<domain>).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware, WalletUser

DOMAIN = os.environ.get("WALLET_AUTH_DOMAIN", "127.0.0.1:8000")
auth = WalletAuth(
    secret_key=os.environ["WALLET_AUTH_SECRET"],
    domain=DOMAIN,
    uri=os.environ.get("WALLET_AUTH_URI", f"http://{DOMAIN}"),
)


async def me(request: Request) -> JSONResponse:
    """The wallet behind the bearer token, in the envelope."""
    user = request.user
    if not isinstance(user, WalletUser):
        return JSONResponse(
            {"code": 40112, "msg": "access token required", "data": None},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
    return JSONResponse(
        {"code": 0, "msg": "ok", "data": {"address": user.address, "userid": user.userid}}
    )


async def greet(websocket: WebSocket) -> None:
    """Greet the authenticated wallet (token in Authorization or ?access_token=)."""
    user = websocket.user
    if not isinstance(user, WalletUser):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    await websocket.send_json({"hello": user.address})
    await websocket.close()


app = Starlette(
    routes=[Route("/me", me), WebSocketRoute("/ws", greet), Mount("/auth", app=auth)],
    middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
)
