"""Nonce, session and user stores; the Redis ones are in ``asgi_wallet_auth.stores.redis``."""

from __future__ import annotations

from .base import ENDED, NonceStore, SessionStore
from .memory import MemoryNonceStore, MemorySessionStore
from .sqlite import SQLiteUserStore

__all__ = [
    "ENDED",
    "MemoryNonceStore",
    "MemorySessionStore",
    "NonceStore",
    "SQLiteUserStore",
    "SessionStore",
]
