"""The ``asgi-wallet-auth`` command: ``serve`` runs the standalone auth service."""

from __future__ import annotations

import argparse
import logging
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
    from .app import WalletAuth
    from .service import create_service_app, load_or_create_secret
    from .stores.sqlite import SQLiteUserStore

    db = Path(args.db)
    authority = _authority(args.host, args.port)
    domain = args.domain or authority
    uri = args.uri or f"http://{domain}"
    try:
        auth = WalletAuth(
            secret_key=load_or_create_secret(db.resolve().parent),
            domain=domain,
            uri=uri,
            user_store=SQLiteUserStore(db),
        )
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    print(
        f"asgi-wallet-auth serving on http://{authority} (domain {domain}, uri {uri})", flush=True
    )
    uvicorn.run(create_service_app(auth), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-wallet-auth`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
