"""Tokens under each key type: first sight, repeat, signing; written to docs/benchmarks-keys.md.

    python benchmarks/keys.py [--rounds 70] [--quick] [--no-write]

First sight is a token the caches have not seen: each request carries the next of a pool of
distinct tokens larger than every cache, so each one is verified in full (and inserted, evicting
the oldest), as when many users each send a few requests. Anchors: the hand-written PyJWT
middleware for HS256 (issue target: at most 0.5x), one bare ``cryptography`` verification (or
signature) of the same token for ES256 and Ed25519 (target: at most 1.2x). Nothing here is a test.

Rounds are short (200 calls of each candidate in turn, 70 rounds): the machine's speed drifts
over seconds, and a ratio taken between neighbouring short runs drifts far less than one taken
between runs a second apart.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import run
from baselines import pyjwt_middleware
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from eth_account import Account
from jwt.algorithms import OKPAlgorithm
from run import KEY, SECRET, AsgiDriver, Row, http_scope

from asgi_wallet_auth import (
    JwksAuthenticator,
    KeySet,
    SigningKey,
    TokenSettings,
    WalletAuth,
    WalletAuthMiddleware,
)
from asgi_wallet_auth.envelope import json_bytes

ROOT = Path(__file__).resolve().parents[1]
URI = "https://example.com"
POOL = 6000  # more distinct tokens than the token cache (4096) and the middleware's fast path
ES_PRIVATE = ec.derive_private_key(0x1D2C3B4A5F6E7D8C9BAAB9C8D7E6F50413223140516, ec.SECP256R1())
ED_PRIVATE = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ECDSA = ec.ECDSA(hashes.SHA256())


async def bare(scope: Any, receive: Any, send: Any) -> None:
    """The app every middleware wraps: a fixed JSON answer."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def service(keys: KeySet | None) -> WalletAuth:
    tokens = TokenSettings() if keys is None else TokenSettings(keys=keys)
    return WalletAuth(secret_key=SECRET, domain="example.com", uri=URI, tokens=tokens)


def pool(auth: WalletAuth, size: int) -> list[str]:
    """``size`` distinct valid tokens of ``auth`` for the benchmark wallet."""
    address = Account.from_key(KEY).address
    now = int(time.time())
    return [auth.tokens.issue(subject=address, auth_time=now).token for _ in range(size)]


def scopes(tokens: list[str]) -> Iterator[dict[str, Any]]:
    """An endless cycle of ``GET /me`` scopes, one per token."""
    host = (b"host", b"example.com")
    built = [
        http_scope("GET", "/me", [host, (b"authorization", b"Bearer " + t.encode())])
        for t in tokens
    ]
    return itertools.cycle(built)


def requests(driver: AsgiDriver, app: Any, cycle: Iterator[dict[str, Any]]) -> Callable[[], Any]:
    """One request per call, each with the next scope of ``cycle``; checked to pass first."""
    status = driver.call(app, next(cycle))[0]
    assert status == 200, status
    call = driver._call

    async def one() -> None:
        await call(app, next(cycle), b"")

    return one


