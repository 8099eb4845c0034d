"""The examples' shared settings, from the environment.

WALLET_AUTH_SECRET (required, at least 32 bytes), WALLET_AUTH_DOMAIN (default 127.0.0.1:8000),
WALLET_AUTH_URI (default http://<domain>), WALLET_AUTH_REDIS_URL (optional: nonces, replay markers
and revocations in Redis, for several workers).
"""

from __future__ import annotations

import os

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.stores.base import NonceStore


def auth_from_env() -> WalletAuth:
    """A ``WalletAuth`` configured from ``WALLET_AUTH_*`` variables."""
    domain = os.environ.get("WALLET_AUTH_DOMAIN", "127.0.0.1:8000")
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
