"""Apps for the under-a-server benchmark: one trivial endpoint, bare and behind each middleware.

The token to send is printed by ``python benchmarks/server_app.py token``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from baselines import pyjwt_middleware

from asgi_wallet_auth import WalletAuth, WalletAuthMiddleware

SECRET = os.environ.get("BENCH_SECRET", "benchmark-secret-key-0123456789abcdef")
ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
auth = WalletAuth(secret_key=SECRET, domain="127.0.0.1", uri="http://127.0.0.1")
BODY = b'{"ok":true}'


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A trivial JSON endpoint: the anchor."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


wrapped = WalletAuthMiddleware(bare, auth=auth)
# The hand-written alternative, checking the same token (WalletAuth's iss and aud default to its
# uri). Starlette's AuthenticationMiddleware passes lifespan through to bare, which answers it.
pyjwt = pyjwt_middleware(bare, SECRET, issuer=auth.tokens.issuer, audience=auth.tokens.audience)

if __name__ == "__main__" and sys.argv[1:] == ["token"]:
    print(auth.tokens.issue(subject=ADDRESS, auth_time=int(time.time())).token)
