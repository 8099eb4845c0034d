"""The standalone auth service: the login routes at ``/`` plus a protected ``GET /me``, and the
sign-in page at ``/`` with the JS client at ``/wallet-auth.js``."""

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
from .cookies import CookieSettings
from .cors import CorsSettings
from .envelope import render
from .errors import TokenMissing
from .keys import KeySet, SigningKey
from .settings import TokenSettings, Web3MQSettings, Web3MQV2Settings
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
    """A Starlette app serving ``auth``'s routes at ``/`` and ``GET /me`` behind the middleware,
    the sign-in page at ``/`` and the JS client at ``/wallet-auth.js``.

    With ``auth.cors`` set, ``CorsMiddleware`` is the outermost layer: the page, the client,
    ``/me`` and the middleware's 401s get the same policy as the login routes.
    """
    from .cors import CorsMiddleware
    from .middleware import WalletAuthMiddleware
    from .pages import CLIENT_FILE, SignInPage

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await auth.startup()  # a mounted app gets no lifespan of its own
        try:
            yield
        finally:
            await auth.aclose()
            await close_store(auth.user_store)
            events = auth.identity.events.settings
            if events is not None and events.store is not None:
                await close_store(events.store)  # SQLite's events live in the users' file

    page = SignInPage(auth_url="", me_url="/me")
    middleware = [Middleware(WalletAuthMiddleware, auth=auth)]
    if auth.cors is not None:
        csrf = [] if auth.cookie is None else [auth.cookie.csrf_header_name]
        middleware.insert(0, Middleware(CorsMiddleware, cors=auth.cors, extra_headers=csrf))
    return Starlette(
        routes=[
            Route("/me", me, methods=["GET"]),
            *(Route(f"/{name}", page) for name in ("", CLIENT_FILE, "signin.js", "signin.css")),
            Mount("", app=auth),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


async def close_store(store: object) -> None:
    """Close a user store at shutdown: PostgreSQL's pool, or SQLite's connection (closing the
    last one folds its ``-wal`` and ``-shm`` files back into the database)."""
    aclose = getattr(store, "aclose", None)
    if callable(aclose):
        await aclose()
        return
    close = getattr(store, "close", None)
    if callable(close):
        close()


DOMAIN_ENV = "WALLET_AUTH_DOMAIN"
URI_ENV = "WALLET_AUTH_URI"
DB_ENV = "WALLET_AUTH_DB"
REDIS_ENV = "WALLET_AUTH_REDIS_URL"
DATABASE_URL_ENV = "WALLET_AUTH_DATABASE_URL"
RPC_URLS_ENV = "WALLET_AUTH_RPC_URLS"
DEFAULT_CHAIN_ENV = "WALLET_AUTH_DEFAULT_CHAIN_ID"
SOLANA_CLUSTERS_ENV = "WALLET_AUTH_SOLANA_CLUSTERS"
WEB3MQ_URIS_ENV = "WALLET_AUTH_WEB3MQ_URIS"
SIGNED_REQUESTS_ENV = "WALLET_AUTH_SIGNED_REQUESTS"


def web3mq_from_env(env: Mapping[str, str], uri: str) -> Web3MQSettings:
    """The service's Web3MQ settings: ``uri`` plus ``WALLET_AUTH_WEB3MQ_URIS`` (blank-separated
    origins a signed URI line may name) and ``WALLET_AUTH_SIGNED_REQUESTS=1``."""
    extra = env.get(WEB3MQ_URIS_ENV, "").split()
    for origin in extra:
        if not origin.startswith(("https://", "http://")) or origin.count("/") > 3:
            raise ValueError(
                f"--web3mq-uri must be an origin such as https://app.example; got {origin!r}"
            )
    return Web3MQSettings(
        uris=[uri, *extra],
        signed_requests=env.get(SIGNED_REQUESTS_ENV, "") == "1",
        v2=Web3MQV2Settings(),
    )


CORS_ORIGINS_ENV = "WALLET_AUTH_CORS_ORIGINS"
COOKIES_ENV = "WALLET_AUTH_COOKIES"
CHAIN_IDS_ENV = "WALLET_AUTH_CHAIN_IDS"

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
    # ``WALLET_AUTH_CHAIN_IDS``: the EIP-155 chain ids an EIP-4361 message may name (blank: any).
    chain_ids = [int(c) for c in env.get(CHAIN_IDS_ENV, "").split()] or None
    ethereum = EthereumVerifier(chain_ids=chain_ids)
    if specs:
        from .rpc import RpcClient, parse_rpc_urls

        rpc = RpcClient(parse_rpc_urls(specs))
        ethereum = EthereumVerifier(rpc=rpc, default_chain_id=default_chain, chain_ids=chain_ids)
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
    browser: Mapping[str, str] | None = None,
    keys: KeySet | None = None,
) -> WalletAuth:
    """The service's ``WalletAuth``: users at ``database_url`` or in SQLite ``db``; revocation.

    ``browser`` (default: the environment): ``WALLET_AUTH_CORS_ORIGINS`` (blank-separated
    origins allowed by CORS) and ``WALLET_AUTH_COOKIES=1`` (the cookie transport, ``Secure``
    where the URI is https). ``keys`` (``--signing-key``): they sign; the service secret's HS256
    key keeps verifying the tokens it signed before (``previous``), so moving to a key file logs
    nobody out. Audit events go to the users' database, kept
    ``$WALLET_AUTH_EVENT_RETENTION_DAYS`` (90).
    """
    from .events import EventSettings
    from .identity import IdentitySettings, event_store_for
    from .stores.sqlite import SQLiteUserStore

    cors, cookie = browser_settings(os.environ if browser is None else browser, uri)

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
        tokens=TokenSettings(revocation=True, keys=with_secret(keys, secret)),
        chains=chains_from_env(os.environ if chains is None else chains),
        web3mq=web3mq_from_env(os.environ if chains is None else chains, uri),
        cors=cors,
        cookie=cookie,
        identity=IdentitySettings(
            events=EventSettings(store=event_store_for(user_store), retention=days * 86_400)
        ),
    )


