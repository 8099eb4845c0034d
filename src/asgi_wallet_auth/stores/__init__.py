"""Nonce and user stores. ``RedisNonceStore`` lives in ``asgi_wallet_auth.stores.redis`` (extra)."""

from __future__ import annotations

from .base import NonceStore
from .memory import MemoryNonceStore
from .sqlite import SQLiteUserStore

__all__ = ["MemoryNonceStore", "NonceStore", "SQLiteUserStore"]
