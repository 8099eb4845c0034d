"""``WalletAuth``: the one object users configure; it composes the route families and routes.

How a request flows: ``__call__`` finds the ``Route`` for the path (each route family registers
its own), checks the method, applies the route's rate limit, and calls the family's handler; a
``WalletAuthError`` raised anywhere below becomes its envelope. docs/architecture.md has the map.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

from .chains.base import ChainRegistry, ChainVerifier, ServiceConnections
from .chains.ethereum import EthereumVerifier
from .compat import settings_from_keywords, warn_legacy
from .cookies import CookieSettings
from .core import Route, logger
from .cors import CorsPolicy, CorsSettings
from .envelope import send_error
from .errors import MethodNotAllowed, NotFound, WalletAuthError
from .events import refusal_event
from .identity import IdentityLayer, IdentitySettings
from .ratelimit import RateLimit
from .routes.keys import KeyRoutes
from .routes.reauth import Reauthentication
from .routes.secret import SecretLogin
from .routes.session import SessionRoutes
from .routes.siwe import SignInInfo
from .routes.web3mq import Web3MQLogin
from .routes.web3mq_profile import Web3MQProfileRoutes
from .routes.web3mq_v2 import Web3MQV2Routes
from .sessions import SessionLayer
from .settings import (
    LoginHook,
    LoginSettings,
    SignedContentHook,
    TokenSettings,
    Web3MQSettings,
    Web3MQV2Settings,
    check_domain_and_uri,
)
from .signed_requests import SignedRequests
from .stores.base import NonceStore, SessionStore
from .stores.memory import MemoryNonceStore, MemorySessionStore
from .tokens import TokenService
from .users import KeyedUserStore, MemoryUserStore, UserStore, WalletUser


def _secret_bytes(secret_key: object) -> bytes:
    key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    if not isinstance(key, bytes) or len(key) < 32:
        raise ValueError(
            "secret_key must be at least 32 bytes; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and keep it secret"
        )
    return key


def _registry(chains: Iterable[ChainVerifier] | None) -> ChainRegistry:
    if chains is None:
        return ChainRegistry({"eth": EthereumVerifier()})
    if isinstance(chains, ChainRegistry):
        return chains
    verifiers = list(chains)
    names = [getattr(v, "did_type", None) for v in verifiers]
    if len(set(names)) != len(names):
        raise ValueError(f"chains must have one verifier per did_type; got {names}")
    return ChainRegistry({str(n): v for n, v in zip(names, verifiers, strict=True)})


class WalletAuth:
    """Wallet login for ASGI: configure it once, mount it, and hand it to the middleware.

    The object is itself the ASGI application serving ``POST /login_random_secret``,
    ``POST /login``, ``GET /refresh`` and ``POST /api/user_login/`` (relative to where it is
    mounted). Every setting is checked here, so a misconfiguration fails at start-up with the
    fix in the message. Settings come in groups: ``tokens=TokenSettings(...)``,
    ``login=LoginSettings(...)``, ``web3mq=Web3MQSettings(...)``, ``cookie=CookieSettings(...)``,
    ``rate_limit=RateLimit(...)``; ``Web3MQSettings(v2=Web3MQV2Settings())`` adds the routes
    Web3MQ's JavaScript SDK calls (docs/web3mq.md); ``chains`` lists the chains whose wallets
    may log in (default: Ethereum, any chain id). ``cors=CorsSettings(...)`` lets dapps on other
    origins call the routes from a browser (docs/browser.md); ``GET /siwe`` tells them what to sign.
    ``GET /.well-known/jwks.json`` publishes the public keys of ``TokenSettings(keys=...)``
    (docs/keys.md).
    """

    def __init__(
        self,
        *,
        secret_key: str | bytes,
        domain: str,
        uri: str,
        nonce_store: NonceStore | None = None,
        user_store: UserStore | None = None,
        replay_store: NonceStore | None = None,
        chains: Iterable[ChainVerifier] | None = None,
        tokens: TokenSettings | None = None,
        login: LoginSettings | None = None,
        web3mq: Web3MQSettings | None = None,
        cookie: CookieSettings | None = None,
        rate_limit: RateLimit | None = None,
        cors: CorsSettings | None = None,
        on_login: LoginHook | None = None,
        on_refresh: LoginHook | None = None,
        clock: Callable[[], float] = time.time,
        identity: IdentitySettings | None = None,
        **legacy: Any,
    ) -> None:
        if legacy:
            # Keywords of the flat constructor of 0.1: mapped onto the settings for one release.
            moved = settings_from_keywords(
                tokens=tokens, login=login, web3mq=web3mq, chains=chains, **legacy
            )
            warn_legacy(legacy)
            tokens, login, web3mq, chains = (
                moved["tokens"], moved["login"], moved["web3mq"], moved["chains"]
            )
        key = _secret_bytes(secret_key)
        self.domain, self.uri = check_domain_and_uri(domain, uri)
        self.token_settings = tokens if tokens is not None else TokenSettings()
        self.login_settings = login if login is not None else LoginSettings()
        self.web3mq_settings = web3mq if web3mq is not None else Web3MQSettings()
        for name, value, kind in (
            ("tokens", self.token_settings, TokenSettings),
            ("login", self.login_settings, LoginSettings),
            ("web3mq", self.web3mq_settings, Web3MQSettings),
            ("cookie", cookie, CookieSettings),
            ("rate_limit", rate_limit, RateLimit),
            ("cors", cors, CorsSettings),
            ("identity", identity, IdentitySettings),
        ):
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be None or a {kind.__name__}(...)")
        if not callable(clock):
            raise ValueError("clock must be a callable returning Unix time in seconds")
        self.clock = clock
        self.chains = _registry(chains)
        # Never evicting: a flood of secrets must not displace anyone's pending one. Each
        # requester's share is capped (LoginSettings.max_outstanding_secrets); a full store
        # answers 503 to new requests instead.
        self.nonce_store: NonceStore = (
            nonce_store if nonce_store is not None else MemoryNonceStore(clock=clock, evict=False)
        )
        self.user_store: UserStore = user_store if user_store is not None else MemoryUserStore()
        if replay_store is None:
            # Replay markers must never be evicted early (a dropped marker re-opens a replay),
            # and a flood of secrets must not fill their room: in memory they get a store of
            # their own; a shared nonce store (Redis, bounded only by its server) serves both.
            in_memory = isinstance(self.nonce_store, MemoryNonceStore)
            replay_store = (
                MemoryNonceStore(clock=clock, evict=False) if in_memory else self.nonce_store
            )
        self.replay_store: NonceStore = replay_store
        for name, store, proto in (
            ("nonce_store", self.nonce_store, NonceStore),
            ("user_store", self.user_store, UserStore),
            ("replay_store", self.replay_store, NonceStore),
        ):
            if not isinstance(store, proto):
                raise ValueError(f"{name} must implement the {proto.__name__} protocol")
        self.cookie = cookie
        self.rate_limit = rate_limit
        self.cors = cors
        # The CSRF header travels cross-origin too: a preflight must allow it.
        self.cors_policy = (
            None
            if cors is None
            else CorsPolicy(cors, extra_headers=() if cookie is None else [cookie.csrf_header_name])
        )
        # Audit events, webhooks, gates and names (docs/identity.md): inert when None.
        self.identity = IdentityLayer(identity, chains=self.chains, clock=clock)

        self.sessions = SessionLayer(
            secret_key=key,
            settings=self.token_settings,
            uri=self.uri,
            chains=self.chains,
            session_store=self._session_store(),
            cookie=cookie,
            on_login=on_login,
            on_refresh=on_refresh,
            clock=clock,
            identity=self.identity,
        )
        self.signed = SignedRequests(
            self.web3mq_settings,
            user_store=self.user_store,
            replay_store=self.replay_store,
            max_body_size=self.login_settings.max_body_size,
            clock=clock,
        )
        secret_login = SecretLogin(
            self.login_settings,
            domain=self.domain,
            uri=self.uri,
            chains=self.chains,
            nonce_store=self.nonce_store,
            user_store=self.user_store,
            sessions=self.sessions,
            rate_limit=rate_limit,
            clock=clock,
        )
        families = (
            secret_login,
            Web3MQLogin(
                self.web3mq_settings,
                uri=self.uri,
                max_body_size=self.login_settings.max_body_size,
                chains=self.chains,
                replay_store=self.replay_store,
                user_store=self.user_store,
                sessions=self.sessions,
                clock=clock,
            ),
            SessionRoutes(self.sessions),
            *self._web3mq_v2_families(self.web3mq_settings.v2),
            SignInInfo(
                self.login_settings,
                domain=self.domain,
                uri=self.uri,
                chains=self.chains,
                cookie=cookie,
                logout=self.token_settings.revocation,
                clock=clock,
            ),
            KeyRoutes(self.sessions.tokens.keys),
            Reauthentication(secret_login, self.sessions),
        )
        self.routes: Mapping[str, Route] = {
            route.path: route for family in families for route in family.routes()
        }
        # The middleware's calls go straight to the session layer: no extra frame per request.
        self.authenticate_token = self.sessions.authenticate_token
        self.verify_token = self.sessions.verify_token
        self.authenticate_bearer = self.sessions.authenticate_bearer
        self.authenticate_cookie = self.sessions.authenticate_cookie

    def _web3mq_v2_families(
        self, settings: Web3MQV2Settings | None
    ) -> tuple[Web3MQV2Routes, Web3MQProfileRoutes] | tuple[()]:
        """Web3MQ's SDK routes (``Web3MQSettings(v2=...)``), on a store that keeps keys."""
        if settings is None:
            return ()
        store = self.user_store
        if not isinstance(store, KeyedUserStore):
            raise ValueError(
                "Web3MQSettings(v2=...) needs a user store that keeps main keys, session keys "
                "and bound wallets (KeyedUserStore): use MemoryUserStore, SQLiteUserStore or "
                "PostgresUserStore, or add get_by_wallet and update to yours"
            )
        common: dict[str, Any] = {
            "uri": self.uri,
            "max_body_size": self.login_settings.max_body_size,
            "chains": self.chains,
            "replay_store": self.replay_store,
            "user_store": store,
            "clock": self.clock,
        }
        return (
            Web3MQV2Routes(settings, self.web3mq_settings, sessions=self.sessions, **common),
            Web3MQProfileRoutes(settings, self.web3mq_settings, signed=self.signed, **common),
        )

    def _session_store(self) -> SessionStore:
        # Revocations live apart from Web3MQ replay markers: filling one never blocks the other.
        store = self.token_settings.session_store
        if store is not None:
            return store
        # A RedisNonceStore means many workers: the sessions go to the same Redis. Its module is
        # imported already wherever one exists (and redis may not be installed at all).
        redis_stores = sys.modules.get("asgi_wallet_auth.stores.redis")
        if redis_stores is not None and isinstance(self.nonce_store, redis_stores.RedisNonceStore):
            client, prefix = self.nonce_store.client, self.nonce_store.prefix
            return redis_stores.RedisSessionStore(client, prefix=f"{prefix}session:")  # type: ignore[no-any-return]
        return MemorySessionStore(clock=self.clock)

    # -- what the middleware and applications read ------------------------------------------

    @property
    def tokens(self) -> TokenService:
        """The token service: issues and verifies this service's access tokens."""
        return self.sessions.tokens

    @property
    def revocation(self) -> bool:
        """Whether ended sessions are remembered (``TokenSettings(revocation=True)``)."""
        return self.token_settings.revocation

    @property
    def token_cache_size(self) -> int:
        """How many verified tokens are kept for the middleware's hot path."""
        return self.token_settings.cache_size

    @property
    def max_body_size(self) -> int:
        """The request-body cap of the login routes (``LoginSettings.max_body_size``)."""
        return self.login_settings.max_body_size

    @property
    def signed_requests(self) -> bool:
        """Whether Web3MQ request signatures are a credential (``Web3MQSettings``)."""
        return self.web3mq_settings.signed_requests

    async def authenticate_signed(
        self, scope: Scope, receive: Receive
    ) -> tuple[WalletUser | None, Receive]:
        """The user of a Web3MQ signed request where those are enabled (None: not one)."""
        if not self.web3mq_settings.signed_requests:
            return None, receive
        return await self.signed.user(scope, receive)

    def cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The ``Access-Control-*`` headers for an answer to ``scope`` (none without ``cors``)."""
        policy = self.cors_policy
        return [] if policy is None else policy.response_headers(scope)

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the login routes; other scopes are answered as a bare ASGI app would."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        policy = self.cors_policy
        if policy is not None:
            send = policy.wrap(scope, send)  # every answer below, refusals included
        try:
            route = self._route(scope)
            if policy is not None and policy.is_preflight(scope):
                await policy.preflight(scope, send, route.methods)
                return
            if scope["method"] not in route.methods:
                raise MethodNotAllowed(headers={"allow": ", ".join(route.methods)})
            limit = self.rate_limit
            if limit is None or route.limit is None:
                await route.handler(scope, receive, send)
            else:
                await limit.call(
                    route.limit, scope, self.clock(), lambda: route.handler(scope, receive, send)
                )
        except WalletAuthError as error:
            # %r: the path is client input, and a newline in it must not forge a log line.
            logger.info(
                "refused %r: code=%d (%s)", scope.get("path"), error.code, type(error).__name__
            )
            self.identity.events.emit_nowait(
                refusal_event(scope, error.code, type(error).__name__, self.clock())
            )
            await send_error(send, error)

    def _route(self, scope: Scope) -> Route:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        # Mounted: Starlette keeps the full path and puts the mount prefix in root_path.
        if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
            path = path[len(root) :] or "/"
        route = self.routes.get(path)
        if route is None:
            raise NotFound()
        return route

    async def startup(self) -> None:
        """Check what talks to other services before serving (each chain's RPC nodes).

        Run by the lifespan when this app is served on its own; an application that mounts it
        calls it from its own lifespan (``asgi-wallet-auth serve`` does). ``ValueError`` for a
        misconfiguration, such as an RPC URL that serves another chain.
        """
        for verifier in self.chains.values():
            if isinstance(verifier, ServiceConnections):
                await verifier.startup()
        await self.identity.startup()  # the audit-event writer and the webhook workers

    async def aclose(self) -> None:
        """Close the connections ``startup`` checked; write queued events, stop the workers."""
        await self.identity.aclose()
        for verifier in self.chains.values():
            if isinstance(verifier, ServiceConnections):
                await verifier.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ValueError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


__all__ = ["LoginHook", "SignedContentHook", "WalletAuth"]
