"""The package surface: public names, and no optional dependency imported on import."""

from __future__ import annotations

import subprocess
import sys

import asgi_wallet_auth


def test_public_names_are_exported() -> None:
    for name in [
        "WalletAuth",
        "WalletAuthMiddleware",
        "WalletUser",
        "SiweMessage",
        "NonceStore",
        "MemoryNonceStore",
        "UserStore",
        "MemoryUserStore",
        "SQLiteUserStore",
        "WalletAuthError",
    ]:
        assert name in asgi_wallet_auth.__all__
        assert getattr(asgi_wallet_auth, name).__doc__


def test_siwe_errors_are_value_errors() -> None:
    assert issubclass(asgi_wallet_auth.SiweError, ValueError)
    assert issubclass(asgi_wallet_auth.SiweError, asgi_wallet_auth.WalletAuthError)


def test_import_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, asgi_wallet_auth, asgi_wallet_auth.cli;"
        "bad = [m for m in ('redis', 'fastapi', 'uvicorn', 'hypercorn') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
