"""What a wallet's credentials grant: ``request.auth.scopes`` and ``request.auth.capabilities``.

``"authenticated"`` always; then the token's ``scope`` claim (gate scopes, or scopes an
``on_login`` hook set); and the ReCap the wallet signed, as ``capabilities``.
"""

from __future__ import annotations

from starlette.authentication import AuthCredentials

from .recap import ReCap, recap_from_claims
from .users import WalletUser


class WalletCredentials(AuthCredentials):
    """``request.auth`` of a wallet whose token carries scopes or a ReCap."""

    def __init__(self, scopes: list[str], capabilities: ReCap | None) -> None:
        super().__init__(scopes)
        self.capabilities = capabilities


def has_grants(user: WalletUser) -> bool:
    """Whether ``user``'s claims grant more than ``"authenticated"``."""
    claims = user.claims
    return "scope" in claims or "recap" in claims


def credentials_for(user: WalletUser) -> WalletCredentials:
    """The credentials of a wallet whose claims carry scopes or a ReCap."""
    claims = user.claims
    scope = claims.get("scope")
    extra = [s for s in scope.split() if s != "authenticated"] if isinstance(scope, str) else []
    return WalletCredentials(["authenticated", *dict.fromkeys(extra)], recap_from_claims(claims))


__all__ = ["WalletCredentials", "credentials_for", "has_grants"]
