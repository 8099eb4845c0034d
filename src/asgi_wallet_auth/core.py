"""What every route family shares: routes as values, store calls that fail closed, login hooks.

This module sits below the route families and the session layer and imports neither, so the
dependencies point one way: ``app`` -> route families -> session layer -> ``core``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .errors import LoginRefused, StoreUnavailable, WalletAuthError
from .settings import LoginHook
from .tokens import RESERVED_CLAIMS
from .users import WalletUser

logger = logging.getLogger("asgi_wallet_auth")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Which rate limit a route counts against (``RateLimit``): secrets issued, failed attempts, or
#: session operations (refresh, logout).
LimitKind = Literal["secret", "attempt", "session"]
T = TypeVar("T")
_STRICT_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the mounted app: a path, its methods, its handler and its rate limit."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    limit: LimitKind | None = None


async def guarded(operation: Awaitable[T]) -> T:
    """Await a store (or other backing service) call; any failure of it is a 503.

    Fail closed: an unreachable store never issues a secret or a token. The package's own
    refusals pass through unchanged.
    """
    try:
        return await operation
    except WalletAuthError:
        raise
    except Exception as exc:
        logger.warning("store unavailable: %s", type(exc).__name__)
        raise StoreUnavailable() from exc


async def run_hook(hook: LoginHook | None, scope: Scope, user: WalletUser) -> dict[str, Any]:
    """Run an application's login or refresh hook; the extra claims it adds.

    A hook that raises anything but a ``WalletAuthError``, or returns something that is not a
    mapping of claims the token can carry, refuses the login (403): never a 500, never a token
    the application did not mean to allow.
    """
    if hook is None:
        return {}
    try:
        extra = await hook(Request(scope), user)
    except WalletAuthError:
        raise
    except Exception:
        logger.exception("login hook raised; refusing the login")
        raise LoginRefused() from None
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        logger.error("login hook returned %s, not a mapping; refusing", type(extra).__name__)
        raise LoginRefused()
    dropped = sorted(str(k) for k in extra if k in RESERVED_CLAIMS)
    if dropped:
        logger.warning("login hook tried to set reserved claims %s; ignored", dropped)
    claims = {str(k): v for k, v in extra.items() if k not in RESERVED_CLAIMS}
    try:
        # JSON without NaN or Infinity (orjson would write them as null), and text that UTF-8
        # can carry: a lone surrogate passes the JSON check but not the encoding.
        _STRICT_JSON.encode(claims).encode("utf-8")
    except (TypeError, ValueError):
        logger.error("login hook returned claims that are not JSON; refusing")
        raise LoginRefused() from None
    return claims


__all__ = ["Handler", "LimitKind", "Route", "guarded", "logger", "run_hook"]
