"""A dapp's backend for the SDK tests: WalletAuth at ``/`` and a few of the SDK's own API routes.

Run under uvicorn by tests/test_web3mq_sdk.py (``--factory tests.web3mq_sdk_app:create_app``);
``WEB3MQ_TEST_URI`` is the service's URI and ``WEB3MQ_TEST_ORIGIN`` the dapp's origin. Each API
route answers what the SDK reads and records who the middleware said the caller was
(``GET /seen``), so the test sees what the signed requests authenticated as.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import (
    WalletAuth,
    WalletAuthMiddleware,
    WalletUser,
    Web3MQSettings,
    Web3MQV2Settings,
)


def create_app() -> Starlette:
    """The test app; uvicorn calls it once per process."""
    uri = os.environ["WEB3MQ_TEST_URI"]
    auth = WalletAuth(
        secret_key="sdk-test-secret-key-that-is-long-enough-0123",
        domain=uri.split("://", 1)[1],
        uri=uri,
        web3mq=Web3MQSettings(
            uris=[uri, os.environ["WEB3MQ_TEST_ORIGIN"]],
            signed_requests=True,
            v2=Web3MQV2Settings(),
        ),
    )
    seen: list[dict[str, Any]] = []

    def api(data: Any) -> Any:
        async def handler(request: Request) -> JSONResponse:
            user = request.user
            if not isinstance(user, WalletUser):
                return JSONResponse({"code": 40112, "msg": "unauthenticated", "data": None}, 401)
            seen.append(
                {
                    "path": request.url.path,
                    "userid": user.userid,
                    "address": user.address,
                    "auth_method": user.claims.get("auth_method"),
                }
            )
            body = data(user) if callable(data) else data
            return JSONResponse({"code": 0, "msg": "ok", "data": body})

        return handler

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(seen)

    return Starlette(
        routes=[
            Route("/seen", show),
            Route(
                "/api/users/search/",
                api(lambda u: [{"userid": u.userid, "wallet_address": u.address}]),
            ),
            Route("/api/chats/", api({"result": [], "total_count": 0})),
            Route("/api/user_followers/", api({"user_list": [], "total_count": 0})),
            Route("/api/my_create_dapps/", api(lambda u: {"creator_id": u.userid, "dapps": []})),
            Mount("", app=auth),
        ],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
