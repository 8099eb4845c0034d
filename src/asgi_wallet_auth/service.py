"""The standalone auth service: the login routes at ``/`` plus a protected ``GET /me``, and the
sign-in page at ``/`` with the JS client at ``/wallet-auth.js``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence

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
from .keys import KeySet
from .private_files import (
    SECRET_ENV,
    SECRET_FILE_NAME,
    SIGNING_KEY_ENV,
    load_or_create_secret,
    load_or_create_signing_keys,
    previous_secrets_from_env,
    signing_keys_from_env,
    with_secret,
)
from .settings import TokenSettings, Web3MQSettings, Web3MQV2Settings
from .users import UserStore, WalletUser


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
    previous_secrets: Sequence[str] = (),
) -> WalletAuth:
    """The service's ``WalletAuth``: users at ``database_url`` or in SQLite ``db``; revocation.

    ``browser`` (default: the environment): ``WALLET_AUTH_CORS_ORIGINS`` (blank-separated
    origins allowed by CORS) and ``WALLET_AUTH_COOKIES=1`` (the cookie transport, ``Secure``
    where the URI is https). ``keys`` (``--signing-key``): they sign; the service secret's HS256
    key keeps verifying the tokens it signed before (``previous``), so moving to a key file logs
    nobody out. ``previous_secrets`` (``$WALLET_AUTH_PREVIOUS_SECRETS``): earlier service secrets
    that still verify tokens and CSRF tokens, so a secret rotates without logging anyone out.
    Audit events go to the users' database, kept ``$WALLET_AUTH_EVENT_RETENTION_DAYS`` (90).
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
        tokens=TokenSettings(revocation=True, keys=with_secret(keys, secret, previous_secrets)),
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
        previous_secrets=previous_secrets_from_env(),
    )
    return create_service_app(auth)


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
    "previous_secrets_from_env",
    "signing_keys_from_env",
    "sqlite_path",
    "user_store_for",
    "web3mq_from_env",
    "with_secret",
]
