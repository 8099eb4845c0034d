"""A Starlette app with wallet login mounted at /auth, a protected GET /me and a websocket.

Run from this folder:  WALLET_AUTH_SECRET=... uvicorn starlette_app:app
Settings: see settings.py (WALLET_AUTH_SECRET, _DOMAIN, _URI, _REDIS_URL).
"""

from __future__ import annotations

from settings import auth_from_env
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_wallet_auth import WalletAuthMiddleware, WalletUser

auth = auth_from_env()


async def me(request: Request) -> JSONResponse:
    """The wallet behind the bearer token, in the envelope; 401 without one."""
    user = request.user
    if not isinstance(user, WalletUser):
        return JSONResponse(
            {"code": 40112, "msg": "access token required", "data": None},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
    data = {"address": user.address, "userid": user.userid, "did_type": user.did_type}
    return JSONResponse({"code": 0, "msg": "ok", "data": data})


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
