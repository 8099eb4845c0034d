"""``GET /.well-known/jwks.json``: the public keys that verify this service's tokens (RFC 7517).

Other services (and ``JwksAuthenticator``) fetch it to check tokens without holding any key that
can mint one: only the public keys of the next, current and previous states appear, never an
HMAC secret. The body is a plain JWK Set, not an envelope, as every JWKS client expects.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ..core import Route
from ..envelope import json_bytes
from ..keys import KeySet

JWKS_PATH = "/.well-known/jwks.json"


class KeyRoutes:
    """Publishes a ``KeySet``'s public keys, cacheable for its ``max_age`` seconds."""

    def __init__(self, keys: KeySet) -> None:
        # The keys of one process never change: the response is rendered once.
        self.body = json_bytes(keys.jwks())
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode("ascii")),
            (b"cache-control", f"public, max-age={keys.max_age}".encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
        ]

    def routes(self) -> list[Route]:
        """The one route; no rate limit (it is a constant answer, cheaper than any limiter)."""
        return [Route(JWKS_PATH, ("GET", "HEAD"), self.jwks)]

    async def jwks(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The JWK Set (headers only for ``HEAD``)."""
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


__all__ = ["JWKS_PATH", "KeyRoutes"]
