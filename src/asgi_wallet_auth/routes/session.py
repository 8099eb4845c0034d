"""``GET``/``POST /refresh`` and, with revocation, ``POST /logout``: the session's own routes."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ..core import Route, logger
from ..envelope import send_ok
from ..events import LOGOUT, REFRESH
from ..sessions import SessionLayer


class SessionRoutes:
    """Refresh a token for the same session; log out (revoke) where revocation is on."""

    def __init__(self, sessions: SessionLayer) -> None:
        self.sessions = sessions

    def routes(self) -> list[Route]:
        """``/refresh``, and ``/logout`` only where revoked tokens are remembered."""
        routes = [Route("/refresh", ("GET", "POST"), self.refresh, limit="session")]
        if self.sessions.revocation:
            routes.append(Route("/logout", ("POST",), self.logout, limit="session"))
        return routes

    async def refresh(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A new token for the caller's session (never past the session's absolute lifetime)."""
        sessions = self.sessions
        # A refresh changes state even as a GET: a cookie credential needs the CSRF proof.
        user = await sessions.request_user(scope, state_changing=True)
        issued = await sessions.refresh(scope, user)
        await sessions.record(REFRESH, scope, issued.claims)
        await sessions.send_token(send, issued)

    async def logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        """End the caller's session, and clear the cookies where they are in use."""
        sessions = self.sessions
        user = await sessions.end_session(scope)
        logger.info("logout: %s", user.address)
        sessions.record_nowait(LOGOUT, scope, user.claims)  # the session is over either way
        cookies = sessions.cookies
        await send_ok(send, None, [] if cookies is None else cookies.clearing_cookies())


__all__ = ["SessionRoutes"]