def compare(
    group: str, candidates: dict[str, Callable[[], Any]], anchor: str, number: int, rounds: int
) -> list[Row]:
    """run.py's interleaved rounds, timed in this thread's CPU time (see ``run.compare``)."""
    return run.compare(
        group,
        candidates,
        anchor,
        number,
        rounds,
        clock=time.thread_time,
        warm_up=max(1, number // 10),
    )


def hs256_group(driver: AsgiDriver) -> dict[str, Callable[[], Any]]:
    auth = service(None)
    tokens = pool(auth, POOL)
    first = tokens[0]
    return {
        "bare app": requests(driver, bare, scopes([first])),
        "hand-written PyJWT middleware": requests(
            driver, pyjwt_middleware(bare, SECRET, issuer=URI, audience=URI), scopes(tokens)
        ),
        "WalletAuthMiddleware, first sight": requests(
            driver, WalletAuthMiddleware(bare, auth=auth), scopes(tokens)
        ),
        "WalletAuthMiddleware, repeat token": requests(
            driver, WalletAuthMiddleware(bare, auth=service(None)), scopes([first])
        ),
    }


def asymmetric_group(
    driver: AsgiDriver, private: Any, algorithm: str
) -> dict[str, Callable[[], Any]]:
    key = SigningKey.from_key(private)
    keys = KeySet((key,))
    auth = service(keys)
    tokens = pool(auth, POOL)
    public = private.public_key()
    # The floor verifies the very same tokens, cycled in the same order, with everything that
    # is not the signature check prepared beforehand.
    prepared = []
    for token in tokens:
        head, body, signature = token.split(".")
        raw = jwt.utils.base64url_decode(signature)
        if algorithm == "ES256":
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            raw = encode_dss_signature(r, s)
        prepared.append((raw, f"{head}.{body}".encode()))
    floor_cycle = itertools.cycle(prepared)
    if algorithm == "ES256":

        def floor() -> None:
            signature, signing_input = next(floor_cycle)
            public.verify(signature, signing_input, ECDSA)
    else:

        def floor() -> None:
            signature, signing_input = next(floor_cycle)
            public.verify(signature, signing_input)

    reference = jwt.PyJWT()
    reference._jws.register_algorithm("Ed25519", OKPAlgorithm())
    pyjwt_name = algorithm
    verify_only = JwksAuthenticator(
        issuer=URI,
        audience=URI,
        keys=KeySet((SigningKey.from_key(public, kid=key.kid),)),
    )
    service_cycle = itertools.cycle(tokens)
    reference_cycle = itertools.cycle(tokens)
    verify = auth.tokens.verify

    def direct() -> None:
        verify(next(service_cycle))

    def pyjwt_decode() -> None:
        reference.decode(next(reference_cycle), public, algorithms=[pyjwt_name], audience=URI)

    return {
        f"bare cryptography verify ({algorithm})": floor,
        # What the middleware rows carry besides the middleware: the driver and the app.
        "bare app, no middleware": requests(driver, bare, scopes(tokens)),
        "TokenService.verify (direct path)": direct,
        "WalletAuthMiddleware, first sight": requests(
            driver, WalletAuthMiddleware(bare, auth=auth), scopes(tokens)
        ),
        "verify-only middleware (JwksAuthenticator), first sight": requests(
            driver, WalletAuthMiddleware(bare, auth=verify_only), scopes(tokens)
        ),
        "WalletAuthMiddleware, repeat token": requests(
            driver, WalletAuthMiddleware(bare, auth=service(keys)), scopes([tokens[0]])
        ),
        "PyJWT decode (the tests' reference)": pyjwt_decode,
    }


def signing_group(private: Any, algorithm: str) -> dict[str, Callable[[], Any]]:
    auth = service(KeySet((SigningKey.from_key(private),)))
    address = Account.from_key(KEY).address
    now = int(time.time())
    sample = auth.tokens.issue(subject=address, auth_time=now).token
    signing_input = sample.rsplit(".", 1)[0].encode()
    if algorithm == "ES256":

        def floor() -> None:
            private.sign(signing_input, ECDSA)
    else:

        def floor() -> None:
            private.sign(signing_input)

    issue = auth.tokens.issue
    encode = auth.tokens._signer.encode
    claims_json = json_bytes(auth.tokens.issue(subject=address, auth_time=now).claims)

    def ours() -> None:
        issue(subject=address, auth_time=now)

    def jws() -> None:
        encode(claims_json)

    return {
        f"bare cryptography sign ({algorithm})": floor,
        "the JWS of prepared claims (Signer.encode)": jws,
        "TokenService.issue (claims, jti, JWS)": ours,
    }


def render(rows: list[Row], rounds: int) -> str:
    lines = [
        "# Benchmarks: tokens under each key type",
        "",
        "Written by `python benchmarks/keys.py` (numbers below are from its last run). Each group",
        f"is timed in {rounds} interleaved rounds of 200 calls each, in CPU time of the",
        "benchmark's thread; a ratio is the median of per-round ratios",
        "against the group's anchor. First sight: every request carries a token no cache has",
        f"seen ({POOL} distinct tokens cycled, more than any cache holds). Absolute times are",
        "indicative only.",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}.",
        "",
        "| group | candidate | median µs | ratio | anchor |",
        "|---|---|---:|---:|---|",
    ]
    lines += [
        f"| {r.group} | {r.name} | {r.median_us:.1f} | {r.ratio:.2f}x | {r.anchor} |" for r in rows
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=70)
    parser.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args()
    number = 20 if args.quick else 200
    driver = AsgiDriver()
    rows: list[Row] = []
    rows += compare(
        "HS256", hs256_group(driver), "hand-written PyJWT middleware", number, args.rounds
    )
    for private, algorithm in ((ES_PRIVATE, "ES256"), (ED_PRIVATE, "Ed25519")):
        candidates = asymmetric_group(driver, private, algorithm)
        anchor = f"bare cryptography verify ({algorithm})"
        rows += compare(algorithm, candidates, anchor, number, args.rounds)
        signing = signing_group(private, algorithm)
        anchor = f"bare cryptography sign ({algorithm})"
        rows += compare(f"{algorithm} signing", signing, anchor, number, args.rounds)
    width = max(len(r.group) for r in rows)
    name_width = max(len(r.name) for r in rows)
    for r in rows:
        print(
            f"{r.group:<{width}} {r.name:<{name_width}} {r.median_us:8.1f} us  {r.ratio:6.2f}x"
            f"  (vs {r.anchor})"
        )
    if not args.no_write:
        out = ROOT / "docs" / "benchmarks-keys.md"
        out.write_text(render(rows, args.rounds), encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
