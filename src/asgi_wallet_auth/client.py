"""A command-line login client: get a secret, sign it with a local key, and get an access token.

This is what ``asgi-wallet-auth login`` runs: the login flow of ``docs/protocol.md``, signing an
EIP-4361 message by default (a raw secret only when asked). The key sources live in
``asgi_wallet_auth.client_key`` and the HTTP in ``asgi_wallet_auth.client_http``; their public
names are importable from here too.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from .client_http import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_SIZE,
    Deadline,
    ProtocolError,
    ServiceRefused,
    ServiceUnreachable,
    post_json,
)
from .client_key import (
    DEFAULT_KEY_ENV,
    ClientError,
    KeySourceError,
    UsageError,
    load_private_key,
    parse_private_key,
    parse_solana_keypair,
    read_key_file,
    redact,
)
from .client_signers import EthereumSigner, SolanaSigner, WalletSigner
from .siwe import SiweMessage, format_rfc3339

#: The statement of the EIP-4361 messages this client builds.
DEFAULT_STATEMENT = "Sign in with your wallet"

_SECRET_RE = re.compile(r"[A-Za-z0-9]{8,256}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)*")


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


# -- the login flow -------------------------------------------------------------------------


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
    siwe: bool = True,
    domain: str | None = None,
    uri: str | None = None,
    chain_id: int = 1,
    statement: str | None = DEFAULT_STATEMENT,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
    chain: str = "ethereum",
    cluster: str = "mainnet",
) -> dict[str, Any]:
    """Log in to the service whose login routes are under ``url`` and return the success ``data``.

    ``key`` is the wallet's private key: for ``chain="ethereum"`` 32 bytes, or hex text as
    ``parse_private_key`` reads it; for ``chain="solana"`` the 32-byte ed25519 seed
    (``parse_solana_keypair`` reads Solana's keypair files). The wallet asks
    ``POST /login_random_secret`` for a secret, then ``POST /login`` with a signature over its
    chain's sign-in message (EIP-4361; SIWS on Solana) whose nonce is the secret, sent as
    ``signature_content``. That message names ``domain`` and ``uri``, which default to ``url``'s
    authority and origin (``siwe_binding``) and must equal the service's configuration exactly;
    ``chain_id`` (Ethereum) or ``cluster`` (Solana), ``statement`` and ``clock`` (its Issued At)
    fill the rest. ``siwe=False`` signs the bare secret instead: that text names no service, so
    whoever runs ``url`` could relay a real service's secret and keep the token; use it only for
    services that accept nothing else.

    ``timeout`` bounds the whole login: both requests and every byte of both answers.

    Returns the ``data`` object: ``access_token``, ``token_type``, ``expires_in``,
    ``wallet_address``... Raises ``UsageError`` for a bad argument (before anything is sent),
    ``ServiceRefused``, ``ProtocolError`` or ``ServiceUnreachable`` as ``post_json`` does.
    """
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    signer: WalletSigner
    if chain == "solana":
        if not isinstance(key, bytes) or len(key) != 32:
            raise UsageError("a Solana key is the 32-byte seed of its keypair")
        signer = SolanaSigner(key, cluster=cluster)
    elif chain == "ethereum":
        if isinstance(key, str):
            key = parse_private_key(key, source="the private key")
        signer = EthereumSigner(key, chain_id=chain_id)
    else:
        raise UsageError("chain must be 'ethereum' or 'solana'")
    secret_url = endpoint(url, "login_random_secret")
    login_url = endpoint(url, "login")
    default_domain, default_uri = siwe_binding(url)
    message_domain = default_domain if domain is None else domain
    message_uri = default_uri if uri is None else uri

    def sign_in_text(nonce: str) -> str:
        return signer.sign_in_text(
            nonce=nonce,
            domain=message_domain,
            uri=message_uri,
            issued_at=clock(),
            statement=statement,
        )

    if siwe:  # the arguments are checked before a secret is asked for
        sign_in_text("0" * 40)

    deadline = Deadline.after(timeout)  # from the first byte sent: signing is local and quick
    secret = post_json(secret_url, {"wallet_address": signer.address}, deadline=deadline)
    if not isinstance(secret, str) or _SECRET_RE.fullmatch(secret) is None:
        raise ProtocolError(
            f"POST {secret_url} did not answer a login secret (8 to 256 letters or digits)",
            status=200,
        )
    body: dict[str, object] = {"login_random_secret": secret, "wallet_address": signer.address}
    if siwe:
        message = sign_in_text(secret)
        body["signature"] = signer.sign(message)
        body["signature_content"] = message
    else:
        body["signature"] = signer.sign(secret)
    data = post_json(login_url, body, deadline=deadline)
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
    "MAX_RESPONSE_SIZE",
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
    "parse_solana_keypair",
    "post_json",
    "read_key_file",
    "redact",
    "siwe_binding",
]
