"""A Solana sign-in as a ratio to one bare PyNaCl ed25519 verification, measured side by side.

    python benchmarks/solana.py [--rounds 9] [--number 2000]

Each candidate runs ``number`` times per round; rounds interleave the candidates (A, B, C, A, B,
C, ...) so drift on a shared machine hits all of them alike, and each ratio is the median of the
per-round ratios to the floor. The sign-in candidates make the calls the login route makes:
``normalize`` the address, ``parse_signature``, ``check_sign_in`` (parse and validate the SIWS
message) and ``verify``. The target is at most 2.5x the floor for a wallet's sign-in. The
"whole login" row is the same shape as the Ethereum login target of benchmarks/run.py: a secret
request and a raw-secret login through the mounted app (ASGI, in process), the wallet's
signatures made before timing starts.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Coroutine
from typing import Any

import nacl.signing
from run import AsgiDriver, http_scope, time_per_call

from asgi_wallet_auth import EthereumVerifier, LoginSettings, SolanaVerifier, WalletAuth
from asgi_wallet_auth.base58 import b58encode
from asgi_wallet_auth.chains.solana import SIGNING_DOMAIN
from asgi_wallet_auth.siws import SiwsMessage

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
KEY = nacl.signing.SigningKey(SEED)
OTHER = nacl.signing.SigningKey(b"\x07" * 32)
ADDRESS = b58encode(bytes(KEY.verify_key))
NONCE = "Qx7sKf2mP9dLw4Rt8vBn3cYh"
NOW = 1_767_225_600.0
SIWS = (
    f"example.com wants you to sign in with your Solana account:\n{ADDRESS}\n\n"
    "Sign in to Example\n\n"
    f"URI: https://example.com\nVersion: 1\nChain ID: mainnet\nNonce: {NONCE}\n"
    "Issued At: 2026-01-01T00:00:00.000Z\nExpiration Time: 2026-01-01T01:00:00.000Z\n"
    "Resources:\n- https://example.com/terms"
)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Drive a coroutine that never suspends (``verify`` does no I/O) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("the coroutine suspended")


def candidates() -> dict[str, Callable[[], object]]:
    verifier = SolanaVerifier()
    message = SIWS.encode()
    public_key = bytes(KEY.verify_key)
    bare = bytes(KEY.sign(message).signature)
    v1 = SIGNING_DOMAIN + b"\x01\x01" + public_key + message
    ledger = b58encode(bytes(KEY.sign(v1).signature))
    wrong = b58encode(bytes(OTHER.sign(message).signature))
    secret_signature = b58encode(bytes(KEY.sign(NONCE.encode()).signature))
    wallet_signature = b58encode(bare)

    def floor() -> object:
        return nacl.signing.VerifyKey(public_key).verify(message, bare)

    def parse_and_validate() -> object:
        return verifier.check_sign_in(
            SIWS,
            domain="example.com",
            uri="https://example.com",
            nonce=NONCE,
            address=ADDRESS,
            now=NOW,
            skew=60.0,
        )

    def sign_in(signature: str) -> Callable[[], object]:
        def call() -> object:
            address = verifier.normalize(ADDRESS)
            parsed = verifier.parse_signature(signature)
            chain_id = parse_and_validate()
            try:
                run(verifier.verify(message, parsed, address, chain_id=chain_id))
            except Exception as error:  # the refused candidate is timed through its refusal
                return error
            return chain_id

        return call

    def raw_secret() -> object:
        address = verifier.normalize(ADDRESS)
        run(verifier.verify(NONCE.encode(), verifier.parse_signature(secret_signature), address))
        return address

    return {
        "bare PyNaCl verify (floor)": floor,
        "SIWS sign-in, wallet signature": sign_in(wallet_signature),
        "raw-secret login, wallet signature": raw_secret,
        "SIWS parse + validate only": parse_and_validate,
        "SIWS sign-in, Ledger v1 envelope (tried last)": sign_in(ledger),
        "SIWS sign-in, wrong key (every layout tried)": sign_in(wrong),
    }


def whole_login(logins: int) -> Callable[[], Any]:
    """A secret request and a raw-secret login of the Solana wallet through the app."""
    driver = AsgiDriver()
    auth = WalletAuth(
        secret_key="benchmark-secret-key-that-is-long-enough-0123456789",  # noqa: S106
        domain="example.com",
        uri="https://example.com",
        chains=[EthereumVerifier(), SolanaVerifier()],
        login=LoginSettings(max_outstanding_secrets=10**9),  # one requester, a whole pool
    )
    headers = [(b"content-type", b"application/json")]
    secret_body = json.dumps({"wallet_address": ADDRESS}).encode()
    pool: list[bytes] = []
    for _ in range(logins):
        scope = http_scope("POST", "/login_random_secret", headers)
        _, body = driver.call(auth, scope, secret_body)
        secret = json.loads(body)["data"]
        signature = b58encode(bytes(KEY.sign(secret.encode()).signature))
        login = {"login_random_secret": secret, "signature": signature, "wallet_address": ADDRESS}
        pool.append(json.dumps(login).encode())

    async def call() -> None:
        status, _ = await driver._call(
            auth, http_scope("POST", "/login_random_secret", headers), secret_body
        )
        status2, _ = await driver._call(auth, http_scope("POST", "/login", headers), pool.pop())
        assert status == 200 and status2 == 200

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    calls: dict[str, Callable[[], Any]] = dict(candidates())
    calls["whole login (secret + raw-secret login, ASGI)"] = whole_login(
        args.rounds * args.number + 2
    )
    assert isinstance(SiwsMessage.parse(SIWS), SiwsMessage)
    assert calls["SIWS sign-in, wallet signature"]() == "mainnet"
    assert calls["SIWS sign-in, Ledger v1 envelope (tried last)"]() == "mainnet"
    assert calls["SIWS sign-in, wrong key (every layout tried)"]() != "mainnet"
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            samples[name].append(time_per_call(call, args.number))
    floor = samples["bare PyNaCl verify (floor)"]
    width = max(map(len, calls))
    print(f"{'candidate':<{width}}  {'median us':>9}  {'x floor':>7}")
    for name, values in samples.items():
        ratio = statistics.median(v / f for v, f in zip(values, floor, strict=True))
        print(f"{name:<{width}}  {statistics.median(values):>9.1f}  {ratio:>7.2f}")


if __name__ == "__main__":
    main()
