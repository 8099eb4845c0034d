"""A command-line login client: get a secret, sign it with a local key, and get an access token.

This is what ``asgi-wallet-auth login`` runs. It speaks the wire protocol of ``docs/protocol.md``
over the standard library only (``urllib.request``), so the core package does not depend on an
HTTP client library; eth-account signs.

The wallet's private key is read from a file or an environment variable, never from the command
line, and is never written to an error message, a log record or the output: errors about the key
say what is wrong with it without quoting it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .siwe import SiweError, SiweMessage, format_rfc3339

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: The environment variable ``login`` reads the key from unless ``--key-env`` names another.
DEFAULT_KEY_ENV = "WALLET_PRIVATE_KEY"
#: The statement of the EIP-4361 messages this client builds.
DEFAULT_STATEMENT = "Sign in with your wallet"
#: Seconds to wait for the service, per request.
DEFAULT_TIMEOUT = 10.0
#: The largest response body read, in bytes: an envelope is a few hundred bytes.
MAX_RESPONSE_SIZE = 1 << 20

_KEY_RE = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
# Anything that looks like a private key (64 hex digits): cut out of every message we print.
_KEY_LIKE_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_SECRET_RE = re.compile(r"[A-Za-z0-9]{8,256}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)*")
_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")


class ClientError(Exception):
    """A login that could not be completed; ``exit_code`` is what the command exits with."""

    exit_code = 1


class UsageError(ClientError):
    """A bad argument or key source, found before anything is sent (exit status 2)."""

    exit_code = 2


class KeySourceError(UsageError):
    """The private key is missing, unreadable, too widely readable or malformed.

    The message never contains the key, nor any part of the file or variable that held it.
    """


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


def redact(text: str) -> str:
    """``text`` with anything shaped like a private key (64 hex digits) replaced by a marker."""
    return _KEY_LIKE_RE.sub("<redacted>", text)


def _printable(text: str, limit: int = 300) -> str:
    """Server-supplied text made safe for a terminal: printable ASCII, bounded, redacted."""
    cleaned = _UNPRINTABLE_RE.sub("?", text)
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "..."
    return redact(cleaned)


# -- the private key ------------------------------------------------------------------------


def parse_private_key(text: str, *, source: str) -> bytes:
    """The 32 bytes of a hex private key (``0x`` optional, surrounding whitespace ignored).

    ``source`` names where the text came from, for the error message; the text itself is never
    quoted. Raises ``KeySourceError``.
    """
    match = _KEY_RE.fullmatch(text.strip())
    if match is None:
        raise KeySourceError(
            f"{source} does not hold a private key: expected 64 hex digits, with or without 0x"
        )
    key = bytes.fromhex(match.group(1))
    _account(key, source=source)
    return key


def _account(key: bytes, *, source: str) -> LocalAccount:
    """The eth-account signer of ``key``; ``KeySourceError`` for a key outside the curve order.

    eth-account is imported here, not with this module, so that ``asgi-wallet-auth serve``
    does not pay for its import.
    """
    from eth_account import Account

    try:
        account: LocalAccount = Account.from_key(key)
    except Exception:  # zero or not below the curve order; the library's text is not reused
        raise KeySourceError(f"{source} does not hold a valid secp256k1 private key") from None
    return account


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a private key from a file that only its owner can read.

    A file that its group or other users can read or write is refused (``chmod 600``), like
    ssh refuses such a key; on Windows, where modes do not say this, the check is skipped.
    """
    where = Path(path)
    label = f"--key-file {redact(str(where))}"
    try:
        with open(where, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise KeySourceError(f"{label} is not a regular file")
            if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeySourceError(
                    f"{label} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
                    f"run `chmod 600 {redact(str(where))}`"
                )
            raw = handle.read(4096)
    except OSError as exc:
        raise KeySourceError(f"cannot read {label}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""  # refused below, with the same message as any other non-key content
    return parse_private_key(text, source=label)


def load_private_key(
    *,
    key_file: str | os.PathLike[str] | None,
    key_env: str = DEFAULT_KEY_ENV,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The private key from ``key_file`` if given, else from the environment variable ``key_env``.

    An empty variable counts as unset. With neither source, ``KeySourceError`` names both options.
    """
    if key_file is not None:
        return read_key_file(key_file)
    env = os.environ if environ is None else environ
    value = env.get(key_env, "")
    if value.strip():
        return parse_private_key(value, source=f"${redact(key_env)}")
    raise KeySourceError(
        "no wallet private key: pass --key-file PATH (a file only you can read, chmod 600) "
        f"or set the environment variable {redact(key_env)} (choose another one with "
        "--key-env NAME); the key is never taken from the command line"
    )


# -- URLs -----------------------------------------------------------------------------------


def _split_base(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise UsageError("--url must not carry a user name or password")
    if parts.query or parts.fragment:
        raise UsageError("--url must not have a query or a fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise UsageError("--url has an invalid port") from None
    return parts


def endpoint(base_url: str, route: str) -> str:
    """The URL of ``route`` (``login``) under the base URL where the login app is mounted.

    ``endpoint("https://example.com/auth/", "login") == "https://example.com/auth/login"``.
    """
    parts = _split_base(base_url)
    path = parts.path.rstrip("/") + "/" + route
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def siwe_binding(base_url: str) -> tuple[str, str]:
    """The EIP-4361 (domain, uri) a base URL implies: its authority and its origin.

    ``siwe_binding("http://127.0.0.1:8000/auth") == ("127.0.0.1:8000", "http://127.0.0.1:8000")``,
    which is what ``asgi-wallet-auth serve`` expects by default. A service behind a proxy may be
    configured otherwise: pass its ``domain`` and ``uri`` to ``login``.
    """
    parts = _split_base(base_url)
    return parts.netloc, f"{parts.scheme}://{parts.netloc}"


# -- HTTP -----------------------------------------------------------------------------------


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


_OPENER = urllib.request.build_opener(_NoRedirect())


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


def post_json(url: str, payload: Mapping[str, object], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """POST ``payload`` as JSON to ``url`` and return the envelope's ``data`` on success.

    Raises ``ServiceRefused`` for a refusal envelope (any status), ``ProtocolError`` for an
    answer that is not an envelope (an HTML error page, a redirect, a proxy's reply), and
    ``ServiceUnreachable`` when no answer came (refused connection, DNS failure, timeout, TLS).
    """
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
            with _OPENER.open(request, timeout=timeout) as response:
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
            detail = f"no answer within {timeout:g} s"
        raise ServiceUnreachable(
            f"cannot reach the service at {url}: {_printable(str(detail))}"
        ) from None
    except TimeoutError:
        raise ServiceUnreachable(
            f"the service at {url} did not answer within {timeout:g} s"
        ) from None
    except (OSError, HTTPException) as exc:
        raise ServiceUnreachable(
            f"the connection to {url} failed: {_printable(str(exc) or type(exc).__name__)}"
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
            hint = f"; it redirects to {_printable(location)}, pass that as --url"
        elif status == 200:
            hint = "; is --url the base URL where the login routes are mounted?"
        raise ProtocolError(
            f"HTTP {status} from POST {url}: the response is not a wallet-auth envelope{hint}",
            status=status,
        )
    if envelope["code"] != 0:
        raise ServiceRefused(
            status=status, code=envelope["code"], msg=_printable(envelope["msg"]), url=url
        )
    if not 200 <= status < 300:
        raise ProtocolError(f"HTTP {status} from POST {url} with a success envelope", status=status)
    return envelope["data"]


# -- the login flow -------------------------------------------------------------------------


def _signature(account: LocalAccount, text: str) -> str:
    """EIP-191 ``personal_sign`` of ``text`` as ``0x`` + 130 hex."""
    from eth_account.messages import encode_defunct

    signature: str = account.sign_message(encode_defunct(text=text)).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


def build_siwe_message(
    *,
    address: str,
    nonce: str,
    domain: str,
    uri: str,
    chain_id: int = 1,
    issued_at: float,
    statement: str | None = DEFAULT_STATEMENT,
) -> SiweMessage:
    """The EIP-4361 message this client signs; raises ``SiweError`` naming a bad field."""
    return SiweMessage(
        domain=domain,
        address=address,
        statement=statement,
        uri=uri,
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=format_rfc3339(issued_at),
    )


def login(
    url: str,
    key: bytes | str,
    *,
    siwe: bool = False,
    domain: str | None = None,
    uri: str | None = None,
    chain_id: int = 1,
    statement: str | None = DEFAULT_STATEMENT,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Log in to the service whose login routes are under ``url`` and return the success ``data``.

    ``key`` is the wallet's private key (32 bytes, or hex text as ``parse_private_key`` reads it).
    The wallet asks ``POST /login_random_secret`` for a secret, then ``POST /login`` with a
    signature over the secret itself or, with ``siwe=True``, over an EIP-4361 message whose nonce
    is the secret (sent as ``signature_content``). That message names ``domain`` and ``uri``,
    which default to ``url``'s authority and origin (``siwe_binding``) and must equal the
    service's configuration exactly; ``chain_id``, ``statement`` and ``clock`` (its Issued At)
    fill the rest.

    Returns the ``data`` object: ``access_token``, ``token_type``, ``expires_in``,
    ``wallet_address``... Raises ``UsageError`` for a bad argument (before anything is sent),
    ``ServiceRefused``, ``ProtocolError`` or ``ServiceUnreachable`` as ``post_json`` does.
    """
    if isinstance(key, str):
        key = parse_private_key(key, source="the private key")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    secret_url = endpoint(url, "login_random_secret")
    login_url = endpoint(url, "login")
    account = _account(key, source="the private key")
    address: str = account.address
    default_domain, default_uri = siwe_binding(url)
    siwe_domain = default_domain if domain is None else domain
    siwe_uri = default_uri if uri is None else uri
    if siwe:
        try:  # the arguments are checked before a secret is asked for
            build_siwe_message(
                address=address,
                nonce="0" * 40,
                domain=siwe_domain,
                uri=siwe_uri,
                chain_id=chain_id,
                issued_at=clock(),
                statement=statement,
            )
        except SiweError as exc:
            raise UsageError(f"cannot build the sign-in message: {exc}") from None

    secret = post_json(secret_url, {"wallet_address": address}, timeout=timeout)
    if not isinstance(secret, str) or _SECRET_RE.fullmatch(secret) is None:
        raise ProtocolError(
            f"POST {secret_url} did not answer a login secret (8 to 256 letters or digits)",
            status=200,
        )
    body: dict[str, object] = {"login_random_secret": secret, "wallet_address": address}
    if siwe:
        message = str(
            build_siwe_message(
                address=address,
                nonce=secret,
                domain=siwe_domain,
                uri=siwe_uri,
                chain_id=chain_id,
                issued_at=clock(),
                statement=statement,
            )
        )
        body["signature"] = _signature(account, message)
        body["signature_content"] = message
    else:
        body["signature"] = _signature(account, secret)
    data = post_json(login_url, body, timeout=timeout)
    if not isinstance(data, dict):
        raise ProtocolError(f"POST {login_url} answered no login data object", status=200)
    token = data.get("access_token")
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise ProtocolError(f"POST {login_url} answered no usable access_token", status=200)
    return data


__all__ = [
    "DEFAULT_KEY_ENV",
    "DEFAULT_STATEMENT",
    "DEFAULT_TIMEOUT",
    "ClientError",
    "KeySourceError",
    "ProtocolError",
    "ServiceRefused",
    "ServiceUnreachable",
    "UsageError",
    "build_siwe_message",
    "endpoint",
    "load_private_key",
    "login",
    "parse_private_key",
    "post_json",
    "read_key_file",
    "redact",
    "siwe_binding",
]
