"""The ``asgi-wallet-auth`` command.

``serve`` runs the standalone auth service; ``login`` logs a wallet in to a running service and
prints the access token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .client import DEFAULT_KEY_ENV, DEFAULT_STATEMENT, DEFAULT_TIMEOUT, redact
from .errors import MessageRejected

_DEFAULT_DB = "asgi-wallet-auth.db"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error messages never echo something shaped like a private key.

    argparse repeats unrecognised arguments in its errors; a key pasted on the command line by
    mistake (``--key 0x...``) must not be printed back to a terminal or a CI log.
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and the redacted ``message`` on stderr, then exit with status 2."""
        super().error(redact(message))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = _Parser(prog="asgi-wallet-auth", description="Wallet login service for ASGI.")
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
        default=_DEFAULT_DB,
        help="SQLite user database (default ./asgi-wallet-auth.db); or use --database-url",
    )
    serve.add_argument(
        "--database-url",
        default=os.environ.get("WALLET_AUTH_DATABASE_URL"),
        help="keep users at this URL: postgresql://user@host:5432/db (shared by many hosts; "
        "needs asgi-wallet-auth[postgres]) or sqlite:///path/users.db; "
        "default $WALLET_AUTH_DATABASE_URL, else --db",
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

    login = commands.add_parser(
        "login",
        help="log a wallet in to a running service and print the access token",
        description="Ask the service at --url for a login secret, sign an EIP-4361 (Sign-In with "
        "Ethereum) message whose nonce is the secret with the wallet's private key, and print the "
        "access token on stdout: TOKEN=$(asgi-wallet-auth login --url URL). The message names the "
        "service (--domain, --uri), so a look-alike --url cannot relay it to the real service. "
        f"The key is read from --key-file or from ${DEFAULT_KEY_ENV} (see --key-env), never from "
        "the command line.",
        epilog="Exit status: 0 logged in; 1 the service refused (error <code>: <msg> on stderr) or "
        "could not be reached; 2 a bad argument or no usable key.",
        allow_abbrev=False,
    )
    login.add_argument(
        "--url",
        required=True,
        help="base URL of the login routes, e.g. http://127.0.0.1:8000 for `serve`, or "
        "https://example.com/auth where the login app is mounted at /auth",
    )
    login.add_argument(
        "--key-file",
        metavar="PATH",
        help="read the hex private key (0x optional) from this file: a regular file, not a "
        "symlink, readable by its owner only (chmod 600)",
    )
    login.add_argument(
        "--key-env",
        metavar="NAME",
        default=DEFAULT_KEY_ENV,
        help="read the hex private key from this environment variable "
        f"(default {DEFAULT_KEY_ENV}); used when --key-file is not given",
    )
    flavour = login.add_mutually_exclusive_group()
    flavour.add_argument(
        "--raw",
        action="store_true",
        help="sign the bare secret instead of an EIP-4361 message, for services that accept "
        "nothing else; that text names no service, so a malicious --url could relay a real "
        "service's secret to you and keep the token",
    )
    flavour.add_argument(
        "--siwe",
        action="store_true",
        help="sign an EIP-4361 message: the default, accepted for compatibility",
    )
    login.add_argument(
        "--domain",
        help="EIP-4361 domain (default: the authority of --url, host[:port])",
    )
    login.add_argument(
        "--uri",
        help="EIP-4361 URI (default: the origin of --url, scheme://host[:port])",
    )
    login.add_argument(
        "--chain-id",
        type=_positive_int,
        metavar="ID",
        help="EIP-4361 chain id (default 1)",
    )
    login.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="seconds the whole login may take, both requests and every byte of their answers "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    login.add_argument(
        "--json",
        action="store_true",
        help="print the whole success data object as JSON instead of the token alone",
    )
    return parser


def login(args: argparse.Namespace) -> int:
    """Log in and print the token (or, with ``--json``, the whole ``data`` object) on stdout.

    Errors go to stderr, never with the key in them: exit status 2 for a bad argument or key
    source, 1 when the service refuses or cannot be reached.
    """
    from . import client

    if args.raw:
        given = [
            option
            for option, value in (
                ("--domain", args.domain),
                ("--uri", args.uri),
                ("--chain-id", args.chain_id),
            )
            if value is not None
        ]
        if given:  # a raw secret names no domain: silently ignoring these would mislead
            print(
                f"asgi-wallet-auth login: {', '.join(given)} only apply to EIP-4361 logins; "
                "drop them or drop --raw",
                file=sys.stderr,
            )
            return 2
    try:
        key = client.load_private_key(key_file=args.key_file, key_env=args.key_env)
        data = client.login(
            args.url,
            key,
            siwe=not args.raw,
            domain=args.domain,
            uri=args.uri,
            chain_id=1 if args.chain_id is None else args.chain_id,
            statement=DEFAULT_STATEMENT,
            timeout=args.timeout,
        )
    except client.ServiceRefused as exc:  # "error <code>: <msg> (HTTP <status> from POST <url>)"
        print(redact(str(exc)), file=sys.stderr)
        if exc.code == MessageRejected.code and not args.raw:
            # Most often a service configured with another domain or URI than --url implies.
            domain, uri = client.siwe_binding(args.url)
            print(
                f"hint: the message named domain {redact(args.domain or domain)} and URI "
                f"{redact(args.uri or uri)}; if the service is configured otherwise, pass its "
                "--domain and --uri",
                file=sys.stderr,
            )
        return exc.exit_code
    except client.ClientError as exc:
        print(f"asgi-wallet-auth login: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=True))
    else:
        print(data["access_token"])
    return 0


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
            service.DATABASE_URL_ENV: database_url or "",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-wallet-auth`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "login":
        return login(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
