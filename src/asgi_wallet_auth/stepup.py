"""Step-up: routes that want a wallet signature made recently, not just a valid token.

Every token carries ``auth_time``, when its session's wallet last signed (a login, or
``POST /reauthenticate``); refreshing never changes it. ``@require_recent_login(300)`` refuses a
request whose ``auth_time`` is older than 300 seconds with 401 and code 40114, and a
``WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age=300`` header as RFC
9470 describes, so the client knows to re-authenticate and retry. FastAPI's dependency of the same
name lives in ``asgi_wallet_auth.fastapi``.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from .envelope import render
from .errors import ReauthenticationRequired, TokenMissing, WalletAuthError
from .users import WalletUser

F = TypeVar("F", bound=Callable[..., Any])
_WS_POLICY_VIOLATION = 1008


def check_max_age(seconds: object) -> float:
    """``seconds`` as a float if it is a positive, finite number; ``ValueError`` otherwise."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not seconds > 0
    ):
        raise ValueError(
            f"require_recent_login needs a positive number of seconds; got {seconds!r}"
        )
    return float(seconds)


def check_recent_login(user: object, seconds: float, now: float) -> WalletUser:
    """``user`` if it is a wallet whose session signed within ``seconds`` of ``now``.

    Raises ``TokenMissing`` for an anonymous request and ``ReauthenticationRequired`` for a
    signature older than that, or a credential without ``auth_time`` (a Web3MQ signed request).
    """
    if not isinstance(user, WalletUser):
        raise TokenMissing()
    auth_time = user.claims.get("auth_time")
    if type(auth_time) is not int or not 0 <= now - auth_time <= seconds:
        challenge = f'Bearer error="insufficient_user_authentication", max_age={int(seconds)}'
        raise ReauthenticationRequired(headers={"www-authenticate": challenge})
    return user


def _refusal(error: WalletAuthError) -> Response:
    return Response(
        render(error.code, error.msg, None),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def require_recent_login(
    seconds: float, *, clock: Callable[[], float] = time.time
) -> Callable[[F], F]:
    """A decorator for Starlette endpoints (``request`` or ``websocket`` parameter, sync or
    async): 401 (40114) unless the wallet signed within ``seconds``; 401 (40112) anonymous."""
    max_age = check_max_age(seconds)

    def decorator(func: F) -> F:
        parameters = list(inspect.signature(func).parameters)
        for name in ("request", "websocket"):
            if name in parameters:
                index = parameters.index(name)
                break
        else:
            raise ValueError(
                f"@require_recent_login: {func.__name__} has no 'request' or 'websocket' parameter"
            )

        def connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
            conn = kwargs.get(name, args[index] if index < len(args) else None)
            if not isinstance(conn, HTTPConnection):
                raise TypeError(f"{func.__name__}'s {name} is not a Starlette connection")
            return conn

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                conn = connection(args, kwargs)
                try:
                    check_recent_login(conn.scope.get("user"), max_age, clock())
                except WalletAuthError as error:
                    if isinstance(conn, WebSocket):
                        await conn.close(code=_WS_POLICY_VIOLATION)
                        return None
                    return _refusal(error)
                return await func(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            conn = connection(args, kwargs)
            try:
                check_recent_login(conn.scope.get("user"), max_age, clock())
            except WalletAuthError as error:
                return _refusal(error)
            return func(*args, **kwargs)

        return sync_wrapper  # type: ignore[return-value]

    return decorator


__all__ = ["check_max_age", "check_recent_login", "require_recent_login"]
