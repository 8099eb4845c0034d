"""The ``asgi-wallet-auth`` command.

``serve`` runs the standalone auth service; ``login`` logs a wallet in to a running service and
prints the access token; ``events`` lists the audit events the service recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from .cli_events import add_events_arguments, events
from .cli_serve import add_serve_arguments, serve
from .client import DEFAULT_KEY_ENV, DEFAULT_STATEMENT, DEFAULT_TIMEOUT, redact
from .errors import MessageRejected


class _Parser(argparse.ArgumentParser):
    """An argument parser whose error messages never echo something shaped like a private key.

    argparse repeats unrecognised arguments in its errors; a key pasted on the command line by
    mistake (``--key 0x...``) must not be printed back to a terminal or a CI log.
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and the redacted ``message`` on stderr, then exit with status 2."""
        super().error(redact(message))


def positive_float(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
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
        description="Serve POST /login_random_secret, POST /login, GET|POST /refresh, "
        "POST /logout, GET /siwe (what to sign) and GET /me, with a sign-in page at / and the "
        "JS client at /wallet-auth.js. "
        "The signing secret comes from $WALLET_AUTH_SECRET, or is generated once and kept in a "
        "0600 file beside the database.",
    )
    add_serve_arguments(serve)

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
        type=positive_int,
        metavar="ID",
        help="EIP-4361 chain id (default 1)",
    )
    login.add_argument(
        "--chain",
        choices=["ethereum", "solana"],
        default="ethereum",
        help="the wallet's chain (default ethereum); with solana, --key-file is a keypair file "
        "as `solana-keygen` writes it (a JSON array of 64 bytes) and the message is SIWS",
    )
    login.add_argument(
        "--cluster",
        choices=["mainnet", "devnet", "testnet", "localnet"],
        help="SIWS Chain ID for --chain solana (default mainnet)",
    )
    login.add_argument(
        "--timeout",
        type=positive_float,
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
    listing = commands.add_parser(
        "events",
        help="list the audit events serve recorded (logins, refusals, refreshes, logouts, ...)",
        description="List the audit events in the service's database, oldest first: "
        "asgi-wallet-auth events --since 24h [--kind refusal] [--json].",
    )
    add_events_arguments(listing)
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
                ("--cluster", args.cluster),
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
    solana = args.chain == "solana"
    wrong = "--chain-id" if solana and args.chain_id is not None else None
    if not solana and args.cluster is not None:
        wrong = "--cluster"
    if wrong is not None:
        print(
            f"asgi-wallet-auth login: {wrong} does not apply to --chain {args.chain}",
            file=sys.stderr,
        )
        return 2
    try:
        key = client.load_private_key(
            key_file=args.key_file, key_env=args.key_env, solana=solana
        )
        data = client.login(
            args.url,
            key,
            siwe=not args.raw,
            domain=args.domain,
            uri=args.uri,
            chain_id=1 if args.chain_id is None else args.chain_id,
            statement=DEFAULT_STATEMENT,
            timeout=args.timeout,
            chain=args.chain,
            cluster=args.cluster or "mainnet",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-wallet-auth`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "login":
        return login(args)
    if args.command == "events":
        return events(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
