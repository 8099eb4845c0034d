"""``asgi-wallet-auth serve``: the standalone service under uvicorn, and its options."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .client_key import redact

_DEFAULT_DB = "asgi-wallet-auth.db"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    parser.add_argument(
        "--domain",
        help="EIP-4361 domain: the host:port browsers open the sign-in page at (default: "
        "host:port, localhost:port when listening on every address)",
    )
    parser.add_argument("--uri", help="EIP-4361 URI (default: http://DOMAIN)")
    parser.add_argument(
        "--db",
        default=_DEFAULT_DB,
        help="SQLite user database (default ./asgi-wallet-auth.db); or use --database-url",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WALLET_AUTH_DATABASE_URL"),
        help="keep users at this URL: postgresql://user@host:5432/db (shared by many hosts; "
        "needs asgi-wallet-auth[postgres]) or sqlite:///path/users.db; "
        "default $WALLET_AUTH_DATABASE_URL, else --db",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; more need --redis-url)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("WALLET_AUTH_REDIS_URL"),
        help="keep nonces, replay markers and revocations in Redis (redis://host:6379/0); "
        "default $WALLET_AUTH_REDIS_URL, else in memory",
    )
    parser.add_argument(
        "--rpc-url",
        action="append",
        default=[],
        metavar="CHAIN_ID=URL",
        help="an Ethereum JSON-RPC node for contract wallets (EIP-1271, ERC-6492, EIP-7702) on "
        "that chain; repeatable, one per chain (needs asgi-wallet-auth[rpc])",
    )
    parser.add_argument(
        "--default-chain-id",
        type=int,
        metavar="ID",
        help="the chain of logins that name none (raw secret, Web3MQ); default: the one "
        "--rpc-url chain",
    )
    parser.add_argument(
        "--solana-cluster",
        action="append",
        choices=["mainnet", "devnet", "testnet", "localnet"],
        default=[],
        help="a Solana cluster a SIWS message may name; repeatable (default mainnet)",
    )
    parser.add_argument(
        "--web3mq-uri",
        action="append",
        default=[],
        metavar="URI",
        help="an origin whose URI line Web3MQ's SDK may sign (the dapp's window.location.origin) "
        "besides --uri; repeatable",
    )
    parser.add_argument(
        "--signed-requests",
        action="store_true",
        help="accept Web3MQ's ed25519-signed requests as a credential (session and device keys)",
    )
    parser.add_argument(
        "--chain-id",
        action="append",
        type=int,
        default=[],
        metavar="ID",
        help="an EIP-155 chain id an EIP-4361 message may name; repeatable (default: any)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let a dapp's pages at this origin (https://app.example.com) call the service from "
        "a browser, with credentials; repeatable (default: none, same origin only)",
    )
    parser.add_argument(
        "--cookies",
        action="store_true",
        help="also keep the session in an HttpOnly cookie with a CSRF token (Secure where "
        "--uri is https)",
    )
    parser.add_argument(
        "--signing-key",
        default=os.environ.get("WALLET_AUTH_SIGNING_KEY"),
        metavar="PATH",
        help="sign tokens with the current key of this key file (PEM; created 0600 with a new "
        "ES256 key if missing) and publish its public keys at /.well-known/jwks.json; "
        "default $WALLET_AUTH_SIGNING_KEY, else the HS256 secret (docs/keys.md)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least important messages printed (default info: one line per request)",
    )
    parser.add_argument(
        "--event-retention",
        type=float,
        default=90.0,
        metavar="DAYS",
        help="keep audit events (logins, refusals, ...) this many days in the user database "
        "(default 90); list them with `asgi-wallet-auth events --since 24h`",
    )


def serve(args: argparse.Namespace) -> int:
    """Run the service under uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        print(
            "the serve command needs uvicorn: pip install 'asgi-wallet-auth[serve]'",
            file=sys.stderr,
        )
        return 2
    from . import service
    from .app import WalletAuth
    from .settings import TokenSettings

    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    if not 0 < args.event_retention <= 36_500:
        print("--event-retention must be a number of days in (0, 36500]", file=sys.stderr)
        return 2
    if args.workers > 1 and not args.redis_url:
        print(
            "--workers > 1 needs --redis-url: in-memory nonces live in one process, so a secret "
            "issued by one worker could not be redeemed on another",
            file=sys.stderr,
        )
        return 2
    if args.redis_url:
        try:
            import redis  # noqa: F401
        except ImportError:
            print("--redis-url needs redis: pip install 'asgi-wallet-auth[redis]'", file=sys.stderr)
            return 2
    try:
        db, database_url = _user_database(args)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if database_url is not None:
        failure = _open_user_database(database_url)
        if failure:
            print(failure, file=sys.stderr)
            return 2
    authority = _authority(args.host, args.port)
    # Browsers cannot open 0.0.0.0 or [::]: the page they can open is on localhost.
    listening_everywhere = args.host in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound
    domain = args.domain or (f"localhost:{args.port}" if listening_everywhere else authority)
    uri = args.uri or f"http://{domain}"
    secret = service.load_or_create_secret(db.parent)
    chains_env = {
        service.RPC_URLS_ENV: " ".join(args.rpc_url),
        service.DEFAULT_CHAIN_ENV: str(args.default_chain_id or ""),
        service.SOLANA_CLUSTERS_ENV: ",".join(args.solana_cluster),
        service.CHAIN_IDS_ENV: " ".join(str(c) for c in args.chain_id),
        service.CORS_ORIGINS_ENV: " ".join(args.cors_origin),
        service.COOKIES_ENV: "1" if args.cookies else "",
    }
    chains_env[service.WEB3MQ_URIS_ENV] = " ".join(args.web3mq_uri)
    chains_env[service.SIGNED_REQUESTS_ENV] = "1" if args.signed_requests else ""
    signing_key = Path(args.signing_key).resolve() if args.signing_key else None
    keys = None if signing_key is None else service.load_or_create_signing_keys(signing_key)
    try:  # built once here so that a bad setting stops the command, not each worker
        cors, cookie = service.browser_settings(chains_env, uri)
        WalletAuth(
            secret_key=secret,
            domain=domain,
            uri=uri,
            chains=service.chains_from_env(chains_env),
            web3mq=service.web3mq_from_env(chains_env, uri),
            cors=cors,
            cookie=cookie,
            tokens=TokenSettings(
                keys=service.with_secret(keys, secret, service.previous_secrets_from_env())
            ),
        )
    except ValueError as exc:
        print(f"configuration error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ImportError:
        print("--rpc-url needs httpx: pip install 'asgi-wallet-auth[rpc]'", file=sys.stderr)
        return 2
    # Every worker builds the same service from these; the secret must be the same in all.
    os.environ.update(
        {
            service.SECRET_ENV: secret,
            service.DOMAIN_ENV: domain,
            service.URI_ENV: uri,
            service.DB_ENV: str(db),
            service.REDIS_ENV: args.redis_url or "",
            service.DATABASE_URL_ENV: database_url or "",
            service.SIGNING_KEY_ENV: str(signing_key or ""),
            service.EVENT_RETENTION_ENV: str(args.event_retention),
            **chains_env,
        }
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    # Tokens and signatures in query strings stay out of the access log (each worker's factory
    # installs this too, after uvicorn configures logging there).
    from .log_redaction import install_log_redaction

    install_log_redaction()
    store = "Redis" if args.redis_url else "memory"
    print(
        f"asgi-wallet-auth serving on http://{authority} (domain {domain}, uri {uri}, "
        f"{args.workers} worker(s), nonces in {store}, users in "
        f"{'PostgreSQL' if database_url else db.name})",
        flush=True,
    )
    print(f"sign-in page: {uri.rstrip('/')}/", flush=True)
    uvicorn.run(
        "asgi_wallet_auth.service:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def _user_database(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The SQLite file (which also locates the secret file) and a PostgreSQL URL, if any."""
    from . import service

    url = args.database_url or None
    if url is None:
        return Path(args.db).resolve(), None
    if args.db != _DEFAULT_DB:
        raise ValueError("give --db or --database-url, not both")
    path = service.sqlite_path(url)
    if path is not None:
        return Path(path).resolve(), None
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("--database-url must be postgresql://user@host:5432/db or sqlite:///path")
    return Path(_DEFAULT_DB).resolve(), url


def _open_user_database(url: str) -> str | None:
    """Create or migrate the PostgreSQL schema once, before any worker starts; the error, if any."""
    import asyncio

    try:
        from .stores.postgres import PostgresUserStore
    except ImportError:
        return "a PostgreSQL --database-url needs asyncpg: pip install 'asgi-wallet-auth[postgres]'"

    async def check() -> None:
        store = PostgresUserStore(url, pool_size=1)
        try:
            await store.open()
        finally:
            await store.aclose()

    try:
        asyncio.run(check())
    except ValueError as exc:
        return f"configuration error: {exc}"
    except Exception as exc:  # the reason, never the URL (it may hold a password)
        return f"cannot use the user database: {type(exc).__name__}: {redact(str(exc))}"
    return None


__all__ = ["add_serve_arguments", "serve"]
