"""Nonce, session and user stores; ``stores.redis`` and ``stores.postgres`` need their extras."""

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
