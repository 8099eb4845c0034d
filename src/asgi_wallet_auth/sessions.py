"""The session layer: issuing, verifying, caching and revoking access tokens, and their cookies.

Every login route ends here (``start``), ``/refresh`` and ``/logout`` live on it, and the
middleware's token checks are its methods.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from starlette.types import Scope, Send

from .caches import make_room
from .chains.base import ChainRegistry, ChainVerifier
from .cookies import CookieSettings, CookieTransport, CsrfTokens
from .core import guarded, run_hook
from .credentials import bearer_token
from .envelope import send_ok
from .errors import TokenInvalid, TokenMissing
from .events import event_from_claims
from .identity import IdentityLayer
from .settings import LoginHook, TokenSettings
from .stores.base import ENDED, SessionStore
from .tokens import IssuedToken, TokenService
from .users import UserRecord, WalletUser

#: Claims a refreshed token gets anew rather than carrying over from the old one.
_RECOMPUTED_CLAIMS = frozenset({"iat", "exp", "jti", "nbf", "access_expired_at", "iss", "aud"})


def session_id(claims: Mapping[str, Any]) -> str:
    """The session a token belongs to: its ``sid`` (kept across refreshes), else its own ``jti``."""
    sid = claims.get("sid")
    return sid if isinstance(sid, str) and sid else str(claims["jti"])


#: did_type -> the chain's ``normalize`` (its canonical form of an address).
Normalizers = Mapping[str, Callable[[object], str]]


def normalizers(chains: Mapping[str, ChainVerifier]) -> dict[str, Callable[[object], str]]:
    """did_type -> ``normalize`` of each chain, as a plain dict for the first-sight path.

    A plain dict: a ``ChainRegistry``'s ``Mapping.get`` costs two Python frames per token.
    """
    return {did_type: chain.normalize for did_type, chain in chains.items()}


def token_user(claims: dict[str, Any], canonical: Normalizers) -> WalletUser:
    """The ``WalletUser`` of a verified token's claims; ``TokenInvalid`` for a foreign identity.

    Only a key holder can mint a token, but a subject that is not in its chain's canonical form,
    or of a chain not accepted here, is refused all the same rather than handed to the app.
    """
    sub = claims["sub"]
    userid = claims.get("userid", sub)
    did_type = claims.get("did_type", "eth")
    normalize = canonical.get(did_type) if type(did_type) is str else None
    try:
        if normalize is None or normalize(sub) != sub:
            raise TokenInvalid()
    except Exception:  # a custom verifier's own error is a refusal too
        raise TokenInvalid() from None
    # The claims are shared by every cache hit: nobody may change them.
    return WalletUser(
        sub, userid if type(userid) is str else sub, did_type, MappingProxyType(claims)
    )


def older_secrets(settings: TokenSettings, secret_key: bytes) -> tuple[bytes, ...]:
    """The HMAC secrets of the key set that verify but are not ``secret_key`` (a rotation)."""
    if settings.keys is None:
        return ()
    return tuple(
        key.secret
        for key in settings.keys.verifying()
        if key.secret is not None and key.secret != secret_key
    )


class SessionLayer:
    """Tokens of one ``WalletAuth``: what a login ends with and what every request is checked by."""

    def __init__(
        self,
        *,
        secret_key: bytes,
        settings: TokenSettings,
        uri: str,
        chains: ChainRegistry,
        session_store: SessionStore,
        cookie: CookieSettings | None,
        on_login: LoginHook | None,
        on_refresh: LoginHook | None,
        clock: Callable[[], float],
        identity: IdentityLayer | None = None,
    ) -> None:
        self.settings = settings
        #: Audit events, gates and names (``IdentitySettings``); inert where not configured.
        self.identity = identity if identity is not None else IdentityLayer(
            None, chains=chains, clock=clock
        )
        self.tokens = TokenService(
            secret_key=secret_key,
            issuer=settings.issuer or uri,
            audience=settings.audience or uri,
            lifetime=settings.lifetime,
            session_lifetime=settings.session_lifetime,
            algorithm=settings.algorithm,
            clock=clock,
            keys=settings.keys,
        )
        self.chains = chains
        self._normalizers = normalizers(chains)
        self.session_store = session_store
        self.revocation = settings.revocation
        self.cookies = (
            None
            if cookie is None
            else CookieTransport(
                cookie,
                CsrfTokens(
                    secret_key, settings.session_lifetime, older_secrets(settings, secret_key)
                ),
                uri,
            )
        )
        self.on_login = on_login
        self.on_refresh = on_refresh
        self.clock = clock
        # Already-verified tokens: a repeat token is a dictionary hit. A plain dict bounded by
        # make_room (caches.py, its oldest eighth goes when it is full) costs a fraction of an
        # LRU's bookkeeping per request.
        self.cache_size = settings.cache_size
        self.cache: dict[str, tuple[WalletUser, int]] = {}

    # -- verifying ---------------------------------------------------------------------------

    def authenticate_token(self, token: str) -> WalletUser:
        """The ``WalletUser`` of a valid access token (signature and claims; no store access).

        Raises ``TokenInvalid`` otherwise. It does not consult revocations: the middleware and
        the routes use ``authenticate_bearer``, which does where revocation is enabled.
        """
        cache = self.cache
        hit = cache.get(token)
        # A hit skips only the signature and the static claim checks, which cannot change for
        # the same bytes under the same key; expiry is checked on every use.
        if hit is not None:
            if self.clock() < hit[1]:
                return hit[0]
            cache.pop(token, None)
        user = self.verify_token(token)
        if self.cache_size:
            if len(cache) >= self.cache_size:
                make_room(cache, self.cache_size)
            cache[token] = (user, user.claims["exp"])
        return user

    def verify_token(self, token: str) -> WalletUser:
        """``authenticate_token`` without this layer's cache: for a caller that keeps its own.

        The middleware remembers verified ``Authorization`` headers itself, so a bearer token it
        has not seen is verified here once instead of being kept in two caches.
        """
        # Its grammar is checked first, on the direct path.
        return token_user(self.tokens.verify(token), self._normalizers)

    async def authenticate_bearer(self, token: str) -> WalletUser:
        """``authenticate_token`` plus, where revocation is enabled, the session's state.

        The check reads the session store once per request (a dictionary lookup in memory, one
        ``GET`` on Redis): a token of an ended session, or one a refresh has replaced, is
        refused; a store that cannot answer makes the request a 503.
        """
        user = self.authenticate_token(token)
        if self.revocation:
            state = await guarded(self.session_store.current(session_id(user.claims)))
            if state is not None and state != user.claims["jti"]:
                raise TokenInvalid()
        return user

    async def authenticate_cookie(self, scope: Scope) -> WalletUser | None:
        """The user of the auth cookie, CSRF checked; None without a cookie or with a stale one."""
        cookies = self.cookies
        token = None if cookies is None else cookies.token(scope)
        if token is None:
            return None
        assert cookies is not None
        try:
            user = await self.authenticate_bearer(token)
        except TokenInvalid:
            # A stale cookie is not an attack: the browser simply is not logged in.
            return None
        cookies.check_request(scope, user.claims)
        return user

    async def request_user(self, scope: Scope, *, state_changing: bool = False) -> WalletUser:
        """The user of a route that needs a credential: a bearer token, else the auth cookie.

        ``state_changing``: the route changes state even on a safe method (``GET /refresh``),
        so a cookie credential must carry the CSRF proof whatever the method.
        """
        token = bearer_token(scope)
        if token is not None:
            return await self.authenticate_bearer(token)
        cookies = self.cookies
        token = None if cookies is None else cookies.token(scope)
        if token is None:
            raise TokenMissing()
        assert cookies is not None
        user = await self.authenticate_bearer(token)
        cookies.check_request(scope, user.claims, state_changing=state_changing)
        return user

    def _session_ttl(self, claims: Mapping[str, Any]) -> float:
        # A session's state matters until its absolute end: no token of it lives longer.
        end = float(claims["auth_time"]) + self.settings.session_lifetime
        return max(1.0, end - self.clock())

    async def end_session(self, scope: Scope) -> WalletUser:
        """Log the caller's session out: every token of it, past and future, is refused.

        Any token of the session will do, even one a refresh has replaced since (a thief who
        refreshed first cannot keep the owner from logging out); one that ended already is 401.
        """
        token = bearer_token(scope)
        cookies = self.cookies
        from_cookie = token is None and cookies is not None
        if from_cookie:
            assert cookies is not None
            token = cookies.token(scope)
        if token is None:
            raise TokenMissing()
        user = self.authenticate_token(token)
        if from_cookie:
            assert cookies is not None
            cookies.check_request(scope, user.claims)
        sid = session_id(user.claims)
        if await guarded(self.session_store.current(sid)) == ENDED:
            raise TokenInvalid()
        await guarded(self.session_store.end(sid, self._session_ttl(user.claims)))
        return user

    # -- issuing -----------------------------------------------------------------------------

    async def start(
        self,
        scope: Scope,
        record: UserRecord,
        now: float,
        *,
        account_id: str | None = None,
        claims: Mapping[str, Any] | None = None,
        session: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """The token a login of ``record`` ends with, after the application's ``on_login`` hook.

        ``account_id`` (CAIP-10) tells chains apart in the token and ``request.user``; ``claims``
        are what the signed message grants (a ReCap). Gate scopes and the ENS name are added.
        ``session``: the claims of a token whose session this login re-authenticates (its
        ``sid`` is kept, and with revocation that token is retired, once).

        The hook runs before the caller stores the user: a refused login leaves nothing behind.
        """
        base: dict[str, Any] = {
            "userid": record.userid,
            "did_type": record.did_type,
            "did_value": record.address,
        }
        if account_id is not None:
            base["account_id"] = account_id
        if self.on_login is not None:  # the user object is only built for a hook to see
            user = WalletUser(
                address=record.address, userid=record.userid, did_type=record.did_type, claims=base
            )
            base = {**await run_hook(self.on_login, scope, user), **base}
        if claims:
            base.update(claims)
        base.update(await self.identity.login_claims(record.address, record.did_type, base))
        if session is None:
            base["sid"] = secrets.token_urlsafe(16)  # the session: kept by every refresh
            return self.tokens.issue(subject=record.address, auth_time=int(now), extra=base)
        base["sid"] = sid = session_id(session)
        jti = secrets.token_hex(16)
        ttl = max(1.0, int(now) + self.settings.session_lifetime - self.clock())
        if self.revocation and not await guarded(
            self.session_store.advance(sid, session["jti"], jti, ttl)
        ):
            raise TokenInvalid()  # ended, or another token of it was issued meanwhile
        return self.tokens.issue(subject=record.address, auth_time=int(now), extra=base, jti=jti)

    async def refresh(self, scope: Scope, user: WalletUser) -> IssuedToken:
        """A new token for the same session as ``user``'s; with revocation, the old one retired.

        The session moves to the new token id in one atomic step before the token exists, so a
        refresh is single use: of N concurrent refreshes of one token exactly one succeeds.
        """
        claims = user.claims
        carried = {k: v for k, v in claims.items() if k not in _RECOMPUTED_CLAIMS}
        carried["sid"] = sid = session_id(claims)
        extra = await run_hook(self.on_refresh, scope, user)
        # Gates are asked again: a wallet that sold its token loses the scope at refresh.
        rescoped, scope_claim = await self.identity.refresh_scope({**carried, **extra})
        if rescoped:
            carried.pop("scope", None)
            extra.pop("scope", None)
            if scope_claim is not None:
                extra["scope"] = scope_claim
        jti = secrets.token_hex(16)
        if self.revocation and not await guarded(
            self.session_store.advance(sid, claims["jti"], jti, self._session_ttl(claims))
        ):
            raise TokenInvalid()
        return self.tokens.issue(
            subject=user.address,
            auth_time=int(claims["auth_time"]),
            extra={**carried, **extra},
            jti=jti,
        )

    async def record(self, kind: str, scope: Scope, claims: Mapping[str, Any]) -> None:
        """The audit event of a request ending with a token of ``claims`` (503 if a store that
        must record it cannot)."""
        await self.identity.events.emit(event_from_claims(kind, scope, claims, self.clock()))

    def record_nowait(self, kind: str, scope: Scope, claims: Mapping[str, Any]) -> None:
        """The audit event of a request that must not fail on it (a logout): queued."""
        self.identity.events.emit_nowait(event_from_claims(kind, scope, claims, self.clock()))

    async def send_token(self, send: Send, issued: IssuedToken, **more: Any) -> None:
        """Answer with the token envelope (and its cookies where the cookie transport is on)."""
        claims = issued.claims
        expires_in = max(0, issued.expires_at - int(claims["iat"]))
        data: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_expired_at": issued.expires_at,
            "wallet_address": claims["sub"],
            "userid": claims.get("userid", claims["sub"]),
            "did_type": claims.get("did_type", "eth"),
            "did_value": claims.get("did_value", claims["sub"]),
        }
        data.update(more)
        headers: list[tuple[bytes, bytes]] = []
        if self.cookies is not None:
            data["csrf_token"], headers = self.cookies.login_cookies(
                issued.token, claims, expires_in
            )
        await send_ok(send, data, headers)


__all__ = ["Normalizers", "SessionLayer", "normalizers", "session_id", "token_user"]
