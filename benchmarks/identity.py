"""What the identity layer adds to a login: ``POST /login`` without it, and with audit events.

    python benchmarks/identity.py [--rounds 5] [--number 300] [--write]

Each candidate redeems pre-issued, pre-signed secrets of its own service (the wallet's work and
the secret's issuance are not timed), in process through ASGI. Figures are medians of same-run
ratios against the service without ``identity`` (interleaved rounds, as in benchmarks/run.py);
``--write`` records them in docs/benchmarks-identity.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from run import KEY, SECRET, AsgiDriver, compare, http_scope

from asgi_wallet_auth import LoginSettings, WalletAuth
from asgi_wallet_auth.events import AuthEvent, EventSettings, MemoryEventStore
from asgi_wallet_auth.identity import IdentitySettings

JSON = [(b"content-type", b"application/json")]


def login_of(driver: AsgiDriver, auth: WalletAuth, count: int) -> Callable[[], Any]:
    """A candidate: one ``POST /login`` of a pre-issued secret per call."""
    account = Account.from_key(KEY)
    ask = json.dumps({"wallet_address": account.address}).encode()
    pool: list[bytes] = []
    for _ in range(count):
        _, body = driver.call(auth, http_scope("POST", "/login_random_secret", JSON), ask)
        secret = json.loads(body)["data"]
        signature = account.sign_message(encode_defunct(text=secret)).signature.hex()
        signature = signature if signature.startswith("0x") else "0x" + signature
        body = {
            "login_random_secret": secret,
            "signature": signature,
            "wallet_address": account.address,
        }
        pool.append(json.dumps(body).encode())

    async def login() -> None:
        status, _ = await driver._call(auth, http_scope("POST", "/login", JSON), pool.pop())
        assert status == 200

    return login


def services() -> dict[str, WalletAuth]:
    common: dict[str, Any] = {
        "secret_key": SECRET,
        "domain": "example.com",
        "uri": "https://example.com",
        # Thousands of secrets are issued up front from one client address.
        "login": LoginSettings(max_outstanding_secrets=1_000_000),
    }
    seen: list[AuthEvent] = []

    async def on_event(event: AuthEvent) -> None:
        seen.append(event)

    return {
        "login, no identity layer": WalletAuth(**common),
        "login + audit event (memory store)": WalletAuth(
            **common, identity=IdentitySettings(events=EventSettings(store=MemoryEventStore()))
        ),
        "login + audit event (on_event hook)": WalletAuth(
            **common, identity=IdentitySettings(events=EventSettings(on_event=on_event))
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=300)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    driver = AsgiDriver()
    count = args.number * args.rounds + 1
    candidates = {name: login_of(driver, auth, count) for name, auth in services().items()}
    anchor = "login, no identity layer"
    rows = compare("identity", candidates, anchor, args.number, args.rounds)
    lines = [
        "# Benchmarks: the identity layer on the login path",
        "",
        "`python benchmarks/identity.py --write` (medians of same-run ratios, "
        f"{args.rounds} interleaved rounds of {args.number} logins each; `POST /login` of a "
        "pre-issued, pre-signed secret, in process through ASGI).",
        "",
        "| candidate | median per login | ratio to no identity layer |",
        "|---|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {row.median_us:.0f} us | {row.ratio:.2f}x |")
        print(f"{row.name:<40} {row.median_us:8.0f} us  {row.ratio:.2f}x")
    if args.write:
        path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-identity.md"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
