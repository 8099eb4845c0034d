"""Opt-in cookie transport for browser apps, with double-submit CSRF tokens bound to the session.

With ``WalletAuth(cookie=CookieSettings(...))`` the login routes also set the access token in an
``HttpOnly`` cookie, and the middleware accepts it where no ``Authorization`` header is sent.
Browsers attach cookies to cross-site requests, so every unsafe request (anything but GET, HEAD,
OPTIONS, TRACE) authenticated by the cookie must carry a CSRF token in a header, equal to the CSRF
cookie and signed by the service for this very session; a websocket authenticated by the cookie
must come from the service's own origin.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import cookie_parser
from starlette.types import Scope

from .envelope import header
from .errors import CsrfRejected, TokenInvalid, WalletAuthError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_HEADER_NAME_RE = re.compile(r"[a-z0-9\-]+")


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """Where and how the access token and the CSRF token travel as cookies.

    ``secure=False`` is for plain-HTTP local development only; ``samesite="none"`` needs
    ``secure=True`` (browsers refuse it otherwise). Left empty, the names default to
    ``__Host-wallet_auth`` and ``__Host-wallet_auth_csrf`` where the settings allow the prefix
    (``secure``, ``path="/"``, no ``domain``): a browser then refuses such a cookie set by a
    sibling subdomain or over plain HTTP, so nobody can plant one. Otherwise they are
    ``wallet_auth`` and ``wallet_auth_csrf``. A ``__Host-``/``__Secure-`` name with settings
    a browser would silently drop it for is refused here.
    """

    name: str = ""
    csrf_cookie_name: str = ""
    csrf_header_name: str = "x-csrf-token"
    secure: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    path: str = "/"
    domain: str | None = None

    def __post_init__(self) -> None:
        host_ok = self.secure is True and self.path == "/" and self.domain is None
        prefix = "__Host-" if host_ok else ""
        if self.name == "":
            object.__setattr__(self, "name", prefix + "wallet_auth")
        if self.csrf_cookie_name == "":
            object.__setattr__(self, "csrf_cookie_name", prefix + "wallet_auth_csrf")
        for label, value in (("name", self.name), ("csrf_cookie_name", self.csrf_cookie_name)):
            if not isinstance(value, str) or _TOKEN_NAME_RE.fullmatch(value) is None:
                raise ValueError(f"cookie {label} must be a cookie token such as 'wallet_auth'")
            folded = value.lower()  # browsers match the prefixes case-insensitively
            if folded.startswith("__host-") and not host_ok:
                raise ValueError(
                    f"cookie {label} {value!r} has the __Host- prefix: browsers drop such a "
                    "cookie unless secure=True, path='/' and domain=None"
                )
            if folded.startswith("__secure-") and self.secure is not True:
                raise ValueError(
                    f"cookie {label} {value!r} has the __Secure- prefix: browsers drop such a "
                    "cookie unless secure=True"
                )
        if self.name == self.csrf_cookie_name:
            raise ValueError("name and csrf_cookie_name must differ")
        if _HEADER_NAME_RE.fullmatch(self.csrf_header_name) is None:
            raise ValueError(
                "csrf_header_name must be a lowercase header name, e.g. 'x-csrf-token'"
            )
        if self.samesite not in ("lax", "strict", "none"):
            raise ValueError("samesite must be 'lax', 'strict' or 'none'")
        if self.samesite == "none" and not self.secure:
            raise ValueError("samesite='none' needs secure=True: browsers refuse it otherwise")
        if not self.path.startswith("/") or any(c in self.path for c in ";\r\n"):
            raise ValueError("path must start with '/' and hold no ';' or line breaks")
        if self.domain is not None and (
            not self.domain or any(c in self.domain for c in ";\r\n =")
        ):
            raise ValueError("domain must be a host name such as 'example.com', or None")

    def set_cookie(self, name: str, value: str, max_age: int, *, http_only: bool) -> bytes:
        """A ``Set-Cookie`` header value with these settings."""
        parts = [f"{name}={value}", f"Max-Age={max(0, max_age)}", f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts.append(f"SameSite={self.samesite.capitalize()}")
        if self.secure:
            parts.append("Secure")
        if http_only:
            parts.append("HttpOnly")
        return "; ".join(parts).encode("latin-1")


class CsrfTokens:
    """CSRF tokens signed with the service key (itsdangerous) and bound to one session.

    ``older``: earlier service secrets still verifying tokens (a secret rotation); the CSRF
    tokens they signed stay valid too, so a rotation logs no cookie session out either.
    """

    def __init__(self, secret_key: bytes, max_age: float, older: Sequence[bytes] = ()) -> None:
        # itsdangerous signs with the last key and accepts any of them.
        self._serializer = URLSafeTimedSerializer(
            [*older, secret_key], salt="asgi-wallet-auth.csrf"
        )
        self._max_age = max_age

    @staticmethod
    def session_id(claims: Mapping[str, Any]) -> str:
        """A session is a wallet and the time it logged in: refresh keeps it, a new login not."""
        return f"{claims['sub']}:{claims['auth_time']}"

    def issue(self, session: str) -> str:
        """A CSRF token for ``session``."""
        return str(self._serializer.dumps(session))

    def valid(self, token: str, session: str) -> bool:
        """True if ``token`` was issued by this service, is fresh, and is for ``session``."""
        try:
            value = self._serializer.loads(token, max_age=int(self._max_age))
        except BadData:
            return False
        return isinstance(value, str) and hmac.compare_digest(value, session)


class CookieTransport:
    """The session layer's cookie side: reading the token cookie, CSRF checks, setting cookies."""

    def __init__(self, settings: CookieSettings, csrf: CsrfTokens, uri: str) -> None:
        self.settings = settings
        self.csrf = csrf
        self.uri = uri

    def token(self, scope: Scope) -> str | None:
        """The access token in the auth cookie, None when there is none.

        Two cookies of that name (one may have been planted for a parent domain or a path) are
        ambiguous, as two ``Authorization`` headers are: ``TokenInvalid``.
        """
        values = cookie_values(scope, self.settings.name)
        if len(values) > 1:
            raise TokenInvalid()
        return values[0] or None if values else None

    def check_request(
        self, scope: Scope, claims: Mapping[str, Any], *, state_changing: bool = False
    ) -> None:
        """Refuse a cookie-authenticated request that a cross-site page could have made.

        Unsafe http methods (and any request to a ``state_changing`` route) need the CSRF
        header, equal to the CSRF cookie and issued for this session; a websocket needs the
        service's own ``Origin``.
        """
        if scope["type"] == "websocket":
            if not same_origin(scope, self.uri):
                raise CsrfRejected("websocket from another origin")
            return
        if scope["method"] in SAFE_METHODS and not state_changing:
            return
        settings = self.settings
        try:
            sent = header(scope, settings.csrf_header_name.encode("latin-1"))
        except WalletAuthError:
            raise CsrfRejected() from None
        cookies = cookie_values(scope, settings.csrf_cookie_name)
        if len(cookies) != 1:
            raise CsrfRejected()  # none, or two: which one the page read is ambiguous
        cookie_value = cookies[0]
        if sent is None or not cookie_value or not sent.isascii() or not cookie_value.isascii():
            raise CsrfRejected()  # compare_digest would raise on non-ASCII text
        token = sent.decode("latin-1")
        if not hmac.compare_digest(token, cookie_value) or not self.csrf.valid(
            token, CsrfTokens.session_id(claims)
        ):
            raise CsrfRejected()

    def login_cookies(
        self, token: str, claims: Mapping[str, Any], max_age: int
    ) -> tuple[str, list[tuple[bytes, bytes]]]:
        """A CSRF token for this session and the two ``Set-Cookie`` headers of a login."""
        settings = self.settings
        csrf = self.csrf.issue(CsrfTokens.session_id(claims))
        return csrf, [
            (b"set-cookie", settings.set_cookie(settings.name, token, max_age, http_only=True)),
            (
                b"set-cookie",
                settings.set_cookie(settings.csrf_cookie_name, csrf, max_age, http_only=False),
            ),
        ]

    def clearing_cookies(self) -> list[tuple[bytes, bytes]]:
        """``Set-Cookie`` headers that remove both cookies from the browser."""
        settings = self.settings
        return [
            (b"set-cookie", settings.set_cookie(name, "", 0, http_only=name == settings.name))
            for name in (settings.name, settings.csrf_cookie_name)
        ]


