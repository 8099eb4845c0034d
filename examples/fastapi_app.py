"""A FastAPI app with wallet login at /auth (in the OpenAPI docs), GET /me and a websocket.

Run from this folder:  WALLET_AUTH_SECRET=... uvicorn fastapi_app:app
Then open /docs: log in, paste the token into "Authorize", and call /me.
Settings: see settings.py (WALLET_AUTH_SECRET, _DOMAIN, _URI, _REDIS_URL).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exception_handlers import http_exception_handler
from settings import auth_from_env
from starlette.exceptions import HTTPException
from starlette.responses import Response

from asgi_wallet_auth import WalletUser
from asgi_wallet_auth.errors import MethodNotAllowed, NotFound
from asgi_wallet_auth.fastapi import CurrentWallet, add_wallet_auth, envelope_error_handler

auth = auth_from_env()
app = FastAPI(title="Wallet login example")
add_wallet_auth(app, auth, prefix="/auth")


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    """Unknown routes and wrong methods in the envelope too (40401, 40501), like /auth's."""
    kind = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code)
    if kind is None:
        return await http_exception_handler(request, exc)
    return await envelope_error_handler(request, kind(headers=exc.headers))


@app.get("/me")
async def me(wallet: CurrentWallet) -> dict[str, Any]:
    """The wallet behind the bearer token, in the envelope; 401 without one."""
    data = {"address": wallet.address, "userid": wallet.userid, "did_type": wallet.did_type}
    return {"code": 0, "msg": "ok", "data": data}


@app.websocket("/ws")
async def greet(websocket: WebSocket) -> None:
    """Greet the authenticated wallet (token in Authorization or ?access_token=)."""
    user = websocket.scope.get("user")
    if not isinstance(user, WalletUser):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    await websocket.send_json({"hello": user.address})
    await websocket.close()
