"""CORS for dapps on other origins: ``CorsSettings``, the policy it compiles to, a middleware.

``WalletAuth(cors=CorsSettings(...))`` answers preflights for its own routes and adds the
``Access-Control-*`` headers to every answer of its routes and to the middleware's 401s.
``CorsMiddleware`` applies the same policy in front of a whole app (the standalone service puts it
outermost, so ``/me``, the sign-in page and the JS client get it too). A browser only lets a page
read an answer whose ``Access-Control-Allow-Origin`` names the page's origin; credentials (cookies)
cross origins only to listed origins, never to ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import header, send_error, send_ok
from .errors import CorsRejected, WalletAuthError

# An origin as browsers serialize it: lowercase scheme and host (a name, IPv4 or bracketed IPv6),
# and a port only where it is not the scheme's default.
_ORIGIN_RE = re.compile(
    r"([a-z][a-z0-9+.\-]*)://([a-z0-9\-._~!$&'()*+,;=]+|\[[0-9a-f:.]+\])(?::([1-9][0-9]{0,4}))?"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_EXAMPLE = "https://app.example.com"
#: Headers the policy itself writes: removed from an answer before it writes them, so that two
#: layers applying one policy (the service's middleware around the mounted app) never repeat one.
_OWN_HEADERS = frozenset(
    {
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
    }
)


def _origin_problem(origin: object) -> str | None:
    """Why ``origin`` is not an origin as a browser sends it (None: it is one)."""
    if not isinstance(origin, str):
        return "it is not a string"
    if origin == "null":
        return "'null' is what sandboxed frames and file: pages send, and anyone can send it"
    match = _ORIGIN_RE.fullmatch(origin)
    if match is None:
        return "it must be scheme://host[:port] in lowercase, with no path, query or slash"
    scheme, _, port = match.groups()
    if port is not None and int(port) > 65535:
        return "its port is not a number from 1 to 65535"
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        return f"browsers omit the default port {port} of {scheme}"
    return None


def _names(label: str, values: object, *, lower: bool) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{label} must be a list of names, e.g. {label}=['authorization']")
    names = []
    for value in values:
        if not isinstance(value, str) or _TOKEN_RE.fullmatch(value) is None or value == "*":
            raise ValueError(f"{label} must hold header or method names (no '*'); got {value!r}")
        names.append(value.lower() if lower else value.upper())
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class CorsSettings:
    """Which browser origins may call the service, and with what.

    ``allow_origins``: exact origins as browsers send them (``https://app.example.com``,
    ``http://localhost:5173``): scheme, host and a non-default port, lowercase, no path. ``["*"]``
    allows any origin, only with ``allow_credentials=False``: credentials (the cookie transport)
    go only to origins that are named. ``allow_methods`` and ``allow_headers`` answer preflights
    in front of a whole app (``CorsMiddleware``); ``WalletAuth`` answers with each route's own
    methods and adds its CSRF header name. ``expose_headers`` are readable by the page;
    ``max_age`` is how long a browser may cache a preflight's answer, in seconds.
    """

    allow_origins: Collection[str] = ()
    allow_credentials: bool = True
    allow_methods: Collection[str] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    allow_headers: Collection[str] = ("authorization", "content-type", "x-csrf-token")
    expose_headers: Collection[str] = ("retry-after", "www-authenticate")
    max_age: int = 600

    def __post_init__(self) -> None:
        origins = self.allow_origins
        if isinstance(origins, (str, bytes)) or not isinstance(origins, Iterable):
            raise ValueError(
                "allow_origins must be a list of origins, "
                "e.g. CorsSettings(allow_origins=['https://app.example.com'])"
            )
        origins = list(origins)
        for origin in origins:
            if not isinstance(origin, str):
                raise ValueError(f"allow_origins must hold strings such as {_EXAMPLE!r}")
        origins = tuple(dict.fromkeys(origins))
        if not origins:
            raise ValueError(
                "allow_origins must name at least one origin, "
                "e.g. CorsSettings(allow_origins=['https://app.example.com'])"
            )
        if not isinstance(self.allow_credentials, bool):
            raise ValueError("allow_credentials must be True or False")
        if "*" in origins:
            if len(origins) > 1:
                raise ValueError("allow_origins=['*'] allows every origin: list no other beside it")
            if self.allow_credentials:
                raise ValueError(
                    "allow_origins=['*'] cannot go with credentials: list the dapps' origins, or "
                    "pass allow_credentials=False (bearer tokens only; cookies never cross origins)"
                )
        else:
            for origin in origins:
                problem = _origin_problem(origin)
                if problem is not None:
                    raise ValueError(
                        f"allow_origins: {origin!r} is not an origin ({problem}); "
                        "write it as the browser sends it, e.g. 'https://app.example.com'"
                    )
        object.__setattr__(self, "allow_origins", origins)
        object.__setattr__(
            self, "allow_methods", _names("allow_methods", self.allow_methods, lower=False)
        )
        object.__setattr__(
            self, "allow_headers", _names("allow_headers", self.allow_headers, lower=True)
        )
        object.__setattr__(
            self, "expose_headers", _names("expose_headers", self.expose_headers, lower=True)
        )
        age = self.max_age
        if isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 86_400:
            raise ValueError(f"max_age must be an int of seconds in [0, 86400]; got {age!r}")


class CorsPolicy:
    """``CorsSettings`` compiled to header bytes: what ``WalletAuth`` and ``CorsMiddleware`` use."""

    def __init__(self, settings: CorsSettings, *, extra_headers: Iterable[str] = ()) -> None:
        self.settings = settings
        self.any_origin = settings.allow_origins == ("*",)
        self.origins = frozenset(o.encode("latin-1") for o in settings.allow_origins)
        self.methods = frozenset(settings.allow_methods)
        self.headers = frozenset({*settings.allow_headers, *(h.lower() for h in extra_headers)})
        self._allow_headers = ", ".join(sorted(self.headers)).encode("latin-1")
        tail: list[tuple[bytes, bytes]] = []
        if settings.allow_credentials:
            tail.append((b"access-control-allow-credentials", b"true"))
        if settings.expose_headers:
            exposed = ", ".join(settings.expose_headers).encode("latin-1")
            tail.append((b"access-control-expose-headers", exposed))
        self._tail = tuple(tail)
        self._max_age = str(settings.max_age).encode("ascii")

    def allowed(self, origin: bytes | None) -> bool:
        """Whether a request from ``origin`` may read the answer."""
        return origin is not None and (self.any_origin or origin in self.origins)

    def response_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The ``Access-Control-*`` headers (and ``Vary``) for an answer to this request."""
        origin = _origin(scope)
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*"), *self._tail] if origin else []
        # Answers differ by Origin: a cache must never give one origin's answer to another.
        vary = (b"vary", b"Origin")
        if origin is None or origin not in self.origins:
            return [vary]
        return [(b"access-control-allow-origin", origin), *self._tail, vary]

    def wrap(self, scope: Scope, send: Send) -> Send:
        """``send`` with this policy's headers written into the answer's start."""
        added = self.response_headers(scope)
        # Where this policy allows the origin, its headers replace any an inner layer wrote;
        # where it does not, an inner layer's own (the JS client's public ``*``) stays.
        allows = any(k == b"access-control-allow-origin" for k, _ in added)
        replacing = _OWN_HEADERS if allows else frozenset()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in replacing
                    and not (k.lower() == b"vary" and v.lower() == b"origin")
                ]
                message = {**message, "headers": [*kept, *added]}
            await send(message)

        return sending

    @staticmethod
    def is_preflight(scope: Scope) -> bool:
        """An ``OPTIONS`` request a browser sends before a non-simple cross-origin request."""
        if scope["method"] != "OPTIONS":
            return False
        names = {k.lower() for k, _ in scope["headers"]}
        return b"origin" in names and b"access-control-request-method" in names

    async def preflight(self, scope: Scope, send: Send, methods: Collection[str]) -> None:
        """Answer a preflight (``send`` already wrapped); 403 for an origin, method or header
        that is not allowed, which a browser reports as a CORS failure."""
        try:
            origin = _origin(scope)
            method = header(scope, b"access-control-request-method")
            requested = header(scope, b"access-control-request-headers") or b""
        except WalletAuthError:
            raise CorsRejected() from None
        if not self.allowed(origin) or method is None:
            raise CorsRejected()
        method_text = method.decode("latin-1")
        if method_text not in methods:
            raise CorsRejected()
        for name in requested.decode("latin-1").split(","):
            name = name.strip().lower()
            if name and name not in self.headers:
                raise CorsRejected()
        allow = ", ".join(sorted(set(methods))).encode("latin-1")
        await send_ok(
            send,
            None,
            [
                (b"access-control-allow-methods", allow),
                (b"access-control-allow-headers", self._allow_headers),
                (b"access-control-max-age", self._max_age),
                (b"vary", b"Access-Control-Request-Method, Access-Control-Request-Headers"),
            ],
        )


def _origin(scope: Scope) -> bytes | None:
    try:
        return header(scope, b"origin")
    except WalletAuthError:
        return None  # two Origin headers: no origin this policy can name


class CorsMiddleware:
    """Pure ASGI: the ``CorsSettings`` policy in front of a whole app.

    Answers every preflight itself (with ``allow_methods``), and writes the headers into every
    answer of the app, the middleware's 401s included when it is outermost. Put it first in
    Starlette's ``middleware=[...]`` list (the outermost layer); docs/browser.md.
    """

    def __init__(
        self, app: ASGIApp, *, cors: CorsSettings, extra_headers: Iterable[str] = ()
    ) -> None:
        if not isinstance(cors, CorsSettings):
            raise ValueError("cors must be a CorsSettings(allow_origins=[...])")
        self.app = app
        self.policy = CorsPolicy(cors, extra_headers=extra_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights; add the headers to every other http answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        send = policy.wrap(scope, send)
        if policy.is_preflight(scope):
            try:
                await policy.preflight(scope, send, policy.methods)
            except WalletAuthError as error:
                await send_error(send, error)
            return
        await self.app(scope, receive, send)


__all__ = ["CorsMiddleware", "CorsPolicy", "CorsSettings"]
