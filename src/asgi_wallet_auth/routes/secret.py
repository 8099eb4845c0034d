"""The secret flow: ``POST /login_random_secret`` hands out a single-use secret for a wallet, and
``POST /login`` redeems it with the wallet's signature over the secret itself or over a sign-in
message (EIP-4361, or the wallet's chain's own) whose nonce is the secret.

The path of one login, top to bottom in ``prove`` then ``login``: body -> field grammar (cheap
refusals first) -> the chain's message checks (and a ReCap's) -> the chain's signature proof ->
one atomic take of the secret -> ``on_login`` -> one atomic fold into the stored user -> the
audit event -> token. ``prove`` is shared with the re-authentication route.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from ..chains.base import ChainId, ChainRegistry, ChainVerifier
from ..core import Route, guarded, logger
from ..envelope import read_json, send_ok, string_field
from ..errors import (
    IdentityConflict,
    InvalidRequest,
    RateLimited,
    ReauthenticationMismatch,
    SecretRejected,
    StoreUnavailable,
    UnsupportedLoginMethod,
)
from ..events import LOGIN, note_claimed_address
from ..ratelimit import MemoryRateLimiter, RateLimit, RateLimiter, requester_key
from ..secret_terms import NO_TERMS, SecretTerms, bound_key, secret_keys, signed_terms
from ..sessions import SessionLayer
from ..settings import LoginSettings
from ..siwe import MAX_MESSAGE_LENGTH
from ..stores.base import NonceStore
from ..users import KEEP_ALL_DEVICES, UserRecord, UserStore

_SECRET_RE = re.compile(r"[A-Za-z0-9]{8,128}")
#: Longer than any chain's address text (Ethereum 42, Solana up to 44).
_MAX_ADDRESS_LENGTH = 64


def login_key(address: str, secret: str) -> str:
    """The nonce-store key of a secret: redeemable only by the wallet it was issued to.

    A login for another address finds nothing and burns nothing; canonical addresses keep the
    chains apart (an Ethereum address is never a Solana one).
    """
    return f"login:{address}:{secret}"


@dataclass(frozen=True, slots=True)
class Proof:
    """A redeemed secret: the wallet proven, the chain its message named, what it grants."""

    verifier: ChainVerifier
    address: str
    chain_id: ChainId
    now: float
    claims: Mapping[str, Any] = field(default_factory=dict)


class SecretLogin:
    """``/login_random_secret`` and ``/login`` on one ``WalletAuth``."""

    def __init__(
        self,
        settings: LoginSettings,
        *,
        domain: str,
        uri: str,
        chains: ChainRegistry,
        nonce_store: NonceStore,
        user_store: UserStore,
        sessions: SessionLayer,
        rate_limit: RateLimit | None,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.rate_limit = rate_limit
        # Outstanding secrets per requester: shared with the rate limiter where there is one
        # (Redis across workers), else counted in this process.
        self.outstanding: RateLimiter = (
            rate_limit.limiter if rate_limit is not None else MemoryRateLimiter(clock=clock)
        )
        self.domain = domain
        self.uri = uri
        self.chains = chains
        self.nonce_store = nonce_store
        self.user_store = user_store
        self.sessions = sessions
        self.clock = clock

    def routes(self) -> list[Route]:
        """The two routes, each counted against its rate limit."""
        return [
            Route("/login_random_secret", ("POST",), self.login_random_secret, limit="secret"),
            Route("/login", ("POST",), self.login, limit="attempt"),
        ]

    async def login_random_secret(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Issue a secret bound to the wallet address in the body."""
        settings = self.settings
        body = await read_json(scope, receive, settings.max_body_size)
        verifier, address = self.chains.for_address(
            string_field(body, "wallet_address", max_length=_MAX_ADDRESS_LENGTH)
        )
        # Fields the message must carry; only EIP-4361 messages are bound this way.
        terms = SecretTerms.from_body(body)
        if terms is not None and verifier.did_type != "eth":
            raise InvalidRequest("resources, request_id and not_before bind EIP-4361 messages")
        requester = self._requester(scope)
        if requester is not None:
            window = settings.nonce_lifetime
            issued = await guarded(self.outstanding.hit(f"outstanding:{requester}", window))
            if issued > settings.max_outstanding_secrets:
                wait = int(window - self.clock() % window) + 1  # until this window closes
                raise RateLimited(headers={"retry-after": str(wait)})
        for _ in range(3):  # a collision of 160 random bits does not happen; the loop is a guard
            secret = secrets.token_hex(20)
            if await guarded(
                self.nonce_store.put(
                    bound_key(login_key(address, secret), terms), "1", settings.nonce_lifetime
                )
            ):
                await send_ok(send, secret)
                return
        raise StoreUnavailable()

    def _requester(self, scope: Scope) -> str | None:
        # Whoever asks: the rate limit's notion of a client where one is set (it may read a
        # trusted proxy header), else the peer address. Without either (a unix socket and no
        # rate limit) nothing is capped: one shared bucket would let anyone lock everyone out.
        if self.rate_limit is not None:
            return self.rate_limit.requester(scope)
        client = scope.get("client")
        return requester_key(str(client[0])) if client and client[0] else None

    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Redeem a secret with the wallet's signature; answer with an access token."""
        proof = await self.prove(scope, receive)
        verifier, address, chain_id, now = proof.verifier, proof.address, proof.chain_id, proof.now
        stamp = float(now)
        account_id = verifier.account_id(address, chain_id)
        # One atomic fold into the stored user (a login without a userid of its own joins the
        # wallet's record, whatever userid it has, and only the login times change): a device
        # key or profile that a concurrent Web3MQ login of this wallet adds is never lost.
        login = UserRecord(address, address, verifier.did_type, stamp, stamp)
        if self.sessions.on_login is None:
            record = await guarded(self.user_store.merge(login, max_devices=KEEP_ALL_DEVICES))
            if record is None:
                raise IdentityConflict()
            issued = await self.sessions.start(
                scope, record, now, account_id=account_id, claims=proof.claims
            )
        else:
            # The hook sees the user before anything is stored: a refused login leaves nothing.
            current = await guarded(self.user_store.get_by_address(address))
            record = login if current is None else current.with_logins(current.first_login, stamp)
            issued = await self.sessions.start(
                scope, record, now, account_id=account_id, claims=proof.claims
            )
            merged = await guarded(self.user_store.merge(login, max_devices=KEEP_ALL_DEVICES))
            if merged is None or merged.userid != record.userid:
                raise IdentityConflict()  # renamed by a concurrent login: the token is stale
        logger.info("login ok: %s", address)
        await self.sessions.record(LOGIN, scope, issued.claims)
        await self.sessions.send_token(send, issued)

    async def prove(
        self, scope: Scope, receive: Receive, *, wallet: str | None = None
    ) -> Proof:
        """Read a ``/login`` body, prove the wallet's signature and take the secret, once.

        ``wallet``: the only address accepted (a re-authentication), refused before any proof.
        """
        settings = self.settings
        body = await read_json(scope, receive, settings.max_body_size)
        secret = string_field(body, "login_random_secret", max_length=128)
        if _SECRET_RE.fullmatch(secret) is None:
            raise InvalidRequest("invalid login_random_secret")
        verifier, address = self.chains.for_address(
            string_field(body, "wallet_address", max_length=_MAX_ADDRESS_LENGTH)
        )
        note_claimed_address(scope, address)
        if wallet is not None and address != wallet:
            raise ReauthenticationMismatch()
        signature = verifier.parse_signature(
            string_field(body, "signature", max_length=verifier.max_signature_length)
        )
        content = string_field(
            body, "signature_content", max_length=MAX_MESSAGE_LENGTH, required=False
        )
        now = self.clock()
        if content is None:
            if not settings.allow_raw_secret:
                raise UnsupportedLoginMethod(
                    "this service requires an EIP-4361 message in signature_content"
                )
            message, chain_id = secret.encode("ascii"), None
            signed = NO_TERMS
        else:
            chain_id = verifier.check_sign_in(
                content,
                domain=self.domain,
                uri=self.uri,
                nonce=secret,
                address=address,
                now=now,
                skew=settings.clock_skew,
            )
            message = content.encode("utf-8")
            # ReCaps and bound fields: EIP-4361's optional fields, checked before the proof.
            signed = signed_terms(content) if verifier.did_type == "eth" else NO_TERMS
        # The proof before the store: a failed attempt must not burn the secret.
        await verifier.verify(message, signature, address, chain_id=chain_id)
        # A secret issued with terms is only under its terms' key: one atomic take finds it.
        for key in secret_keys(login_key(address, secret), signed.terms):
            if await guarded(self.nonce_store.take(key)) is not None:
                break
        else:
            raise SecretRejected()
        return Proof(verifier, address, chain_id, now, signed.claims)


__all__ = ["Proof", "SecretLogin", "login_key"]
