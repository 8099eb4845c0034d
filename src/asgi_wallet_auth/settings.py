"""Grouped settings: small frozen dataclasses, each checking itself with the fix in the message.

``WalletAuth`` takes a few arguments and these objects; ``CookieSettings`` (cookies.py) and
``RateLimit`` (ratelimit.py) are two more of the same kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import Scope

from .grammar import STATEMENT_RE
from .keys import KeySet
from .stores.base import SessionStore
from .users import WalletUser

DAY = 86_400.0

#: An application hook run after the wallet is proven: may raise ``LoginRefused`` (or any
#: ``WalletAuthError``) to refuse, or return extra claims for the access token.
LoginHook = Callable[[Request, WalletUser], Awaitable[Mapping[str, Any] | None]]
#: What a Web3MQ signed request signs, per route: given the scope and the request's parameters
#: (query or JSON body, including ``userid`` and ``timestamp``), the text that was signed.
SignedContentHook = Callable[[Scope, Mapping[str, Any]], str]


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float if it is a positive number; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
    return float(value)


def check_cached_lookups(*, timeout: object, cache_ttl: object, cache_size: object) -> None:
    """What every cached chain lookup (ENS names, gates) is held to: a positive ``timeout``, a
    ``cache_ttl`` of seconds >= 0 (NaN refused) and an int ``cache_size`` >= 0."""
    positive_seconds("timeout", timeout)
    if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, (int, float)) or not cache_ttl >= 0:
        raise ValueError(f"cache_ttl must be a number of seconds >= 0; got {cache_ttl!r}")
    _int_at_least("cache_size", cache_size, 0)


def _int_at_least(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int of at least {low}; got {value!r}")


def check_domain_and_uri(domain: object, uri: object) -> tuple[str, str]:
    """The service's EIP-4361 ``domain`` and ``uri``, checked to agree with each other."""
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


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """The access tokens: lifetimes, claims, algorithm, the verified-token cache, revocation.

    ``issuer`` and ``audience`` default to the service's ``uri``. ``cache_size`` verified tokens
    are kept so a repeat token costs the middleware a dictionary hit (0 disables). With
    ``revocation`` the service remembers ended sessions: ``POST /logout`` appears, ``/refresh``
    retires the old token, and every token is checked against the store (one lookup a request).
    ``session_store`` keeps that state, one entry per refreshed or ended session (default: in
    memory, or on the nonce store's Redis when that is a ``RedisNonceStore``).
    ``keys``: the ``KeySet`` that signs and verifies tokens (ES256, Ed25519, HS256; docs/keys.md);
    without it the service's ``secret_key`` is the one ``algorithm`` key.
    """

    lifetime: float = 7 * DAY
    session_lifetime: float = 30 * DAY
    issuer: str | None = None
    audience: str | None = None
    algorithm: str = "HS256"
    cache_size: int = 4096
    revocation: bool = False
    session_store: SessionStore | None = field(default=None, compare=False)
    keys: KeySet | None = None

    def __post_init__(self) -> None:
        positive_seconds("TokenSettings.lifetime", self.lifetime)
        if self.keys is not None and not isinstance(self.keys, KeySet):
            raise ValueError("keys must be None or a KeySet(...) (docs/keys.md)")
        if self.keys is not None and self.algorithm != "HS256":
            raise ValueError(
                "algorithm applies to secret_key's key only: with keys=, each SigningKey names "
                "its own algorithm"
            )
        if self.session_store is not None and not isinstance(self.session_store, SessionStore):
            raise ValueError("session_store must implement the SessionStore protocol")
        positive_seconds("session_lifetime", self.session_lifetime)
        for name in ("issuer", "audience"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be None (the service's uri) or a non-empty string")
        if (
            isinstance(self.cache_size, bool)
            or not isinstance(self.cache_size, int)
            or self.cache_size < 0
        ):
            raise ValueError(
                f"token cache_size must be an int >= 0 (0 disables); got {self.cache_size!r}"
            )


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """The secret flow (``/login_random_secret``, ``/login``) and request bodies.

    ``allow_raw_secret=False`` accepts only EIP-4361 (or another chain's sign-in) messages, which
    bind the login to this domain; ``clock_skew`` is the tolerance for a message's times.
    ``max_outstanding_secrets`` caps the secrets one requester (peer address, IPv6 by its /64)
    may ask for per ``nonce_lifetime``: past it they get 429, so nobody can fill the nonce store
    alone, and nobody's pending secret is ever evicted to make room for another's.
    ``statement`` is the line ``GET /siwe`` suggests for a sign-in message (None: none); the
    service does not require it.
    """

    nonce_lifetime: float = 300.0
    allow_raw_secret: bool = True
    clock_skew: float = 60.0
    max_body_size: int = 16 * 1024
    max_outstanding_secrets: int = 32
    statement: str | None = "Sign in with your wallet"

    def __post_init__(self) -> None:
        if self.statement is not None and (
            not isinstance(self.statement, str) or STATEMENT_RE.fullmatch(self.statement) is None
        ):
            raise ValueError(
                "statement must be None or one line of printable ASCII without '%' or '\"', "
                "e.g. 'Sign in to Example'"
            )
        positive_seconds("nonce_lifetime", self.nonce_lifetime)
        _int_at_least("max_outstanding_secrets", self.max_outstanding_secrets, 1)
        skew = self.clock_skew
        if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not (0 <= skew <= 600):
            raise ValueError(f"clock_skew must be between 0 and 600 seconds; got {skew!r}")
        if (
            isinstance(self.max_body_size, bool)
            or not isinstance(self.max_body_size, int)
            or self.max_body_size < 1024
        ):
            raise ValueError(
                f"max_body_size must be an int of at least 1024; got {self.max_body_size!r}"
            )


@dataclass(frozen=True, slots=True)
class Web3MQV2Settings:
    """The v2 routes of Web3MQ's SDK: ``/api/user_register_v2/``, ``/api/user_login_v2/``, ...

    ``max_session_lifetime``: how far ahead a session key's ``pubkey_expired_timestamp`` may be
    (the SDK asks for one day by default). ``max_session_keys``: unexpired session keys kept per
    user (the oldest give way). ``max_bound_wallets``: wallets one userid may bind.
    Turned on by ``Web3MQSettings(v2=Web3MQV2Settings())``, whose timestamp window, URIs,
    profile limits and signed requests they share.
    """

    max_session_lifetime: float = 7 * DAY
    max_session_keys: int = 16
    max_bound_wallets: int = 8

    def __post_init__(self) -> None:
        positive_seconds("max_session_lifetime", self.max_session_lifetime)
        for name in ("max_session_keys", "max_bound_wallets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                raise ValueError(f"{name} must be an int from 1 to 1024, e.g. 16; got {value!r}")


@dataclass(frozen=True, slots=True)
class Web3MQSettings:
    """Web3MQ's ``/api/user_login/`` and its ed25519-signed requests (docs/web3mq.md).

    ``uris``: the ``URI:`` lines a ``signature_content`` may carry (None: the service's uri).
    ``timestamp_window``: (seconds back, seconds ahead) a request's timestamp may lie from now.
    ``signed_requests`` lets the middleware accept Web3MQ request signatures as a credential;
    ``signed_content`` says what each route's signature covers (default: the table of Web3MQ's
    SDK calls in ``web3mq_signed.py``, else ``userid + timestamp``). ``v2`` turns on the routes
    Web3MQ's JavaScript SDK calls (register, login with session keys, profile, bound wallets).
    """

    uris: Collection[str] | None = None
    timestamp_window: tuple[float, float] = (300.0, 60.0)
    max_devices: int = 16
    max_avatar_size: int = 256 * 1024
    max_nickname_length: int = 64
    signed_requests: bool = False
    signed_content: SignedContentHook | None = field(default=None, compare=False)
    v2: Web3MQV2Settings | None = None

    def __post_init__(self) -> None:
        if self.v2 is not None and not isinstance(self.v2, Web3MQV2Settings):
            raise ValueError("web3mq v2 must be None or a Web3MQV2Settings(...)")
        uris = self.uris
        if uris is not None:
            if (
                isinstance(uris, str)
                or not uris
                or any(not isinstance(u, str) or not u for u in uris)
            ):
                raise ValueError(
                    "web3mq uris must be a non-empty list of URIs, "
                    "e.g. Web3MQSettings(uris=['https://example.com'])"
                )
            object.__setattr__(self, "uris", frozenset(uris))
        window = self.timestamp_window
        if (
            not isinstance(window, tuple)
            or len(window) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in window)
            or not 0 < window[0] <= DAY
            or not 0 <= window[1] <= 3600
        ):
            raise ValueError(
                "timestamp_window must be (seconds back, seconds ahead), e.g. (300.0, 60.0): "
                "back in (0, 86400], ahead in [0, 3600]"
            )
        object.__setattr__(self, "timestamp_window", (float(window[0]), float(window[1])))
        _int_at_least("max_devices", self.max_devices, 1)
        _int_at_least("max_avatar_size", self.max_avatar_size, 1024)
        _int_at_least("max_nickname_length", self.max_nickname_length, 1)
        if self.signed_content is not None and not callable(self.signed_content):
            raise ValueError("signed_content must be a callable (scope, params) -> str")


__all__ = [
    "DAY",
    "LoginHook",
    "LoginSettings",
    "SignedContentHook",
    "TokenSettings",
    "Web3MQSettings",
    "Web3MQV2Settings",
    "check_domain_and_uri",
    "positive_seconds",
]