def browser_settings(
    env: Mapping[str, str], uri: str
) -> tuple[CorsSettings | None, CookieSettings | None]:
    """The service's CORS and cookie settings from ``WALLET_AUTH_CORS_ORIGINS`` and ``_COOKIES``."""
    origins = env.get(CORS_ORIGINS_ENV, "").split()
    cors = CorsSettings(allow_origins=origins) if origins else None
    cookie = None
    if env.get(COOKIES_ENV) == "1":
        # Plain http is for local use only; browsers drop Secure cookies sent over it elsewhere.
        cookie = CookieSettings(secure=uri.startswith("https://"))
    return cors, cookie


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
        keys=signing_keys_from_env(),
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


def _refuse(path: Path, problem: str, fix: str, what: str = "secret file") -> NoReturn:
    raise SystemExit(f"refusing the {what} {path}: {problem}; {fix}")


def _read_private(path: Path, fd: int, remove: str, what: str, limit: int) -> bytes:
    """The bytes of the open file ``fd`` (at most ``limit``), after checking what it really is."""
    info = os.fstat(fd)  # the opened file itself: nothing can be swapped in after this check
    if not stat.S_ISREG(info.st_mode):
        _refuse(path, "it is not a regular file", remove, what)
    if os.name != "nt":
        uid = os.geteuid()
        if info.st_uid != uid:
            # A 0600 file another user planted (in a shared or world-writable directory) would
            # otherwise give them the key that signs every token.
            owner = f"it is owned by uid {info.st_uid}, not by this user (uid {uid})"
            _refuse(path, owner, remove, what)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _refuse(
                path,
                f"other users can access it (mode {stat.S_IMODE(info.st_mode):04o})",
                f"run `chmod 600 {path}` if you created it, else {remove}",
                what,
            )
    raw = b""
    waited_until = time.monotonic() + _CONCURRENT_WRITE_WAIT
    while True:  # bounded: an empty file is waited for at most _CONCURRENT_WRITE_WAIT
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, limit)
        if raw or time.monotonic() > waited_until:
            break
        time.sleep(0.05)  # another process created the file and is about to write it
    return raw


