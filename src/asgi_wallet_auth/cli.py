"""The ``asgi-wallet-auth`` command: ``serve`` runs the standalone auth service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="asgi-wallet-auth", description="Wallet login service for ASGI."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the standalone auth service (in-memory nonces, SQLite users)",
        description="Serve POST /login_random_secret, POST /login, GET /refresh and GET /me. "
        "The signing secret comes from $WALLET_AUTH_SECRET, or is generated once and kept in a "
        "0600 file beside the database.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    serve.add_argument("--domain", help="EIP-4361 domain (default: host:port)")
    serve.add_argument("--uri", help="EIP-4361 URI (default: http://host:port)")
    serve.add_argument(
        "--db",
        default="asgi-wallet-auth.db",
        help="SQLite user database (default ./asgi-wallet-auth.db)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; more need --redis-url)"
    )
    serve.add_argument(
        "--redis-url",
        default=os.environ.get("WALLET_AUTH_REDIS_URL"),
        help="keep nonces, replay markers and revocations in Redis (redis://host:6379/0); "
        "default $WALLET_AUTH_REDIS_URL, else in memory",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


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

    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
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
    db = Path(args.db).resolve()
    authority = _authority(args.host, args.port)
    domain = args.domain or authority
    uri = args.uri or f"http://{domain}"
    secret = service.load_or_create_secret(db.parent)
    try:  # built once here so that a bad setting stops the command, not each worker
        WalletAuth(secret_key=secret, domain=domain, uri=uri)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # Every worker builds the same service from these; the secret must be the same in all.
    os.environ.update(
        {
            service.SECRET_ENV: secret,
            service.DOMAIN_ENV: domain,
            service.URI_ENV: uri,
            service.DB_ENV: str(db),
            service.REDIS_ENV: args.redis_url or "",
        }
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    store = "Redis" if args.redis_url else "memory"
    print(
        f"asgi-wallet-auth serving on http://{authority} (domain {domain}, uri {uri}, "
        f"{args.workers} worker(s), nonces in {store}, users in {db.name})",
        flush=True,
    )
    uvicorn.run(
        "asgi_wallet_auth.service:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-wallet-auth`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
