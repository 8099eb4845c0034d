"""``GET /siwe``: what a dapp needs to build a sign-in message this service accepts.

A browser page cannot guess the service's EIP-4361 domain and URI (its own ``location`` is often
another origin), nor which chains are accepted: this route says, so a client builds the message
with no guessing. Nothing in it is secret; it is the same for every caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from ..chains.base import ChainRegistry, ChainVerifier
from ..cookies import CookieSettings
from ..core import Route
from ..envelope import send_ok
from ..grammar import format_rfc3339
from ..settings import LoginSettings


def _chain(verifier: ChainVerifier) -> dict[str, Any]:
    # ``chain_ids`` and ``default_chain_id`` are the built-in verifiers' settings; a custom
    # verifier without them accepts any chain as far as a client can tell.
    ids = getattr(verifier, "chain_ids", None)
    default = getattr(verifier, "default_chain_id", None)
    listed = None if ids is None else sorted(ids, key=str)
    if default is None and listed:
        default = listed[0]
    return {"chain_ids": listed, "default_chain_id": default}


class SignInInfo:
    """``GET /siwe``: the domain, URI, chains, statement and lifetimes of this service's logins."""

    def __init__(
        self,
        settings: LoginSettings,
        *,
        domain: str,
        uri: str,
        chains: ChainRegistry,
        cookie: CookieSettings | None,
        logout: bool,
        clock: Callable[[], float],
    ) -> None:
        self.clock = clock
        # Fixed for the service's life: rendered once, but for the clock's reading.
        self.fixed: dict[str, Any] = {
            "domain": domain,
            "uri": uri,
            "version": "1",
            "statement": settings.statement,
            "chains": {name: _chain(verifier) for name, verifier in chains.items()},
            "nonce_lifetime": int(settings.nonce_lifetime),
            "clock_skew": int(settings.clock_skew),
            "raw_secret": settings.allow_raw_secret,
            "cookie": cookie is not None,
            "csrf_header": None if cookie is None else cookie.csrf_header_name,
            "logout": logout,
        }

    def routes(self) -> list[Route]:
        """The one route; cheap and the same for everyone, so outside every rate limit."""
        return [Route("/siwe", ("GET",), self.info)]

    async def info(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The sign-in parameters, and the service's clock (a client's may be wrong)."""
        now = self.clock()
        await send_ok(send, {**self.fixed, "now": int(now), "issued_at": format_rfc3339(now)})


__all__ = ["SignInInfo"]
