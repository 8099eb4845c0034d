"""``asgi-wallet-auth events``: list the audit events ``serve`` recorded, newest last."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from .client_key import redact
from .events import EVENT_KINDS, AuthEvent, EventStore
from .grammar import parse_rfc3339

_DEFAULT_DB = "asgi-wallet-auth.db"
_AGO_RE = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_when(text: str, *, now: float | None = None) -> float:
    """Unix seconds of ``30m``/``24h``/``7d`` ago, of Unix seconds, or of an RFC 3339 time."""
    now = time.time() if now is None else now
    match = _AGO_RE.fullmatch(text)
    if match is not None:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return float(text)
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be a duration ago (30m, 24h, 7d), Unix seconds, or an RFC 3339 time "
            "(2026-01-01T00:00:00Z)"
        ) from None


def add_events_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``events``."""
    parser.add_argument(
        "--since",
        required=True,
        type=parse_when,
        metavar="WHEN",
        help="from when: 30m, 24h or 7d ago, Unix seconds, or an RFC 3339 time",
    )
    parser.add_argument("--until", type=parse_when, metavar="WHEN", help="until when (same forms)")
    parser.add_argument(
        "--kind",
        action="append",
        choices=EVENT_KINDS,
        help="only events of this kind; repeatable",
    )
    parser.add_argument("--address", help="only events of this wallet address (as recorded)")
    parser.add_argument(
        "--limit", type=int, default=1000, help="at most this many events (default 1000)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--db",
        default=_DEFAULT_DB,
        help="the SQLite database serve uses (default ./asgi-wallet-auth.db)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WALLET_AUTH_DATABASE_URL"),
        help="the database serve uses, if not --db: postgresql://... or sqlite:///path "
        "(default $WALLET_AUTH_DATABASE_URL)",
    )


def _line(event: AuthEvent) -> str:
    when = dt.datetime.fromtimestamp(event.at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [when, f"{event.kind:<14}", event.address or "-"]
    if event.code is not None:
        parts.append(f"code={event.code} ({event.detail})")
    if event.userid and event.userid != event.address:
        parts.append(f"userid={event.userid}")
    parts += [f"route={event.route or '-'}", f"ip={event.ip or '-'}"]
    if event.session:
        parts.append(f"session={event.session}")
    return "  ".join(parts)


async def _query(args: argparse.Namespace) -> list[AuthEvent]:
    store: EventStore
    url = args.database_url
    closers: list[Any] = []
    if url and url.startswith(("postgresql://", "postgres://")):
        from .stores.postgres import PostgresUserStore
        from .stores.postgres_events import PostgresEventStore

        users = PostgresUserStore(url, pool_size=1)
        closers.append(users.aclose)
        store = PostgresEventStore(users)
    else:
        from .service import sqlite_path
        from .stores.sqlite_events import SQLiteEventStore

        sqlite = SQLiteEventStore((sqlite_path(url) if url else None) or args.db)
        closers.append(sqlite.close)
        store = sqlite
    try:
        return await store.query(
            since=args.since,
            until=args.until,
            kinds=args.kind,
            address=args.address,
            limit=args.limit,
        )
    finally:
        for close in closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result


def events(args: argparse.Namespace) -> int:
    """Print the events; 2 for a bad argument or a database that cannot be read."""
    if args.limit < 1:
        print("--limit must be at least 1", file=sys.stderr)
        return 2
    url = args.database_url
    if not (url and url.startswith(("postgresql://", "postgres://"))):
        from .service import sqlite_path

        try:
            found_path = sqlite_path(url) if url else args.db
        except ValueError as exc:
            print(f"asgi-wallet-auth events: {exc}", file=sys.stderr)
            return 2
        if found_path is None:
            print(
                "asgi-wallet-auth events: --database-url must be postgresql://... or "
                "sqlite:///path",
                file=sys.stderr,
            )
            return 2
        path = Path(found_path)
        if not path.is_file():  # a typo must not create an empty database
            print(f"asgi-wallet-auth events: no database at {path}", file=sys.stderr)
            return 2
    try:
        found = asyncio.run(_query(args))
    except ValueError as exc:
        print(f"asgi-wallet-auth events: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ImportError:
        print(
            "a PostgreSQL database needs asyncpg: pip install 'asgi-wallet-auth[postgres]'",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # the reason, never the URL (it may hold a password)
        print(
            f"asgi-wallet-auth events: cannot read the events: {type(exc).__name__}",
            file=sys.stderr,
        )
        return 2
    for event in found:
        if args.json:
            print(json.dumps(event.to_dict(), ensure_ascii=True, separators=(",", ":")))
        else:
            print(_line(event))
    return 0


__all__ = ["add_events_arguments", "events", "parse_when"]
