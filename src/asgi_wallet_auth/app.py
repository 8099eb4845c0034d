"""``WalletAuth``: the settings, the login routes and the ASGI application to mount."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .cookies import SAFE_METHODS, CookieSettings, CsrfTokens, read_cookies, same_origin
from .envelope import header, read_json, send_error, send_ok, string_field
from .errors import (
    AuthenticationFailed,
    CsrfRejected,
    IdentityConflict,
    InvalidRequest,
    LoginRefused,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    ReplayRejected,
    SecretRejected,
    SignedRequestRejected,
    StoreUnavailable,
    TokenInvalid,
    TokenMissing,
    UnsupportedLoginMethod,
    WalletAuthError,
)
from .middleware import bearer_token
from .ratelimit import RateLimit
from .signatures import parse_address, parse_signature, verify_wallet_signature
from .siwe import MAX_MESSAGE_LENGTH, SiweMessage
from .stores.base import NonceStore
from .stores.memory import MemoryNonceStore
from .tokens import RESERVED_CLAIMS, IssuedToken, TokenService
from .users import MemoryUserStore, UserRecord, UserStore, WalletUser, merge_login
from .web3mq import (
    DEFAULT_DID_VERIFIERS,
    DidVerifier,
    check_avatar_url,
    check_nickname,
    check_signature_content,
    check_timestamp,
    check_userid,
    decode_avatar,
    decode_request_signature,
    encoded_avatar_limit,
    nonce_content,
    parse_ed25519_public_key,
    verify_request_signature,
)

logger = logging.getLogger("asgi_wallet_auth")

#: An application hook run after the wallet is proven: may raise ``LoginRefused`` (or any
#: ``WalletAuthError``) to refuse, or return extra claims for the access token.
LoginHook = Callable[[Request, WalletUser], Awaitable[Mapping[str, Any] | None]]
#: What a Web3MQ signed request signs, per route: given the scope and the request's parameters
#: (query or JSON body, including ``userid`` and ``timestamp``), the text that was signed.
SignedContentHook = Callable[[Scope, Mapping[str, Any]], str]

DAY = 86_400.0
_SECRET_RE = re.compile(r"[A-Za-z0-9]{8,128}")
_Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
    return float(value)


def _check_domain_and_uri(domain: object, uri: object) -> tuple[str, str]:
    if not isinstance(domain, str) or not domain:
        raise ValueError(
            "domain is required: the host (and port, if not the default) users see, "
            "e.g. domain='example.com'"
        )
    if not isinstance(uri, str) or not uri:
        raise ValueError("uri is required: the site's origin, e.g. uri='https://example.com'")
    if "/" in domain or "@" in domain or domain != domain.strip():
        raise ValueError(f"domain must be a bare host[:port] such as 'example.com', not {domain!r}")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ValueError(f"uri is not a valid URL: {uri!r}") from exc
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"uri must start with https:// (or http:// for local use); got {uri!r}")
    if parts.netloc != domain:
        raise ValueError(
            f"uri's authority {parts.netloc!r} must equal domain {domain!r}: wallets show the "
            "domain, and the signed message binds both; set uri='https://" + domain + "'"
        )
    return domain, uri


class WalletAuth:
    """Wallet login for ASGI: configure it once, mount it, and hand it to the middleware.

    The object is itself the ASGI application serving ``POST /login_random_secret``,
    ``POST /login`` and ``GET /refresh`` (relative to where it is mounted). Every setting is
    checked here, so a misconfiguration fails at start-up with the fix in the message.
    """

    def __init__(
        self,
        *,
        secret_key: str | bytes,
        domain: str,
        uri: str,
        nonce_store: NonceStore | None = None,
        user_store: UserStore | None = None,
        token_lifetime: float = 7 * DAY,
        session_lifetime: float = 30 * DAY,
        nonce_lifetime: float = 300.0,
        chain_ids: Collection[int] | None = None,
        allow_raw_secret: bool = True,
        clock_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_body_size: int = 16 * 1024,
        issuer: str | None = None,
        audience: str | None = None,
        algorithm: str = "HS256",
        on_login: LoginHook | None = None,
        on_refresh: LoginHook | None = None,
        replay_store: NonceStore | None = None,
        web3mq_uris: Collection[str] | None = None,
        timestamp_window: tuple[float, float] = (300.0, 60.0),
        did_verifiers: Mapping[str, DidVerifier] | None = None,
        max_devices: int = 16,
        max_avatar_size: int = 256 * 1024,
        max_nickname_length: int = 64,
        signed_requests: bool = False,
        signed_content: SignedContentHook | None = None,
        revocation: bool = False,
        cookie: CookieSettings | None = None,
        token_cache_size: int = 4096,
        rate_limit: RateLimit | None = None,
    ) -> None:
        key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
        if not isinstance(key, bytes) or len(key) < 32:
            raise ValueError(
                "secret_key must be at least 32 bytes; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and keep it secret"
            )
        self.domain, self.uri = _check_domain_and_uri(domain, uri)
        self.token_lifetime = _positive("token_lifetime", token_lifetime)
        self.session_lifetime = _positive("session_lifetime", session_lifetime)
        self.nonce_lifetime = _positive("nonce_lifetime", nonce_lifetime)
        if (
            isinstance(clock_skew, bool)
            or not isinstance(clock_skew, (int, float))
            or not (0 <= clock_skew <= 600)
        ):
            raise ValueError(f"clock_skew must be between 0 and 600 seconds; got {clock_skew!r}")
        self.clock_skew = float(clock_skew)
        if chain_ids is not None:
            chain_ids = frozenset(chain_ids)
            if not chain_ids or any(
                isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in chain_ids
            ):
                raise ValueError(
                    "chain_ids must be None (any chain) or a non-empty set of positive chain ids, "
                    "e.g. chain_ids={1}"
                )
        self.chain_ids: frozenset[int] | None = chain_ids
        if not isinstance(max_body_size, int) or max_body_size < 1024:
            raise ValueError(
                f"max_body_size must be an int of at least 1024; got {max_body_size!r}"
            )
        self.max_body_size = max_body_size
        if not callable(clock):
            raise ValueError("clock must be a callable returning Unix time in seconds")
        self.clock = clock
        self.allow_raw_secret = bool(allow_raw_secret)
        self.nonce_store: NonceStore = (
            nonce_store if nonce_store is not None else MemoryNonceStore(clock=clock)
        )
        self.user_store: UserStore = user_store if user_store is not None else MemoryUserStore()
        for name, store, proto in (
            ("nonce_store", self.nonce_store, NonceStore),
            ("user_store", self.user_store, UserStore),
        ):
            if not isinstance(store, proto):
                raise ValueError(f"{name} must implement the {proto.__name__} protocol")
        self.on_login = on_login
        self.on_refresh = on_refresh
        # Replay markers must never be evicted early: a dropped marker would re-open a replay.
        if replay_store is None:
            # A shared nonce store (Redis) serves replay markers too; an evicting memory store
            # must not, so it gets a non-evicting sibling.
            evicting = isinstance(self.nonce_store, MemoryNonceStore) and self.nonce_store.evicts
            replay_store = (
                MemoryNonceStore(clock=clock, evict=False) if evicting else self.nonce_store
            )
        self.replay_store: NonceStore = replay_store
        if not isinstance(self.replay_store, NonceStore):
            raise ValueError("replay_store must implement the NonceStore protocol")
        uris = (self.uri,) if web3mq_uris is None else tuple(web3mq_uris)
        if (
            not uris
            or any(not isinstance(u, str) or not u for u in uris)
            or isinstance(web3mq_uris, str)
        ):
            raise ValueError(
                "web3mq_uris must be a non-empty list of URIs, e.g. web3mq_uris=['https://example.com']"
            )
        self.web3mq_uris: frozenset[str] = frozenset(uris)
        if (
            not isinstance(timestamp_window, tuple)
            or len(timestamp_window) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in timestamp_window)
            or not 0 < timestamp_window[0] <= DAY
            or not 0 <= timestamp_window[1] <= 3600
        ):
            raise ValueError(
                "timestamp_window must be (seconds back, seconds ahead), e.g. (300.0, 60.0): "
                "back in (0, 86400], ahead in [0, 3600]"
            )
        self.timestamp_window = (float(timestamp_window[0]), float(timestamp_window[1]))
        self.did_verifiers: Mapping[str, DidVerifier] = dict(
            DEFAULT_DID_VERIFIERS if did_verifiers is None else did_verifiers
        )
        if not self.did_verifiers:
            raise ValueError("did_verifiers must name at least one did type, e.g. {'eth': ...}")
        for name, value, low in (
            ("max_devices", max_devices, 1),
            ("max_avatar_size", max_avatar_size, 1024),
            ("max_nickname_length", max_nickname_length, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int of at least {low}; got {value!r}")
        self.max_devices = max_devices
        self.max_avatar_size = max_avatar_size
        self.max_nickname_length = max_nickname_length
        self.signed_requests = bool(signed_requests)
        if signed_content is not None and not callable(signed_content):
            raise ValueError("signed_content must be a callable (scope, params) -> str")
        self.signed_content = signed_content
        self.revocation = bool(revocation)
        if cookie is not None and not isinstance(cookie, CookieSettings):
            raise ValueError("cookie must be None or a CookieSettings(...)")
        self.cookie = cookie
        self.csrf = CsrfTokens(key, self.session_lifetime)
        if (
            isinstance(token_cache_size, bool)
            or not isinstance(token_cache_size, int)
            or (token_cache_size < 0)
        ):
            raise ValueError(
                f"token_cache_size must be an int >= 0 (0 disables); got {token_cache_size!r}"
            )
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ValueError("rate_limit must be None or a RateLimit(...)")
        self.rate_limit = rate_limit
        # Already-verified tokens: the middleware's hot path becomes a dictionary hit. A plain
        # dict (oldest evicted first) costs a fraction of an LRU's bookkeeping per request.
        self.token_cache_size = token_cache_size
        self._token_cache: dict[str, tuple[WalletUser, int]] = {}
        self.tokens = TokenService(
            secret_key=key,
            issuer=issuer or self.uri,
            audience=audience or self.uri,
            lifetime=self.token_lifetime,
            session_lifetime=self.session_lifetime,
            algorithm=algorithm,
            clock=clock,
        )
        self._routes: dict[str, tuple[str, _Handler]] = {
            "/login_random_secret": ("POST", self._login_random_secret),
            "/login": ("POST", self._login),
            "/refresh": ("GET", self._refresh),
            "/api/user_login/": ("POST", self._user_login),
        }
        if self.revocation:
            self._routes["/logout"] = ("POST", self._logout)
        self._limited = {self._login_random_secret, self._login, self._user_login}
        self._user_login_body_cap = max_body_size + encoded_avatar_limit(max_avatar_size)

    # -- credentials -----------------------------------------------------------------------

    def cookie_token(self, scope: Scope) -> str | None:
        """The access token in the auth cookie, where cookie transport is enabled."""
        if self.cookie is None:
            return None
        try:
            value = read_cookies(scope).get(self.cookie.name)
        except WalletAuthError:
            return None
        return value or None

    def check_cookie_request(self, scope: Scope, user: WalletUser) -> None:
        """Refuse a cookie-authenticated request that a cross-site page could have made.

        Unsafe http methods need the CSRF header, equal to the CSRF cookie and issued for this
        session; a websocket needs the service's own ``Origin``.
        """
        assert self.cookie is not None
        if scope["type"] == "websocket":
            if not same_origin(scope, self.uri):
                raise CsrfRejected("websocket from another origin")
            return
        if scope["method"] in SAFE_METHODS:
            return
        try:
            sent = header(scope, self.cookie.csrf_header_name.encode("latin-1"))
            cookie_value = read_cookies(scope).get(self.cookie.csrf_cookie_name)
        except WalletAuthError:
            raise CsrfRejected() from None
        if sent is None or not cookie_value or not sent.isascii() or not cookie_value.isascii():
            raise CsrfRejected()  # compare_digest would raise on non-ASCII text
        token = sent.decode("latin-1")
        if not hmac.compare_digest(token, cookie_value) or not self.csrf.valid(
            token, CsrfTokens.session_id(dict(user.claims))
        ):
            raise CsrfRejected()

    async def _request_user(self, scope: Scope) -> WalletUser:
        # The credential of a route that needs one: a bearer token, else the auth cookie.
        token = bearer_token(scope)
        if token is not None:
            return await self.authenticate_bearer(token)
        token = self.cookie_token(scope)
        if token is None:
            raise TokenMissing()
        user = await self.authenticate_bearer(token)
        self.check_cookie_request(scope, user)
        return user

    async def authenticate_bearer(self, token: str) -> WalletUser:
        """``authenticate_token`` plus, where revocation is enabled, the revocation check.

        The check reads the replay store once per request (a dictionary lookup in memory, one
        ``EXISTS`` round trip on Redis); a store that cannot answer makes the request a 503.
        """
        user = self.authenticate_token(token)
        if self.revocation and await self._store(
            self.replay_store.exists(_revoked_key(user.claims["jti"]))
        ):
            raise TokenInvalid()
        return user

    async def revoke(self, claims: Mapping[str, Any]) -> bool:
        """Revoke the token with these verified claims until it expires.

        One atomic ``put``: True if this call revoked it, False if it already was revoked (so of
        two concurrent refreshes of one token, exactly one succeeds).
        """
        ttl = float(claims["exp"]) - self.clock()
        if ttl <= 0:
            return False  # expired already: nothing left to revoke
        return bool(await self._store(self.replay_store.put(_revoked_key(claims["jti"]), "1", ttl)))

    def authenticate_token(self, token: str) -> WalletUser:
        """The ``WalletUser`` of a valid access token (signature and claims; no store access).

        Raises ``TokenInvalid`` otherwise. It does not consult revocations: the middleware and
        the routes use ``authenticate_bearer``, which does where revocation is enabled.
        """
        cache = self._token_cache
        hit = cache.get(token)
        # A hit skips only the signature and the static claim checks, which cannot change for
        # the same bytes under the same key; expiry is checked on every use.
        if hit is not None:
            if self.clock() < hit[1]:
                return hit[0]
            cache.pop(token, None)
        if _TOKEN_RE.fullmatch(token) is None:  # cheap refusal before PyJWT
            raise TokenInvalid()
        claims = self.tokens.verify(token)
        sub = claims["sub"]
        userid = claims.get("userid")
        did_type = claims.get("did_type")
        verifier = self.did_verifiers.get(did_type if isinstance(did_type, str) else "eth")
        try:
            # Only the key holder can mint a token, but an identity that is not in its did
            # type's canonical form is refused all the same, rather than handed to the app.
            if verifier is None or verifier.normalize(sub) != sub:
                raise TokenInvalid()
        except Exception:  # a custom verifier's own error is a refusal too
            raise TokenInvalid() from None
        user = WalletUser(
            address=sub,
            userid=userid if isinstance(userid, str) else sub,
            did_type=did_type if isinstance(did_type, str) else "eth",
            claims=MappingProxyType(claims),  # shared by cache hits: nobody may change it
        )
        if self.token_cache_size:
            if len(cache) >= self.token_cache_size:
                cache.pop(next(iter(cache)), None)  # the oldest entry: dicts keep insertion order
            cache[token] = (user, claims["exp"])
        return user

    async def authenticate_signed_request(
        self, scope: Scope, params: Mapping[str, Any]
    ) -> WalletUser:
        """The ``WalletUser`` of a valid Web3MQ signed request; a ``WalletAuthError`` otherwise.

        ``params`` holds ``userid``, ``timestamp`` (ms) and ``web3mq_user_signature`` (standard
        base64 of an ed25519 signature by one of the user's registered device keys) plus the
        request's other parameters, which a ``signed_content`` hook may fold into the content.
        """
        userid = params.get("userid")
        if not isinstance(userid, str):
            raise SignedRequestRejected()
        checked_userid = _signed_userid(userid)
        raw_ts = params.get("timestamp")
        if isinstance(raw_ts, str) and _DIGITS.fullmatch(raw_ts):
            raw_ts = int(raw_ts)
        back, ahead = self.timestamp_window
        now = self.clock()
        try:
            timestamp = check_timestamp(raw_ts, now=now, back=back, ahead=ahead)
        except InvalidRequest:
            raise SignedRequestRejected() from None
        if self.signed_content is None:
            content = f"{checked_userid}{timestamp}"
        else:
            try:
                content = self.signed_content(scope, params)
            except Exception:
                logger.exception("signed_content hook raised; refusing the request")
                raise SignedRequestRejected() from None
            if not isinstance(content, str):
                raise SignedRequestRejected()
        signature = decode_request_signature(params.get("web3mq_user_signature"))
        if signature is None:
            raise SignedRequestRejected()
        record = await self._store(self.user_store.get(userid))
        if record is None or not verify_request_signature(
            record.device_keys, content.encode("utf-8"), signature
        ):
            raise SignedRequestRejected()
        marker = "web3mq-request:" + hashlib.sha256(signature).hexdigest()
        if not await self._store(
            self.replay_store.put(marker, "1", timestamp / 1000 + back - now + 1)
        ):
            raise ReplayRejected()
        claims = {
            "sub": record.address,
            "userid": record.userid,
            "did_type": record.did_type,
            "did_value": record.address,
            "auth_method": "web3mq_signature",
            "timestamp": timestamp,
        }
        return WalletUser(
            address=record.address, userid=record.userid, did_type=record.did_type, claims=claims
        )

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
        try:
            method, handler = self._route(scope)
            if scope["method"] != method:
                raise MethodNotAllowed(headers={"allow": method})
            if self.rate_limit is None or handler not in self._limited:
                await handler(scope, receive, send)
            else:
                await self._limited_call(handler, scope, receive, send)
        except WalletAuthError as error:
            # %r: the path is client input, and a newline in it must not forge a log line.
            logger.info(
                "refused %r: code=%d (%s)", scope.get("path"), error.code, type(error).__name__
            )
            await send_error(send, error)

    async def _limited_call(
        self, handler: _Handler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        limit = self.rate_limit
        assert limit is not None
        client = limit.client_key(scope)
        refused = RateLimited(headers={"retry-after": str(limit.retry_after(self.clock()))})
        if handler == self._login_random_secret:
            if (
                await self._store(limit.limiter.hit(f"secret:{client}", limit.window))
                > limit.secrets
            ):
                raise refused
            await handler(scope, receive, send)
            return
        # Failed logins are counted per requester, never per address: nobody can lock out a
        # wallet they do not control. Over the limit, a login is refused before any work.
        if (
            await self._store(limit.limiter.count(f"fail:{client}", limit.window))
            >= limit.failed_logins
        ):
            raise refused
        try:
            await handler(scope, receive, send)
        except (AuthenticationFailed, InvalidRequest):
            await self._store(limit.limiter.hit(f"fail:{client}", limit.window))
            raise

    def _route(self, scope: Scope) -> tuple[str, _Handler]:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        # Mounted: Starlette keeps the full path and puts the mount prefix in root_path.
        if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
            path = path[len(root) :] or "/"
        route = self._routes.get(path)
        if route is None:
            raise NotFound()
        return route

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routes ----------------------------------------------------------------------------

    async def _login_random_secret(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(scope, receive, self.max_body_size)
        address = parse_address(string_field(body, "wallet_address", max_length=42))
        for _ in range(3):  # a collision of 160 random bits does not happen; the loop is a guard
            secret = secrets.token_hex(20)
            if await self._store(
                self.nonce_store.put(_login_key(address, secret), "1", self.nonce_lifetime)
            ):
                await send_ok(send, secret)
                return
        raise StoreUnavailable()

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(scope, receive, self.max_body_size)
        secret = string_field(body, "login_random_secret", max_length=128)
        if _SECRET_RE.fullmatch(secret) is None:
            raise InvalidRequest("invalid login_random_secret")
        address = parse_address(string_field(body, "wallet_address", max_length=42))
        signature = parse_signature(string_field(body, "signature", max_length=132))
        content = string_field(
            body, "signature_content", max_length=MAX_MESSAGE_LENGTH, required=False
        )
        now = self.clock()
        if content is None:
            if not self.allow_raw_secret:
                raise UnsupportedLoginMethod(
                    "this service requires an EIP-4361 message in signature_content"
                )
            message = secret.encode("ascii")
        else:
            siwe = SiweMessage.parse(content)
            siwe.validate(
                domain=self.domain,
                uri=self.uri,
                nonce=secret,
                address=address,
                chain_ids=self.chain_ids,
                now=now,
                skew=self.clock_skew,
            )
            siwe.check_issuance(now=now, skew=self.clock_skew)
            message = content.encode("utf-8")
        # Recovery before the store: a failed attempt must not burn the secret.
        verify_wallet_signature(message, signature, address)
        if await self._store(self.nonce_store.take(_login_key(address, secret))) is None:
            raise SecretRejected()

        record = await self._store(self.user_store.get_by_address(address))
        stamp = float(now)
        if record is None:
            record = UserRecord(address, address, "eth", stamp, stamp)
        else:
            record = record.with_logins(record.first_login, stamp)
        issued = await self._finish_login(scope, record, now)
        await self._store(self.user_store.save(record))
        logger.info("login ok: %s", address)
        await self._send_token(send, issued)

    async def _finish_login(self, scope: Scope, record: UserRecord, now: float) -> IssuedToken:
        # The hook runs before the user is stored: a refused login leaves no user behind.
        base = {"userid": record.userid, "did_type": record.did_type, "did_value": record.address}
        if self.on_login is not None:  # the user object is only built for a hook to see
            user = WalletUser(
                address=record.address, userid=record.userid, did_type=record.did_type, claims=base
            )
            base = {**await self._run_hook(self.on_login, scope, user), **base}
        return self.tokens.issue(subject=record.address, auth_time=int(now), extra=base)

    async def _user_login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_json(scope, receive, self._user_login_body_cap)
        # Grammar of every field first: each refusal here costs microseconds.
        userid = check_userid(body.get("userid"))
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.did_verifiers.get(did_type or "")
        if verifier is None:
            raise InvalidRequest(
                "unsupported did_type; supported: " + ", ".join(sorted(self.did_verifiers))
            )
        did_value = string_field(body, "did_value", max_length=128)
        address = verifier.normalize(did_value)
        if body.get("pubkey_type") != "ed25519":
            raise InvalidRequest("unsupported pubkey_type; supported: ed25519")
        pubkey_value = string_field(body, "pubkey_value", max_length=64)
        parse_ed25519_public_key(pubkey_value)
        did_signature = body.get("did_signature")
        content = string_field(body, "signature_content", max_length=MAX_MESSAGE_LENGTH)
        nickname = check_nickname(body.get("nickname"), max_length=self.max_nickname_length)
        avatar_url = check_avatar_url(body.get("avatar_url"), max_length=2048)
        avatar = decode_avatar(body.get("avatar_base64"), max_bytes=self.max_avatar_size)
        now = self.clock()
        back, ahead = self.timestamp_window
        timestamp = check_timestamp(body.get("timestamp"), now=now, back=back, ahead=ahead)

        nonce = nonce_content(userid, "ed25519", pubkey_value, did_type or "", did_value, timestamp)
        check_signature_content(content, nonce=nonce, did_value=did_value, uris=self.web3mq_uris)
        verifier.verify(content.encode("utf-8"), did_signature, address)

        # Identity checks before anything is written: a refusal changes nothing.
        if _ADDRESS_LIKE.fullmatch(userid) and userid.lower() != address.lower():
            # userid == address is every wallet's default userid: nobody may squat another's.
            raise IdentityConflict("a userid that is an address belongs to that wallet")
        existing = await self._store(self.user_store.get(userid))
        if existing is not None and existing.address != address:
            raise IdentityConflict()
        by_wallet = existing or await self._store(self.user_store.get_by_address(address))
        if by_wallet is not None and by_wallet.userid not in (userid, address):
            raise IdentityConflict("this wallet is registered under another userid")
        # Single use: the NonceContent is remembered until its timestamp window closes.
        ttl = timestamp / 1000 + back - now + 1
        if not await self._store(self.replay_store.put(f"web3mq:{nonce}", "1", ttl)):
            raise ReplayRejected()

        login = UserRecord(
            userid,
            address,
            did_type or "",
            now,
            now,
            device_keys=(pubkey_value,),
            nickname=nickname,
            avatar_url=avatar_url,
            avatar=None if avatar is None else avatar.data,
            avatar_type=None if avatar is None else avatar.media_type,
        )
        # The hook sees the user as the login will leave it; a refusal stores nothing.
        after = merge_login(by_wallet, login, self.max_devices)
        issued = await self._finish_login(scope, after, now)
        # One atomic merge: a userid taken a moment ago by another wallet is refused, and two
        # devices of one wallet logging in at once both keep their key.
        merged = await self._store(self.user_store.merge(login, max_devices=self.max_devices))
        if merged is None:
            raise IdentityConflict()
        logger.info("web3mq login ok: %s", address)
        await self._send_token(send, issued, pubkey_type="ed25519", pubkey_value=pubkey_value)

    async def _refresh(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = await self._request_user(scope)
        carried = {k: v for k, v in user.claims.items() if k not in _RECOMPUTED_CLAIMS}
        extra = await self._run_hook(self.on_refresh, scope, user)
        # The old token is revoked before the new one exists: a refresh is single use.
        if self.revocation and not await self.revoke(user.claims):
            raise TokenInvalid()
        issued = self.tokens.issue(
            subject=user.address,
            auth_time=int(user.claims["auth_time"]),
            extra={**carried, **extra},
        )
        await self._send_token(send, issued)

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = await self._request_user(scope)
        await self.revoke(user.claims)
        logger.info("logout: %s", user.address)
        headers = []
        if self.cookie is not None:  # clear both cookies in the browser too
            headers = [
                (
                    b"set-cookie",
                    self.cookie.set_cookie(name, "", 0, http_only=name == self.cookie.name),
                )
                for name in (self.cookie.name, self.cookie.csrf_cookie_name)
            ]
        await send_ok(send, None, headers)

    # -- helpers ---------------------------------------------------------------------------

    async def _send_token(self, send: Send, issued: IssuedToken, **more: Any) -> None:
        data = self._token_data(issued)
        data.update(more)
        headers: list[tuple[bytes, bytes]] = []
        if self.cookie is not None:
            csrf = self.csrf.issue(CsrfTokens.session_id(dict(issued.claims)))
            data["csrf_token"] = csrf
            max_age = int(data["expires_in"])
            headers = [
                (
                    b"set-cookie",
                    self.cookie.set_cookie(self.cookie.name, issued.token, max_age, http_only=True),
                ),
                (
                    b"set-cookie",
                    self.cookie.set_cookie(
                        self.cookie.csrf_cookie_name, csrf, max_age, http_only=False
                    ),
                ),
            ]
        await send_ok(send, data, headers)

    def _token_data(self, issued: IssuedToken) -> dict[str, Any]:
        claims = issued.claims
        return {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": max(0, issued.expires_at - int(claims["iat"])),
            "access_expired_at": issued.expires_at,
            "wallet_address": claims["sub"],
            "userid": claims.get("userid", claims["sub"]),
            "did_type": claims.get("did_type", "eth"),
            "did_value": claims.get("did_value", claims["sub"]),
        }

    async def _run_hook(
        self, hook: LoginHook | None, scope: Scope, user: WalletUser
    ) -> dict[str, Any]:
        if hook is None:
            return {}
        try:
            extra = await hook(Request(scope), user)
        except WalletAuthError:
            raise
        except Exception:
            # A crashing hook must not let the login through, nor surface as a 500.
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
            json.dumps(claims, allow_nan=False)
        except (TypeError, ValueError):
            logger.error("login hook returned claims that are not JSON; refusing")
            raise LoginRefused() from None
        return claims

    @staticmethod
    async def _store(operation: Awaitable[Any]) -> Any:
        try:
            return await operation
        except WalletAuthError:
            raise
        except Exception as exc:
            # Fail closed: an unreachable store never issues a secret or a token.
            logger.warning("store unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from exc


_RECOMPUTED_CLAIMS = frozenset({"iat", "exp", "jti", "nbf", "access_expired_at", "iss", "aud"})


def _signed_userid(userid: str) -> str:
    try:
        return check_userid(userid)
    except WalletAuthError:
        raise SignedRequestRejected() from None


# base64url segments separated by dots: anything else cannot be one of our tokens.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_ADDRESS_LIKE = re.compile(r"0x[0-9a-fA-F]{40}")
# ASCII digits only: str.isdigit() also accepts superscripts, which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,16}")


def _revoked_key(jti: str) -> str:
    return f"revoked:{jti}"


def _login_key(address: str, secret: str) -> str:
    # Keyed by address and secret together: a secret is redeemable only by the wallet it was
    # issued to, and a login for another address finds nothing and burns nothing.
    return f"login:{address}:{secret}"


__all__ = ["LoginHook", "SignedContentHook", "WalletAuth"]
