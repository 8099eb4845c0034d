"""``POST /reauthenticate``: a fresh wallet signature for the caller's session (step-up).

The caller sends its current token (bearer, or the cookie with its CSRF header) and a ``/login``
body for a new secret, signed by the same wallet. The answer is a token of the same session
(``sid`` kept) whose ``auth_time`` is now, which ``require_recent_login`` routes accept; with
revocation the old token is retired, once. A signature of another wallet is refused (403) before
anything is verified or spent.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ..core import Route, logger
from ..errors import ReauthenticationMismatch
from ..events import REAUTH
from ..sessions import SessionLayer
from ..users import UserRecord
from .secret import SecretLogin


class Reauthentication:
    """The re-authentication route of one ``WalletAuth``, over its secret flow's proof."""

    def __init__(self, secret_login: SecretLogin, sessions: SessionLayer) -> None:
        self.secret_login = secret_login
        self.sessions = sessions

    def routes(self) -> list[Route]:
        """The one route, counted against the failed-attempt limit."""
        return [Route("/reauthenticate", ("POST",), self.reauthenticate, limit="attempt")]

    async def reauthenticate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Prove the session's wallet again; answer with a token of the same session."""
        sessions = self.sessions
        user = await sessions.request_user(scope, state_changing=True)
        proof = await self.secret_login.prove(scope, receive, wallet=user.address)
        if proof.verifier.did_type != user.did_type:
            raise ReauthenticationMismatch()
        now = proof.now
        record = UserRecord(user.userid, user.address, user.did_type, now, now)
        issued = await sessions.start(
            scope,
            record,
            now,
            account_id=proof.verifier.account_id(proof.address, proof.chain_id),
            claims=proof.claims,
            session=user.claims,
        )
        logger.info("reauthenticated: %s", user.address)
        await sessions.record(REAUTH, scope, issued.claims)
        await sessions.send_token(send, issued)


__all__ = ["Reauthentication"]
