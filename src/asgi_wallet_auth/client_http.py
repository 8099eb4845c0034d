"""The login client's HTTP: one JSON POST in the protocol's envelope, against a deadline.

Standard library only (``urllib.request``), so the core package does not depend on an HTTP client
library. A ``Deadline`` bounds a whole exchange, or several: every connect, send and read gets only
the time left, so a service that answers a byte at a time cannot keep the client past it.
Redirects are never followed. ``asgi_wallet_auth.client`` re-exports the public names.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from typing import IO, TYPE_CHECKING, Any, cast

from .client_key import ClientError, redact

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Seconds a whole login may take (both requests, every byte of both answers).
DEFAULT_TIMEOUT = 10.0
#: The largest response body read, in bytes: an envelope is a few hundred bytes.
MAX_RESPONSE_SIZE = 1 << 20

_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")


class ServiceUnreachable(ClientError):
    """The service could not be reached, or did not answer in time."""


class ProtocolError(ClientError):
    """The service answered something other than the protocol's envelope.

    ``status`` is the HTTP status of that answer (``None`` when there was none).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServiceRefused(ClientError):
    """The service answered with a refusal envelope: ``{"code": code, "msg": msg, "data": null}``.

    ``status`` is the HTTP status, ``code`` the envelope code (see ``docs/errors.md``), ``msg``
    its text (made printable), ``url`` the endpoint that refused.
    """

    def __init__(self, *, status: int, code: int, msg: str, url: str) -> None:
        super().__init__(f"error {code}: {msg} (HTTP {status} from POST {url})")
        self.status = status
        self.code = code
        self.msg = msg
        self.url = url


def _printable(text: str, limit: int = 300) -> str:
    """Server-supplied text made safe for a terminal: printable ASCII, bounded, redacted."""
    cleaned = _UNPRINTABLE_RE.sub("?", text)
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "..."
    return redact(cleaned)


def printable(text: str, limit: int = 300) -> str:
    """Server-supplied text made safe for a terminal: printable ASCII, bounded, redacted."""
    cleaned = _UNPRINTABLE_RE.sub("?", text)
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "..."
    return redact(cleaned)


@dataclass(frozen=True)
class Deadline:
    """The monotonic instant by which a whole login must be done, and the budget it came from."""

    at: float
    budget: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {self.budget:g} s")
        return left


class _DeadlineReader(io.RawIOBase):
    """A socket's receive side whose every read is given only the time left before the deadline.

    A socket timeout alone bounds each read, so a server sending a byte every half second would
    keep the client forever; setting it to what is left before each read bounds them all.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        # A makefile() reference: closing the connection early waits for this reader, as usual.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        """Always: this is the receive side."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        """Receive into ``buffer`` within the time left."""
        self._sock.settimeout(self._deadline.remaining())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        """Release the socket reference."""
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` whose status line, headers and body are all read by the deadline."""

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
        *,
        deadline: Deadline,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()  # http.client's own reader, replaced by one that keeps to the deadline
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


def _connector(deadline: Deadline) -> Callable[..., socket.socket]:
    """``socket.create_connection`` given the time left, leaving what remains on the socket."""

    def connect(
        address: tuple[str, int], timeout: object = None, source_address: Any = None
    ) -> socket.socket:
        sock = socket.create_connection(address, deadline.remaining(), source_address)
        try:  # the TLS handshake that may follow runs under the socket's timeout: what is left
            sock.settimeout(deadline.remaining())
        except BaseException:
            sock.close()
            raise
        return sock

    return connect


