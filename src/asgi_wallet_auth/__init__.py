"""Wallet login for ASGI: a mountable login app and a JWT middleware for Starlette and FastAPI.

Importing the package imports no optional dependency (Redis, FastAPI, uvicorn).
"""

from __future__ import annotations

from .app import LoginHook, WalletAuth
from .errors import WalletAuthError
from .middleware import WalletAuthMiddleware
from .siwe import SiweError, SiweMessage
from .stores.base import NonceStore
from .stores.memory import MemoryNonceStore
from .stores.sqlite import SQLiteUserStore
from .users import MemoryUserStore, UserRecord, UserStore, WalletUser

__version__ = "0.1.0"

__all__ = [
    "LoginHook",
    "MemoryNonceStore",
    "MemoryUserStore",
    "NonceStore",
    "SQLiteUserStore",
    "SiweError",
    "SiweMessage",
    "UserRecord",
    "UserStore",
    "WalletAuth",
    "WalletAuthError",
    "WalletAuthMiddleware",
    "WalletUser",
    "__version__",
]
