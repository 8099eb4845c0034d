"""siwe-py against asgi-wallet-auth, in one process: run only inside benchmarks/.peer-venv.

    benchmarks/.peer-venv/bin/python benchmarks/peers.py [--number 500] [--rounds 7]

``run.py --peers`` builds that virtualenv (siwe==4.4.0, abnf==2.2.0 and this project), runs this
script there and reads its rows, printed as one JSON list on the last line of stdout. Both
libraries are timed with ``run.compare``: the same interleaved rounds and per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run.py, beside this file

from eth_account import Account
from eth_account.messages import encode_defunct
from run import KEY, SIWE_TEXT, compare
from siwe import SiweMessage as PeerMessage
from siwe import VerificationError

from asgi_wallet_auth.signatures import recover_address
from asgi_wallet_auth.siwe import SiweMessage, parse_rfc3339

OURS_PARSE = "asgi-wallet-auth SiweMessage.parse"
OURS_VERIFY = "asgi-wallet-auth parse + validate + recover_address"
DOMAIN = "example.com"
URI = "https://example.com"
NONCE = "32891757abcdef01"
# Inside the message's validity window, so every check passes and the full path is timed.
NOW = "2026-01-01T00:30:00.000Z"


def parsing_candidates() -> dict[str, Callable[[], Any]]:
    """One parse of the same EIP-4361 text; siwe-py with each of its two parsers."""
    ours = SiweMessage.parse(SIWE_TEXT)
    # Both of siwe-py's parsers must read the message as ours does, or the race is not the same.
    for abnf in (True, False):
        assert PeerMessage.from_message(SIWE_TEXT, abnf=abnf).prepare_message() == str(ours)
    return {
        OURS_PARSE: lambda: SiweMessage.parse(SIWE_TEXT),
        "siwe-py from_message (ABNF parser, its default)": lambda: PeerMessage.from_message(
            SIWE_TEXT
        ),
        "siwe-py from_message(abnf=False) (regex parser)": lambda: PeerMessage.from_message(
            SIWE_TEXT, abnf=False
        ),
    }


def verification_candidates() -> dict[str, Callable[[], Any]]:
    """A signed sign-in message checked end to end, as a login would check it."""
    account = Account.from_key(KEY)
    text = str(
        SiweMessage(
            domain=DOMAIN,
            address=account.address,
            statement="Sign in to Example",
            uri=URI,
            version="1",
            chain_id=1,
            nonce=NONCE,
            issued_at="2026-01-01T00:00:00.000Z",
            expiration_time="2026-01-01T01:00:00.000Z",
            resources=("https://example.com/terms",),
        )
    )
    signature = account.sign_message(encode_defunct(text=text)).signature.hex()
    signature = signature if signature.startswith("0x") else "0x" + signature
    now = parse_rfc3339(NOW)
    moment = datetime.fromtimestamp(now, timezone.utc)  # siwe-py takes a datetime

    def ours() -> None:
        message = SiweMessage.parse(text)
        message.validate(
            domain=DOMAIN, uri=URI, nonce=NONCE, address=account.address, chain_ids={1}, now=now
        )
        if recover_address(text.encode("utf-8"), signature) != message.address:
            raise AssertionError("signature does not recover to the message's address")

    def peer(abnf: bool) -> Callable[[], None]:
        def verify() -> None:
            # verify() raises on any failure and returns None on success.
            PeerMessage.from_message(text, abnf=abnf).verify(
                signature, domain=DOMAIN, nonce=NONCE, timestamp=moment
            )

        return verify

    candidates = {
        OURS_VERIFY: ours,
        "siwe-py from_message + verify (ABNF parser)": peer(True),
        "siwe-py from_message(abnf=False) + verify (regex parser)": peer(False),
    }
    for verify in candidates.values():  # each must succeed: a refusal would be timed as a win
        verify()
    # And siwe-py must really check the signature: another key's signature is refused.
    other = Account.from_key("0x" + "22" * 32).sign_message(encode_defunct(text=text))
    refused = False
    try:
        PeerMessage.from_message(text).verify(
            "0x" + other.signature.hex().removeprefix("0x"),
            domain=DOMAIN,
            nonce=NONCE,
            timestamp=moment,
        )
    except VerificationError:
        refused = True
    assert refused, "siwe-py accepted another key's signature"
    return candidates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500, help="calls per candidate per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = compare(
        "parsing (peers)", parsing_candidates(), OURS_PARSE, args.number, args.rounds
    )
    rows += compare(
        "verification (peers)", verification_candidates(), OURS_VERIFY, args.number, args.rounds
    )
    print(json.dumps([asdict(row) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
