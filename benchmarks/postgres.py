"""Logins with users in PostgreSQL over loopback, as ratios to the same logins with memory users.

    python benchmarks/postgres.py [--rounds 7] [--quick] [--write]

Starts a throwaway PostgreSQL (``tests/postgres_server.py``: initdb + postgres on a free loopback
port; skips where the binaries are missing), then times in interleaved rounds, as ``run.py``
does: a whole legacy login (``POST /login_random_secret`` + ``POST /login`` on the app) with
each user store, and the user-store work of one returning wallet's login alone. A second pass
runs the same work through a counting proxy and reports database round trips per login (the
timed pass connects directly: the proxy would add its own latency). ``--write`` puts the table
in docs/benchmarks-postgres.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from run import LOOP, AsgiDriver, Row, compare, http_scope

from asgi_wallet_auth import LoginSettings, WalletAuth
from asgi_wallet_auth.stores.sqlite import SQLiteUserStore
from asgi_wallet_auth.users import MemoryUserStore, UserRecord, UserStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's throwaway server and round-trip counter

from tests.postgres_server import PostgresServer, RoundTripCounter  # noqa: E402

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SECRET = "benchmark-secret-key-0123456789abcdef"  # noqa: S105 - a throwaway benchmark key
JSON = [(b"content-type", b"application/json")]


class Logins:
    """Whole legacy logins of one returning wallet on one app, signed before timing starts."""

    def __init__(self, driver: AsgiDriver, store: UserStore, count: int) -> None:
        self.driver = driver
        self.account = Account.from_key(KEY)
        self.auth = WalletAuth(
            secret_key=SECRET,
            domain="example.com",
            uri="https://example.com",
            user_store=store,
            login=LoginSettings(max_outstanding_secrets=10**9),  # one requester, a whole pool
        )
        self.secret_body = json.dumps({"wallet_address": self.account.address}).encode()
        self.bodies: list[bytes] = []
        self.refill(count)

    def refill(self, count: int) -> None:
        for _ in range(count):
            _, body = self.driver.call(
                self.auth, http_scope("POST", "/login_random_secret", JSON), self.secret_body
            )
            secret = json.loads(body)["data"]
            sig = self.account.sign_message(encode_defunct(text=secret)).signature.hex()
            login = {
                "login_random_secret": secret,
                "signature": sig if sig.startswith("0x") else "0x" + sig,
                "wallet_address": self.account.address,
            }
            self.bodies.append(json.dumps(login).encode())

    async def one(self) -> None:
        call = self.driver._call
        status, _ = await call(
            self.auth, http_scope("POST", "/login_random_secret", JSON), self.secret_body
        )
        status2, _ = await call(self.auth, http_scope("POST", "/login", JSON), self.bodies.pop())
        assert status == 200 and status2 == 200


def store_work(store: UserStore, address: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One returning wallet's login as today's route does it (get + save) and as one merge."""
    clock = [1_767_225_600.0]

    async def get_and_save() -> None:
        clock[0] += 1
        record = await store.get_by_address(address)
        assert record is not None
        await store.save(record.with_logins(record.first_login, clock[0]))

    async def merge() -> None:
        clock[0] += 1
        login = UserRecord(address, address, "eth", clock[0], clock[0])
        assert await store.merge(login, max_devices=16) is not None

    return {"get_by_address + save": get_and_save, "merge": merge}


def count_round_trips(server: PostgresServer, driver: AsgiDriver, n: int) -> dict[str, float]:
    """Round trips per returning wallet's login, counted on the wire by a proxy, after warm-up."""
    from asgi_wallet_auth.stores.postgres import PostgresUserStore

    counter = RoundTripCounter(server.port)
    LOOP.run_until_complete(counter.start())
    store = PostgresUserStore(counter.url(), prefix="rt_", pool_size=1)
    results: dict[str, float] = {}
    try:
        logins = Logins(driver, store, n + 2)
        for _ in range(2):  # the first login, then one that prepares the statements
            LOOP.run_until_complete(logins.one())
        before = counter.round_trips
        for _ in range(n):
            LOOP.run_until_complete(logins.one())
        results["whole legacy login through the app today"] = (counter.round_trips - before) / n
        for name, fn in store_work(store, logins.account.address).items():
            LOOP.run_until_complete(fn())
            before = counter.round_trips
            for _ in range(n):
                LOOP.run_until_complete(fn())
            results[f"user store alone: {name}"] = (counter.round_trips - before) / n
    finally:
        LOOP.run_until_complete(store.aclose())
        LOOP.run_until_complete(counter.stop())
    return results


def main() -> int:
    """Run the groups, print them, and with --write keep them in docs/benchmarks-postgres.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer calls per round")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks-postgres.md")
    args = parser.parse_args()
    number = 30 if args.quick else 200
    driver = AsgiDriver()
    server = PostgresServer()
    server.start()
    from asgi_wallet_auth.stores.postgres import PostgresUserStore

    pg = PostgresUserStore(server.url, prefix="bench_", pool_size=4)
    with tempfile.TemporaryDirectory() as workdir:
        sqlite = SQLiteUserStore(Path(workdir) / "users.db")
        try:
            calls = number * (args.rounds + 1) + 2
            stores: dict[str, UserStore] = {
                "memory": MemoryUserStore(),
                "SQLite": sqlite,
                "PostgreSQL": pg,
            }
            logins = {name: Logins(driver, store, calls) for name, store in stores.items()}
            rows = compare(
                "whole legacy login",
                {f"{name} users": logins[name].one for name in stores},
                "memory users",
                number,
                args.rounds,
            )
            address = Account.from_key(KEY).address
            work: dict[str, Callable[[], Awaitable[Any]]] = {}
            for name, store in stores.items():
                for op, fn in store_work(store, address).items():
                    work[f"{name} {op}"] = fn
            rows += compare(
                "returning wallet, user store alone",
                work,
                "memory get_by_address + save",
                number,
                args.rounds,
            )
            trips = count_round_trips(server, driver, 20)
        finally:
            sqlite.close()
            LOOP.run_until_complete(pg.aclose())
            server.destroy()
    lines = render(rows, trips, args.rounds)
    print("\n".join(lines))
    if args.write:
        (ROOT / "docs" / "benchmarks-postgres.md").write_text("\n".join(lines) + "\n")
    return 0


def render(rows: list[Row], trips: dict[str, float], rounds: int) -> list[str]:
    """The Markdown page: the timing table, then round trips per login."""
    lines = [
        "# Benchmarks: users in PostgreSQL",
        "",
        "Written by `python benchmarks/postgres.py --write`: a throwaway PostgreSQL on loopback",
        f"(fsync off), {rounds} interleaved rounds; each ratio is the median of per-round ratios",
        "against the group's anchor, measured side by side in one run. Absolute times drift with",
        f"the machine's load (1-minute load average {os.getloadavg()[0]:.1f} after the run);",
        "the ratios and the round-trip counts are the figures to compare.",
        "",
        "| group | candidate | median µs | ratio | anchor |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.group} | {r.name} | {r.median_us:.1f} | {r.ratio:.2f}x | {r.anchor} |")
    lines += ["", "| database round trips per returning wallet's login | count |", "|---|---:|"]
    for name, count in trips.items():
        lines.append(f"| {name} | {count:g} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