def read_cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies.

    HTTP/2 and HTTP/3 may split them over several ``cookie`` fields, which mean one header
    joined with ``"; "`` (RFC 9113 8.2.3).
    """
    raw = [value for key, value in scope["headers"] if key.lower() == b"cookie"]
    return cookie_parser(b"; ".join(raw).decode("latin-1")) if raw else {}


def cookie_values(scope: Scope, name: str) -> list[str]:
    """Every value the request's cookies give ``name`` (browsers may send a name twice)."""
    raw = [value for key, value in scope["headers"] if key.lower() == b"cookie"]
    if not raw:
        return []
    values: list[str] = []
    for chunk in b"; ".join(raw).decode("latin-1").split(";"):
        # One pair at a time through the same parser as ``read_cookies``, so values are read
        # alike; the whole-header parse keeps only the last of two equal names.
        value = cookie_parser(chunk).get(name)
        if value is not None:
            values.append(value)
    return values


def same_origin(scope: Scope, uri: str) -> bool:
    """Whether the request's ``Origin`` is the service's own (scheme and authority of ``uri``)."""
    origin = header(scope, b"origin")
    if origin is None:
        return False
    scheme, _, rest = uri.partition("://")
    expected = f"{scheme}://{rest.split('/', 1)[0]}"
    return hmac.compare_digest(origin, expected.encode("utf-8"))  # bytes: any byte is safe


__all__ = [
    "SAFE_METHODS",
    "CookieSettings",
    "CookieTransport",
    "CsrfTokens",
    "cookie_values",
    "read_cookies",
    "same_origin",
]