def _checked_secret(path: Path, fd: int) -> str:
    """The secret in the open file ``fd``, after checking what the descriptor really is."""
    remove = f"delete it (rm {path}) to have a new one generated, or set {SECRET_ENV}"
    raw = _read_private(path, fd, remove, "secret file", 4096)
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


SIGNING_KEY_ENV = "WALLET_AUTH_SIGNING_KEY"


def with_secret(keys: KeySet | None, secret: str) -> KeySet | None:
    """``keys`` plus the service secret's HS256 key as ``previous`` (never published)."""
    if keys is None:
        return None
    legacy = SigningKey.hmac(secret, state="previous")
    if any(k.kid == legacy.kid for k in keys.keys):
        return keys
    return KeySet((*keys.keys, legacy), max_age=keys.max_age)


def signing_keys_from_env() -> KeySet | None:
    """The key set of ``$WALLET_AUTH_SIGNING_KEY`` (a key file path), if set; checked as created."""
    path = os.environ.get(SIGNING_KEY_ENV)
    return load_or_create_signing_keys(Path(path)) if path else None


def load_or_create_signing_keys(path: Path) -> KeySet:
    """The signing keys in ``path``; a file with one new ES256 key, 0600, if there is none.

    The file gets the secret file's care: created with ``O_EXCL`` and never through a symlink,
    and used only if it is a regular file owned by this user that no one else can access.
    """
    from .keyfile import MAX_KEY_FILE_SIZE, key_file_text, parse_key_file

    what = "signing-key file"
    remove = f"fix it, or move it away (mv {path} {path}.old) to have a new key generated"
    for _ in range(3):  # bounded: a file deleted between our create and read attempts
        try:
            fd = os.open(path, _SECRET_CREATE_FLAGS, 0o600)
        except FileExistsError:
            try:
                fd = os.open(path, _SECRET_READ_FLAGS)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                    _refuse(path, "it is a symbolic link", remove, what)
                raise SystemExit(f"cannot read the {what} {path}: {exc.strerror}") from None
            try:
                raw = _read_private(path, fd, remove, what, MAX_KEY_FILE_SIZE + 1)
            finally:
                os.close(fd)
            if len(raw) > MAX_KEY_FILE_SIZE:
                _refuse(path, f"it is larger than {MAX_KEY_FILE_SIZE} bytes", remove, what)
            try:
                return parse_key_file(raw.decode("ascii"))
            except (UnicodeDecodeError, ValueError) as exc:
                problem = "it is not ASCII text" if isinstance(exc, UnicodeError) else str(exc)
                _refuse(path, problem, "see docs/keys.md for the format", what)
        except OSError as exc:
            raise SystemExit(f"cannot create the {what} {path}: {exc.strerror}") from None
        keys = KeySet((SigningKey.generate("ES256"),))
        try:
            os.write(fd, key_file_text(keys.keys).encode("ascii"))  # one write: all or none
            os.fsync(fd)
        finally:
            os.close(fd)
        return keys
    raise SystemExit(f"the {what} {path} keeps disappearing")


__all__ = [
    "CHAIN_IDS_ENV",
    "COOKIES_ENV",
    "CORS_ORIGINS_ENV",
    "DATABASE_URL_ENV",
    "DB_ENV",
    "DOMAIN_ENV",
    "EVENT_RETENTION_ENV",
    "REDIS_ENV",
    "SECRET_ENV",
    "SECRET_FILE_NAME",
    "SIGNING_KEY_ENV",
    "URI_ENV",
    "WEB3MQ_URIS_ENV",
    "app_from_env",
    "browser_settings",
    "build_auth",
    "close_store",
    "create_service_app",
    "load_or_create_secret",
    "load_or_create_signing_keys",
    "me",
    "signing_keys_from_env",
    "sqlite_path",
    "user_store_for",
    "web3mq_from_env",
    "with_secret",
]
