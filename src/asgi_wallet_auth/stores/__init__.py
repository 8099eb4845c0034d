"""Nonce and user stores; ``stores.redis`` and ``stores.postgres`` need their extras."""

from __future__ import annotations

from .base import NonceStore
from .memory import MemoryNonceStore
from .sqlite import SQLiteUserStore

__all__ = ["MemoryNonceStore", "NonceStore", "SQLiteUserStore"]
