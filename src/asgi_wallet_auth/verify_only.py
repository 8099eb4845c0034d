"""``JwksAuthenticator``: check this package's tokens in a service that cannot issue them.

Hand it to the ordinary middleware, ``WalletAuthMiddleware(app, auth=JwksAuthenticator(...))``:
``request.user``, ``request.auth`` and the FastAPI dependencies then work as in the login service,
with public keys only (a JWKS URL, or a local ``KeySet``) and, optionally, the login service's
session store (its Redis) so that a logged-out session is refused here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import Receive, Scope

from .caches import make_room
from .chains.base import ChainVerifier
from .chains.ethereum import EthereumVerifier
from .chains.solana import SolanaVerifier
from .core import guarded
from .errors import TokenInvalid
from .jwks import JwksFetcher
from .jws import VerifyFn, split, verified_claims, verify_table
from .keys import KeySet
from .sessions import normalizers, session_id, token_user
from .stores.base import ENDED, SessionStore
from .tokens import claims_checker
from .users import WalletUser


class JwksAuthenticator:
    """An ``Authenticator`` from public keys: tokens verified, never issued.

    Give ``jwks_url`` (fetched with httpx; ``fetcher=JwksFetcher(...)`` to tune it) or ``keys``
    (a local ``KeySet``: its next, current and previous keys verify), and the ``issuer`` and
    ``audience`` the login service writes (its ``uri`` by default). ``session_store``: the login
    service's, to refuse ended and replaced sessions. ``max_session_lifetime``: refuse tokens that
    outlive their login by more (the login service's ``session_lifetime``). ``cache_size``
    verified tokens are kept; a change of the published keys drops them all. ``chains``: the
    chains whose wallets the login service signs in (the built-in Ethereum and Solana by
    default); a token's subject is held to its chain's canonical form, as the login service
    holds it, and a token of another chain is refused.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        keys: KeySet | None = None,
        fetcher: JwksFetcher | None = None,
        session_store: SessionStore | None = None,
        max_session_lifetime: float | None = None,
        cache_size: int = 4096,
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
        chains: Iterable[ChainVerifier] | None = None,
    ) -> None:
        sources = [s for s in (jwks_url, keys, fetcher) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of jwks_url='https://auth.example.com/.well-known/jwks.json', "
                "keys=KeySet(...) or fetcher=JwksFetcher(...)"
            )
        for name, value in (("issuer", issuer), ("audience", audience)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be the login service's (its uri by default)")
        if keys is not None and not isinstance(keys, KeySet):
            raise ValueError("keys must be a KeySet(...)")
        if session_store is not None and not isinstance(session_store, SessionStore):
            raise ValueError("session_store must implement the SessionStore protocol")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0 (0 disables); got {cache_size!r}")
        if not callable(clock):
            raise ValueError("clock must be a callable returning Unix time in seconds")
        if chains is None:  # the built-in chains; their address grammars never overlap
            chains = (EthereumVerifier(), SolanaVerifier(chain_ids=None))
        verifiers: tuple[ChainVerifier, ...] = tuple(chains)
        if not verifiers or not all(isinstance(c, ChainVerifier) for c in verifiers):
            raise ValueError(
                "chains must be ChainVerifiers, those of the login service, "
                "e.g. chains=[EthereumVerifier(), SolanaVerifier()]"
            )
        self._normalizers = normalizers({chain.did_type: chain for chain in verifiers})
        if jwks_url is not None:
            fetcher = JwksFetcher(jwks_url, clock=clock)
        self.fetcher = fetcher
        self._local: dict[str, VerifyFn] = {} if keys is None else verify_table(keys.verifying())
        self.issuer, self.audience = issuer, audience
        self.session_store = session_store
        self.max_session_lifetime = max_session_lifetime
        self.leeway = leeway
        self._check = claims_checker(
            issuer=issuer, audience=audience, leeway=leeway, session_lifetime=max_session_lifetime
        )
        self._clock = clock
        self._cache_size = cache_size
        self._cache: dict[str, tuple[WalletUser, int]] = {}  # bounded by make_room
        self._generation = 0

    # -- what the middleware reads -------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        """The Unix-time source tokens are checked against."""
        return self._clock

    @property
    def revocation(self) -> bool:
        """Whether a verdict can change before expiry: a key withdrawn from the JWKS, a session
        ended in the login service's store.

        Then the middleware asks ``authenticate_bearer`` on every request, which may fetch keys;
        repeat tokens are still a dictionary hit here. With a local key set and no session store
        nothing can change a verdict but the clock, and the middleware keeps verdicts itself.
        """
        return self.fetcher is not None or self.session_store is not None

    @property
    def token_cache_size(self) -> int:
        """How many verified tokens are kept."""
        return self._cache_size

    def authenticate_token(self, token: str) -> WalletUser:
        """A token's user from the keys at hand (no fetch, no session store); ``TokenInvalid``.

        No cache either: the middleware keeps verdicts itself where they cannot change
        (``revocation`` false), and ``authenticate_bearer`` keeps them here otherwise.
        """
        parts = split(token)
        if parts is None:
            raise TokenInvalid()
        table = self._local if self.fetcher is None else self.fetcher.table
        verify = table.get(parts[0])
        if verify is None:
            raise TokenInvalid()
        return self._user(verified_claims(verify, parts))

    async def authenticate_bearer(self, token: str) -> WalletUser:
        """The user of a valid token: keys fetched as needed, then the session store if any."""
        user = await self._verified(token)
        store = self.session_store
        if store is not None:
            state = await guarded(store.current(session_id(user.claims)))
            if state is not None and (state == ENDED or state != user.claims["jti"]):
                raise TokenInvalid()
        return user

    async def _verified(self, token: str) -> WalletUser:
        fetcher = self.fetcher
        cache = self._cache
        fetched = False
        if fetcher is not None:
            if fetcher.stale():  # even a cached verdict waits for a due refetch
                await fetcher.refresh()
                fetched = True
            if fetcher.generation != self._generation:
                cache.clear()  # the published keys changed: a withdrawn key's tokens must go
                self._generation = fetcher.generation
        hit = cache.get(token)
        if hit is not None:
            if self._clock() < hit[1]:
                return hit[0]
            cache.pop(token, None)
        parts = split(token)
        if parts is None:
            raise TokenInvalid()
        verify = (
            self._local.get(parts[0])
            if fetcher is None
            else await fetcher.verifier(parts[0], just_fetched=fetched)
        )
        if verify is None:
            raise TokenInvalid()
        user = self._user(verified_claims(verify, parts))
        if fetcher is not None and fetcher.generation != self._generation:
            cache.clear()
            self._generation = fetcher.generation
        if self._cache_size:
            if len(cache) >= self._cache_size:
                make_room(cache, self._cache_size)
            cache[token] = (user, user.claims["exp"])
        return user

    def _user(self, claims: dict[str, Any]) -> WalletUser:
        self._check(claims, self._clock())
        return token_user(claims, self._normalizers)

    async def authenticate_cookie(self, scope: Scope) -> WalletUser | None:
        """None: the login service's cookies are its own (a bearer token is the credential)."""
        return None

    async def authenticate_signed(
        self, scope: Scope, receive: Receive
    ) -> tuple[WalletUser | None, Receive]:
        """None: Web3MQ signed requests need the login service's user store."""
        return None, receive

    async def refresh(self) -> bool:
        """Fetch the JWKS now (at startup, say); False if it failed. True with local keys."""
        return True if self.fetcher is None else await self.fetcher.refresh()

    async def aclose(self) -> None:
        """Close the fetcher's HTTP client."""
        if self.fetcher is not None:
            await self.fetcher.aclose()


__all__ = ["JwksAuthenticator"]
