"""Wallet login for ASGI: a mountable login app and a JWT middleware for Starlette and FastAPI.

Importing the package imports no optional dependency (Redis, FastAPI, uvicorn).
"""

from __future__ import annotations

from .app import WalletAuth
from .chains import ChainRegistry, ChainVerifier, EthereumVerifier, SolanaVerifier
from .cookies import CookieSettings
from .cors import CorsSettings
from .credentials import Authenticator
from .errors import WalletAuthError
from .keys import KeySet, SigningKey
from .middleware import WalletAuthMiddleware
from .ratelimit import RateLimit
from .settings import (
    LoginHook,
    LoginSettings,
    SignedContentHook,
    TokenSettings,
    Web3MQSettings,
    Web3MQV2Settings,
)
from .siwe import SiweError, SiweMessage
from .stores.base import NonceStore
from .stores.memory import MemoryNonceStore
from .stores.sqlite import SQLiteUserStore
from .users import MemoryUserStore, UserRecord, UserStore, WalletUser
from .verify_only import JwksAuthenticator

__version__ = "0.1.0"

__all__ = [
    "Authenticator",
    "ChainRegistry",
    "ChainVerifier",
    "CookieSettings",
    "CorsSettings",
    "EthereumVerifier",
    "JwksAuthenticator",
    "KeySet",
    "LoginHook",
    "LoginSettings",
    "MemoryNonceStore",
    "MemoryUserStore",
    "NonceStore",
    "RateLimit",
    "SQLiteUserStore",
    "SignedContentHook",
    "SigningKey",
    "SiweError",
    "SiweMessage",
    "SolanaVerifier",
    "TokenSettings",
    "UserRecord",
    "UserStore",
    "WalletAuth",
    "WalletAuthError",
    "WalletAuthMiddleware",
    "WalletUser",
    "Web3MQSettings",
    "Web3MQV2Settings",
    "__version__",
]
