"""The examples' shared settings, from the environment.

WALLET_AUTH_SECRET (required, at least 32 bytes), WALLET_AUTH_DOMAIN (default: the host and port
given to uvicorn, else 127.0.0.1:8000), WALLET_AUTH_URI (default http://<domain>),
WALLET_AUTH_REDIS_URL (optional: nonces, replay markers and revocations in Redis, for several
workers).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.stores.base import NonceStore


def default_domain(argv: Sequence[str]) -> str:
    """``host:port`` from uvicorn's ``--host``/``--port`` options, else ``127.0.0.1:8000``.

    A sign-in message must name the domain the service is configured with (else 40103), so an
    example started on another port must not keep claiming port 8000.
    """
    options = {"--host": "127.0.0.1", "--port": "8000"}
    for index, arg in enumerate(argv):
        for name in options:
            if arg == name and index + 1 < len(argv):
                options[name] = argv[index + 1]
            elif arg.startswith(name + "="):
                options[name] = arg.split("=", 1)[1]
    host = options["--host"]
    host = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104 - not bound here
    return f"{host}:{options['--port']}"


def auth_from_env() -> WalletAuth:
    """A ``WalletAuth`` configured from ``WALLET_AUTH_*`` variables."""
    domain = os.environ.get("WALLET_AUTH_DOMAIN")
    if not domain:
        domain = default_domain(sys.argv)
        print(
            f"WALLET_AUTH_DOMAIN is not set: signing in as {domain}. Set "
            "WALLET_AUTH_DOMAIN=host:port (as browsers and `asgi-wallet-auth login --url` reach "
            "this app) if that is not it.",
            file=sys.stderr,
        )
    nonce_store: NonceStore | None = None
    redis_url = os.environ.get("WALLET_AUTH_REDIS_URL")
    if redis_url:
        from asgi_wallet_auth.stores.redis import RedisNonceStore

        nonce_store = RedisNonceStore(redis_url)
    return WalletAuth(
        secret_key=os.environ["WALLET_AUTH_SECRET"],
        domain=domain,
        uri=os.environ.get("WALLET_AUTH_URI", f"http://{domain}"),
        nonce_store=nonce_store,
    )
