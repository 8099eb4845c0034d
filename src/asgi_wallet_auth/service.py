"""The standalone auth service: the login routes at ``/`` plus a protected ``GET /me``."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from .app import WalletAuth
from .envelope import render
from .errors import TokenMissing
from .settings import TokenSettings
from .users import UserStore, WalletUser

SECRET_ENV = "WALLET_AUTH_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_FILE_NAME = ".asgi-wallet-auth.secret"  # noqa: S105 - a file name


async def me(request: Request) -> Response:
    """The authenticated wallet's identity, in the envelope; 401 without a token."""
    user = request.user
    if not isinstance(user, WalletUser):
        error = TokenMissing()
        return Response(
            render(error.code, error.msg, None),
            status_code=error.status,
            headers=error.headers,
            media_type="application/json",
        )
    data = {
        "address": user.address,
        "userid": user.userid,
        "did_type": user.did_type,
        "auth_time": user.claims.get("auth_time"),
        "access_expired_at": user.claims.get("access_expired_at"),
    }
    return Response(
        render(0, "ok", data), media_type="application/json", headers={"cache-control": "no-store"}
    )


def create_service_app(auth: WalletAuth) -> Starlette:
    """A Starlette app serving ``auth``'s routes at ``/`` and ``GET /me`` behind the middleware."""
    from .middleware import WalletAuthMiddleware

    return Starlette(
        routes=[Route("/me", me, methods=["GET"]), Mount("", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )


DOMAIN_ENV = "WALLET_AUTH_DOMAIN"
URI_ENV = "WALLET_AUTH_URI"
DB_ENV = "WALLET_AUTH_DB"
REDIS_ENV = "WALLET_AUTH_REDIS_URL"
DATABASE_URL_ENV = "WALLET_AUTH_DATABASE_URL"


def sqlite_path(database_url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one)."""
    if not database_url.startswith("sqlite:///"):
        return None
    path = database_url[len("sqlite:///") :]
    if not path:
        raise ValueError("a SQLite URL needs a file: sqlite:///users.db or sqlite:////var/users.db")
    return path


def user_store_for(database_url: str) -> UserStore:
    """The user store of a database URL: ``sqlite:///path`` or ``postgresql://...``."""
    path = sqlite_path(database_url)
    if path is not None:
        from .stores.sqlite import SQLiteUserStore

        return SQLiteUserStore(path)
    if database_url.startswith(("postgresql://", "postgres://")):
        from .stores.postgres import PostgresUserStore

        return PostgresUserStore(database_url)
    raise ValueError(
        "the database URL must be sqlite:///path/users.db or postgresql://user@host:5432/db"
    )


def build_auth(
    *,
    secret: str,
    domain: str,
    uri: str,
    db: str,
    redis_url: str | None,
    database_url: str | None = None,
) -> WalletAuth:
    """The service's ``WalletAuth``: users at ``database_url`` or in SQLite ``db``; revocation."""
    from .stores.sqlite import SQLiteUserStore

    nonce_store = None
    if redis_url:
        from .stores.redis import RedisNonceStore

        nonce_store = RedisNonceStore(redis_url)
    return WalletAuth(
        secret_key=secret,
        domain=domain,
        uri=uri,
        user_store=user_store_for(database_url) if database_url else SQLiteUserStore(db),
        nonce_store=nonce_store,
        tokens=TokenSettings(revocation=True),
    )


def app_from_env() -> Starlette:
    """The service app built from ``WALLET_AUTH_*`` variables: what each ``serve`` worker runs."""
    missing = [
        name for name in (SECRET_ENV, DOMAIN_ENV, URI_ENV, DB_ENV) if not os.environ.get(name)
    ]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (asgi-wallet-auth serve does this)")
    auth = build_auth(
        secret=os.environ[SECRET_ENV],
        domain=os.environ[DOMAIN_ENV],
        uri=os.environ[URI_ENV],
        db=os.environ[DB_ENV],
        redis_url=os.environ.get(REDIS_ENV) or None,
        database_url=os.environ.get(DATABASE_URL_ENV) or None,
    )
    return create_service_app(auth)


def load_or_create_secret(directory: Path) -> str:
    """The service secret: ``$WALLET_AUTH_SECRET``, else a 0600 file created once in ``directory``.

    Keeping the generated secret on disk means a restart does not invalidate every token. A file
    that other users can read is refused rather than trusted.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env
    path = directory / SECRET_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SystemExit(
                f"{path} is readable by other users; run `chmod 600 {path}` or delete it"
            ) from None
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) < 32:
            raise SystemExit(
                f"{path} holds a secret shorter than 32 characters; delete it"
            ) from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    return secret


__all__ = [
    "DATABASE_URL_ENV",
    "DB_ENV",
    "DOMAIN_ENV",
    "REDIS_ENV",
    "SECRET_ENV",
    "SECRET_FILE_NAME",
    "URI_ENV",
    "app_from_env",
    "build_auth",
    "create_service_app",
    "load_or_create_secret",
    "me",
    "sqlite_path",
    "user_store_for",
]
