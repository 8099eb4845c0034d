"""The standalone auth service: the login routes at ``/`` plus a protected ``GET /me``."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import NoReturn

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from .app import WalletAuth
from .chains import ChainVerifier, EthereumVerifier, SolanaVerifier
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
        "account_id": user.account_id,
        "auth_time": user.claims.get("auth_time"),
        "access_expired_at": user.claims.get("access_expired_at"),
    }
    return Response(
        render(0, "ok", data), media_type="application/json", headers={"cache-control": "no-store"}
    )


def create_service_app(auth: WalletAuth) -> Starlette:
    """A Starlette app serving ``auth``'s routes at ``/`` and ``GET /me`` behind the middleware."""
    from .middleware import WalletAuthMiddleware

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await auth.startup()  # a mounted app gets no lifespan of its own
        try:
            yield
        finally:
            await auth.aclose()

    return Starlette(
        routes=[Route("/me", me, methods=["GET"]), Mount("", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
        lifespan=lifespan,
    )


DOMAIN_ENV = "WALLET_AUTH_DOMAIN"
URI_ENV = "WALLET_AUTH_URI"
DB_ENV = "WALLET_AUTH_DB"
REDIS_ENV = "WALLET_AUTH_REDIS_URL"
DATABASE_URL_ENV = "WALLET_AUTH_DATABASE_URL"
RPC_URLS_ENV = "WALLET_AUTH_RPC_URLS"
DEFAULT_CHAIN_ENV = "WALLET_AUTH_DEFAULT_CHAIN_ID"
SOLANA_CLUSTERS_ENV = "WALLET_AUTH_SOLANA_CLUSTERS"
EVENT_RETENTION_ENV = "WALLET_AUTH_EVENT_RETENTION_DAYS"


def chains_from_env(env: Mapping[str, str]) -> list[ChainVerifier]:
    """The service's chains: Ethereum (contract wallets where RPC URLs are given) and Solana.

    ``WALLET_AUTH_RPC_URLS``: ``CHAIN_ID=URL`` items separated by blanks;
    ``WALLET_AUTH_DEFAULT_CHAIN_ID``: the chain of logins that name none;
    ``WALLET_AUTH_SOLANA_CLUSTERS``: comma-separated clusters (default mainnet).
    """
    specs = env.get(RPC_URLS_ENV, "").split()
    default_text = env.get(DEFAULT_CHAIN_ENV, "")
    default_chain = int(default_text) if default_text.strip() else None
    ethereum = EthereumVerifier()
    if specs:
        from .rpc import RpcClient, parse_rpc_urls

        rpc = RpcClient(parse_rpc_urls(specs))
        ethereum = EthereumVerifier(rpc=rpc, default_chain_id=default_chain)
    elif default_chain is not None:
        raise ValueError("--default-chain-id needs an --rpc-url for that chain")
    clusters = [c for c in env.get(SOLANA_CLUSTERS_ENV, "").split(",") if c] or ["mainnet"]
    return [ethereum, SolanaVerifier(chain_ids=clusters)]


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
    chains: Mapping[str, str] | None = None,
) -> WalletAuth:
    """The service's ``WalletAuth``: users at ``database_url`` or in SQLite ``db``; revocation;
    audit events in the users' database, kept ``$WALLET_AUTH_EVENT_RETENTION_DAYS`` (90)."""
    from .events import EventSettings
    from .identity import IdentitySettings, event_store_for
    from .stores.sqlite import SQLiteUserStore

    nonce_store = None
    if redis_url:
        from .stores.redis import RedisNonceStore

        nonce_store = RedisNonceStore(redis_url)
    user_store = user_store_for(database_url) if database_url else SQLiteUserStore(db)
    days = float(os.environ.get(EVENT_RETENTION_ENV) or 90)
    return WalletAuth(
        secret_key=secret,
        domain=domain,
        uri=uri,
        user_store=user_store,
        nonce_store=nonce_store,
        tokens=TokenSettings(revocation=True),
        chains=chains_from_env(os.environ if chains is None else chains),
        identity=IdentitySettings(
            events=EventSettings(store=event_store_for(user_store), retention=days * 86_400)
        ),
    )


def app_from_env() -> Starlette:
    """The service app built from ``WALLET_AUTH_*`` variables: what each ``serve`` worker runs."""
    missing = [
        name for name in (SECRET_ENV, DOMAIN_ENV, URI_ENV, DB_ENV) if not os.environ.get(name)
    ]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (asgi-wallet-auth serve does this)")
    from .log_redaction import install_log_redaction

    install_log_redaction()  # each worker, after uvicorn has configured its loggers
    auth = build_auth(
        secret=os.environ[SECRET_ENV],
        domain=os.environ[DOMAIN_ENV],
        uri=os.environ[URI_ENV],
        db=os.environ[DB_ENV],
        redis_url=os.environ.get(REDIS_ENV) or None,
        database_url=os.environ.get(DATABASE_URL_ENV) or None,
    )
    return create_service_app(auth)


# The secret file is opened without following a symlink and without blocking on a FIFO (both
# POSIX only; Windows has neither in this form, nor modes or owners that say who can read).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SECRET_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW
_SECRET_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
_MIN_SECRET_LENGTH = 32
# A concurrent `serve` that has just created the file writes it at once; wait that long for it.
_CONCURRENT_WRITE_WAIT = 2.0


def _refuse(path: Path, problem: str, fix: str) -> NoReturn:
    raise SystemExit(f"refusing the secret file {path}: {problem}; {fix}")


def _checked_secret(path: Path, fd: int) -> str:
    """The secret in the open file ``fd``, after checking what the descriptor really is."""
    info = os.fstat(fd)  # the opened file itself: nothing can be swapped in after this check
    remove = f"delete it (rm {path}) to have a new one generated, or set {SECRET_ENV}"
    if not stat.S_ISREG(info.st_mode):
        _refuse(path, "it is not a regular file", remove)
    if os.name != "nt":
        uid = os.geteuid()
        if info.st_uid != uid:
            # A 0600 file another user planted (in a shared or world-writable directory) would
            # otherwise give them the key that signs every token.
            _refuse(path, f"it is owned by uid {info.st_uid}, not by this user (uid {uid})", remove)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _refuse(
                path,
                f"other users can access it (mode {stat.S_IMODE(info.st_mode):04o})",
                f"run `chmod 600 {path}` if you created it, else {remove}",
            )
    raw = b""
    waited_until = time.monotonic() + _CONCURRENT_WRITE_WAIT
    while True:  # bounded: an empty file is waited for at most _CONCURRENT_WRITE_WAIT
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        if raw or time.monotonic() > waited_until:
            break
        time.sleep(0.05)  # another process created the file and is about to write it
    try:
        secret = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        secret = ""
    if len(secret) < _MIN_SECRET_LENGTH:
        _refuse(path, f"it holds no secret of at least {_MIN_SECRET_LENGTH} characters", remove)
    return secret


def _read_secret_file(path: Path) -> str | None:
    """The checked secret in ``path``; ``None`` if there is no such file."""
    try:
        fd = os.open(path, _SECRET_READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            _refuse(path, "it is a symbolic link", f"delete it (rm {path}) or set {SECRET_ENV}")
        raise SystemExit(f"cannot read the secret file {path}: {exc.strerror}") from None
    try:
        return _checked_secret(path, fd)
    finally:
        os.close(fd)


def load_or_create_secret(directory: Path) -> str:
    """The service secret: ``$WALLET_AUTH_SECRET``, else a 0600 file created once in ``directory``.

    Keeping the generated secret on disk means a restart does not invalidate every token. The
    file is created with ``O_EXCL`` (never through a symlink or over a planted file), and an
    existing one is used only if it is a regular file (not a symlink, FIFO or directory) owned
    by this user that no one else can access; otherwise the command stops and says how to fix it.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env
    path = directory / SECRET_FILE_NAME
    for _ in range(3):  # bounded: a file deleted between our create and read attempts
        try:
            fd = os.open(path, _SECRET_CREATE_FLAGS, 0o600)
        except FileExistsError:
            # Ours from an earlier run, a concurrent creator's, or planted: checked all the same.
            secret = _read_secret_file(path)
            if secret is not None:
                return secret
            continue
        except OSError as exc:
            raise SystemExit(f"cannot create the secret file {path}: {exc.strerror}") from None
        secret = secrets.token_urlsafe(48)
        try:
            os.write(fd, (secret + "\n").encode("ascii"))  # one write: readers see all or none
            os.fsync(fd)
        finally:
            os.close(fd)
        return secret
    raise SystemExit(f"the secret file {path} keeps disappearing; set {SECRET_ENV} instead")


__all__ = [
    "DATABASE_URL_ENV",
    "DB_ENV",
    "DOMAIN_ENV",
    "EVENT_RETENTION_ENV",
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