def _response_class(deadline: Deadline) -> type[http.client.HTTPResponse]:
    # http.client builds each response as response_class(sock, method=...): a partial carries
    # the deadline to it, for the answer and for a proxy's CONNECT answer alike.
    return cast(
        "type[http.client.HTTPResponse]", functools.partial(_DeadlineResponse, deadline=deadline)
    )


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose connect, send and every read stop at one deadline."""

    def __init__(
        self, host: str, *, deadline: Deadline, timeout: object = None, **kwargs: Any
    ) -> None:
        super().__init__(host, timeout=deadline.remaining(), **kwargs)
        self._create_connection = _connector(deadline)
        self.response_class = _response_class(deadline)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose connect, handshake, send and every read stop at one deadline."""

    def __init__(
        self, host: str, *, deadline: Deadline, timeout: object = None, **kwargs: Any
    ) -> None:
        super().__init__(host, timeout=deadline.remaining(), **kwargs)
        self._create_connection = _connector(deadline)
        self.response_class = _response_class(deadline)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_DeadlineHTTPConnection, deadline=self._deadline), req
        )


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_DeadlineHTTPSConnection, deadline=self._deadline), req
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse to follow redirects: a login is sent to exactly the URL the user gave."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies from the environment included) with the deadline's handlers."""
    return urllib.request.build_opener(
        _NoRedirect(), _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
    )


def _envelope(body: bytes) -> dict[str, Any] | None:
    """The ``{"code", "msg", "data"}`` object in ``body``, or ``None`` if it is not one."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("code"), int)
        or isinstance(value.get("code"), bool)
        or not isinstance(value.get("msg"), str)
        or "data" not in value
    ):
        return None
    return value


def post_json(
    url: str,
    payload: Mapping[str, object],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: Deadline | None = None,
) -> Any:
    """POST ``payload`` as JSON to ``url`` and return the envelope's ``data`` on success.

    The whole exchange (connect, send, every byte of the answer) ends by ``deadline`` if given
    (several requests can share one), else within ``timeout`` seconds. Raises ``ServiceRefused``
    for a refusal envelope (any status), ``ProtocolError`` for an answer that is not an envelope
    (an HTML error page, a redirect, a proxy's reply), and ``ServiceUnreachable`` when no whole
    answer came in time (refused connection, DNS failure, timeout, TLS).
    """
    if deadline is None:
        deadline = Deadline.after(timeout)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
        url,
        data=json.dumps(dict(payload), separators=(",", ":")).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "asgi-wallet-auth-login",
        },
        method="POST",
    )
    location: str | None = None
    try:
        try:
            with _opener(deadline).open(request) as response:
                status = int(response.status)
                body = response.read(MAX_RESPONSE_SIZE + 1)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                location = exc.headers.get("Location") if exc.headers is not None else None
                body = exc.read(MAX_RESPONSE_SIZE + 1)
    except urllib.error.URLError as exc:
        reason = exc.reason
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        if isinstance(reason, TimeoutError):
            detail = f"no answer within the {deadline.budget:g} s timeout"
        raise ServiceUnreachable(
            f"cannot reach the service at {url}: {printable(str(detail))}"
        ) from None
    except TimeoutError:
        raise ServiceUnreachable(
            f"the service at {url} did not answer within the {deadline.budget:g} s timeout"
        ) from None
    except (OSError, HTTPException) as exc:
        raise ServiceUnreachable(
            f"the connection to {url} failed: {printable(str(exc) or type(exc).__name__)}"
        ) from None
    if len(body) > MAX_RESPONSE_SIZE:
        raise ProtocolError(
            f"HTTP {status} from POST {url}: the response is larger than the protocol allows",
            status=status,
        )
    envelope = _envelope(body)
    if envelope is None:
        hint = ""
        if 300 <= status < 400 and location:
            hint = f"; it redirects to {printable(location)}, pass that as --url"
        elif status == 200:
            hint = "; is --url the base URL where the login routes are mounted?"
        raise ProtocolError(
            f"HTTP {status} from POST {url}: the response is not a wallet-auth envelope{hint}",
            status=status,
        )
    if envelope["code"] != 0:
        raise ServiceRefused(
            status=status, code=envelope["code"], msg=printable(envelope["msg"]), url=url
        )
    if not 200 <= status < 300:
        raise ProtocolError(f"HTTP {status} from POST {url} with a success envelope", status=status)
    return envelope["data"]


__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_SIZE",
    "Deadline",
    "ProtocolError",
    "ServiceRefused",
    "ServiceUnreachable",
    "post_json",
    "printable",
]
