"""Side-by-side benchmarks: medians and same-run ratios, written to docs/benchmarks.md.

    python benchmarks/run.py [--rounds 7] [--quick] [--no-write] [--peers]

Candidates of one group are timed in interleaved rounds (A, B, C, A, B, C, ...) so drift on a noisy
machine hits all of them alike; each ratio is the median of the per-round ratios. Nothing here is a
test: no time is asserted anywhere in the suite. ``--peers`` also times siwe-py, which cannot share
this environment, from its own virtualenv (benchmarks/.peer-venv, built on first use: needs the
network once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import inspect
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from baselines import DoNothingMiddleware, PyJWTBackend, pyjwt_middleware
from eth_account import Account
from eth_account.messages import encode_defunct
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_wallet_auth import (
    LoginSettings,
    MemoryNonceStore,
    TokenSettings,
    WalletAuth,
    WalletAuthMiddleware,
)
from asgi_wallet_auth.signatures import eip191_digest, keccak256, recover_address
from asgi_wallet_auth.siwe import SiweMessage

ROOT = Path(__file__).resolve().parents[1]
MIDDLEWARE_ROUNDS_FACTOR = 3
PEER_VENV = ROOT / "benchmarks" / ".peer-venv"
# siwe-py 4.4.0 pins eth-account<0.14, and fails to import with abnf 2.9 (a GrammarError on the
# core rules): it gets a virtualenv of its own, with the abnf it was released against.
PEER_REQUIREMENTS = ("siwe==4.4.0", "abnf==2.2.0")
KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SECRET = "benchmark-secret-key-0123456789abcdef"  # noqa: S105 - a throwaway benchmark key
SIWE_TEXT = (
    "example.com wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n"
    "Sign in to Example\n\n"
    "URI: https://example.com\nVersion: 1\nChain ID: 1\nNonce: 32891757abcdef01\n"
    "Issued At: 2026-01-01T00:00:00.000Z\nExpiration Time: 2026-01-01T01:00:00.000Z\n"
    "Resources:\n- https://example.com/terms"
)


@dataclass
class Row:
    group: str
    name: str
    median_us: float
    ratio: float
    anchor: str


LOOP = asyncio.new_event_loop()


def time_per_call(
    fn: Callable[[], Any], number: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Microseconds per call; an ``async def`` candidate runs ``number`` times in one loop entry,
    so the event loop's own start-up is not charged to it."""
    if inspect.iscoroutinefunction(fn):

        async def run() -> float:
            start = clock()
            for _ in range(number):
                await fn()
            return clock() - start

        return LOOP.run_until_complete(run()) / number * 1e6
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number * 1e6


def compare(
    group: str,
    candidates: dict[str, Callable[[], Any]],
    anchor: str,
    number: int,
    rounds: int,
    *,
    clock: Callable[[], float] = time.perf_counter,
    warm_up: int = 1,
) -> list[Row]:
    """Interleaved rounds; per-round ratios against ``anchor``; medians of both.

    ``clock`` is wall time by default; ``time.thread_time`` charges a candidate only the CPU
    time of this thread, so time spent preempted by other work on the host is not counted.
    """
    for fn in candidates.values():  # warm up caches and lazy imports
        time_per_call(fn, warm_up, clock)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(time_per_call(fn, number, clock))
    rows = []
    for name, values in samples.items():
        ratios = [v / a for v, a in zip(values, samples[anchor], strict=True)]
        rows.append(Row(group, name, statistics.median(values), statistics.median(ratios), anchor))
    return rows


# -- recovery --------------------------------------------------------------------------------


def recovery_candidates() -> dict[str, Callable[[], Any]]:
    account = Account.from_key(KEY)
    message = b"c0ffee" * 7  # a secret-sized message
    signed = account.sign_message(encode_defunct(primitive=message))
    sig_hex = signed.signature.hex()
    sig_hex = sig_hex if sig_hex.startswith("0x") else "0x" + sig_hex
    raw = bytes.fromhex(sig_hex[2:])
    compact = raw[:64] + bytes([raw[64] - 27])
    assert recover_address(message, sig_hex) == account.address

    def floor() -> bytes:
        # The least Python can do: one digest, one recovery, one hash of the key. No checks.
        pub = coincurve.PublicKey.from_signature_and_message(
            compact, eip191_digest(message), hasher=None
        )
        return keccak256(pub.format(compressed=False)[1:])[-20:]

    encoded = encode_defunct(primitive=message)
    return {
        "coincurve floor": floor,
        "asgi-wallet-auth recover_address": lambda: recover_address(message, sig_hex),
        "eth-account recover_message": lambda: Account.recover_message(encoded, signature=raw),
    }


# -- ASGI calls --------------------------------------------------------------------------------


class AsgiDriver:
    """Calls an ASGI app in process, many times per event-loop entry."""

    def __init__(self) -> None:
        self.loop = LOOP

    def call(self, app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
        return self.loop.run_until_complete(self._call(app, scope, body))

    async def _call(self, app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    def repeat(self, app: Any, scope: dict[str, Any], number: int) -> float:
        async def run() -> float:
            start = time.perf_counter()
            for _ in range(number):
                await self._call(app, scope, b"")
            return (time.perf_counter() - start) / number * 1e6

        return self.loop.run_until_complete(run())


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def login_candidates(driver: AsgiDriver, logins: int) -> dict[str, Callable[[], Any]]:
    account = Account.from_key(KEY)
    # One requester holds the whole pool of pre-signed secrets: lift its share of outstanding
    # secrets (the count itself is still kept, and timed, on every secret issued).
    auth = WalletAuth(
        secret_key=SECRET,
        domain="example.com",
        uri="https://example.com",
        login=LoginSettings(max_outstanding_secrets=10**9),
    )
    json_headers = [(b"content-type", b"application/json")]
    secret_body = json.dumps({"wallet_address": account.address}).encode()
    # Pre-sign a pool of secrets so the timed loop measures the service, not the wallet.
    pool: list[bytes] = []

    def refill(n: int) -> None:
        for _ in range(n):
            _, body = driver.call(
                auth, http_scope("POST", "/login_random_secret", json_headers), secret_body
            )
            secret = json.loads(body)["data"]
            sig = account.sign_message(encode_defunct(text=secret)).signature.hex()
            sig = sig if sig.startswith("0x") else "0x" + sig
            pool.append(
                json.dumps(
                    {
                        "login_random_secret": secret,
                        "signature": sig,
                        "wallet_address": account.address,
                    }
                ).encode()
            )

    # Signed before timing starts: the wallet's work is not the service's.
    refill(logins)

    async def whole_login() -> None:
        status, _ = await driver._call(
            auth, http_scope("POST", "/login_random_secret", json_headers), secret_body
        )
        status2, _ = await driver._call(
            auth, http_scope("POST", "/login", json_headers), pool.pop()
        )
        assert status == 200 and status2 == 200

    rec = recovery_candidates()
    return {
        "coincurve floor": rec["coincurve floor"],
        "whole login (secret + login, ASGI)": whole_login,
    }


def checked_repeats(
    driver: AsgiDriver, apps: dict[str, Any], scope: dict[str, Any], number: int
) -> dict[str, Callable[[], Any]]:
    """One ``driver.repeat`` per app, each app first checked to answer 200: a refusal is fast."""
    candidates: dict[str, Callable[[], Any]] = {}
    for name, app in apps.items():
        status = driver.call(app, scope)[0]
        assert status == 200, f"{name}: status {status}"
        # Bound now: a lambda over the loop variable would time the last app for every name.
        candidates[name] = lambda app=app: driver.repeat(app, scope, number)
    return candidates


def bearer_scope(auth: WalletAuth) -> dict[str, Any]:
    """``GET /me`` with a valid access token of ``auth`` in its ``Authorization`` header."""
    account = Account.from_key(KEY)
    token = auth.tokens.issue(subject=account.address, auth_time=int(time.time())).token
    headers = [(b"host", b"example.com"), (b"authorization", f"Bearer {token}".encode())]
    return http_scope("GET", "/me", headers)


def middleware_candidates(driver: AsgiDriver, number: int) -> dict[str, Callable[[], Any]]:
    """One authenticated request to a trivial raw ASGI app, bare and behind each middleware."""
    auth = WalletAuth(secret_key=SECRET, domain="example.com", uri="https://example.com")
    # The same secret and claims without any token cache: every request verifies the token.
    uncached = WalletAuth(
        secret_key=SECRET,
        domain="example.com",
        uri="https://example.com",
        tokens=TokenSettings(cache_size=0),
    )
    body = b'{"ok":true}'

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # WalletAuth's issuer and audience both default to its uri: the hand-written backend checks
    # exactly the claims of the token our middleware gets.
    apps = {
        "bare app": bare,
        "do-nothing pure-ASGI middleware": DoNothingMiddleware(bare),
        "with WalletAuthMiddleware (valid token)": WalletAuthMiddleware(bare, auth=auth),
        "with WalletAuthMiddleware, token cache off": WalletAuthMiddleware(bare, auth=uncached),
        "hand-written PyJWT middleware": pyjwt_middleware(
            bare, SECRET, issuer=auth.tokens.issuer, audience=auth.tokens.audience
        ),
    }
    return checked_repeats(driver, apps, bearer_scope(auth), number)


def starlette_candidates(driver: AsgiDriver, number: int) -> dict[str, Callable[[], Any]]:
    """The same request to a real Starlette app with one route, bare and behind each middleware.

    The handler is the same for all three and never reads ``request.user``: the bare app has none.
    """
    auth = WalletAuth(secret_key=SECRET, domain="example.com", uri="https://example.com")
    backend = PyJWTBackend(SECRET, issuer=auth.tokens.issuer, audience=auth.tokens.audience)

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def app(*middleware: Middleware) -> Starlette:
        return Starlette(routes=[Route("/me", me)], middleware=list(middleware))

    apps = {
        "bare Starlette app": app(),
        "with WalletAuthMiddleware (valid token)": app(Middleware(WalletAuthMiddleware, auth=auth)),
        "hand-written PyJWT middleware": app(
            Middleware(AuthenticationMiddleware, backend=backend)
        ),
    }
    return checked_repeats(driver, apps, bearer_scope(auth), number)


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway redis-server on a free loopback port (None where it is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def store_candidates(
    driver: AsgiDriver, url: str | None, pairs: int
) -> dict[str, Callable[[], Any]]:
    """One secret's life (put, then take) per pair, ``pairs`` pairs per timed call."""
    memory = MemoryNonceStore()
    candidates: dict[str, Callable[[], Any]] = {}

    async def sequential(store: Any) -> None:
        for i in range(pairs):
            await store.put(f"k{i}", "1", 300)
            await store.take(f"k{i}")

    candidates["memory put+take"] = lambda: driver.loop.run_until_complete(sequential(memory))
    if url is None:
        return candidates
    from asgi_wallet_auth.stores.redis import RedisNonceStore

    redis_store = RedisNonceStore(url)

    async def concurrent(store: Any) -> None:
        # Many logins at once, as under load: the client's pool overlaps their round trips.
        async def one(i: int) -> None:
            await store.put(f"c{i}", "1", 300)
            await store.take(f"c{i}")

        await asyncio.gather(*(one(i) for i in range(pairs)))

    async def pipelined() -> None:
        # The server's ceiling: every command of the batch in one round trip.
        pipe = redis_store.client.pipeline(transaction=False)
        for i in range(pairs):
            pipe.set(f"p{i}", "1", nx=True, px=300_000)
        for i in range(pairs):
            pipe.getdel(f"p{i}")
        await pipe.execute()

    candidates["redis put+take, one at a time"] = lambda: driver.loop.run_until_complete(
        sequential(redis_store)
    )
    candidates["redis put+take, 100 logins at once"] = lambda: driver.loop.run_until_complete(
        concurrent(redis_store)
    )
    candidates["redis put+take, pipelined batch"] = lambda: driver.loop.run_until_complete(
        pipelined()
    )
    return candidates


def refusal_candidates(driver: AsgiDriver) -> dict[str, Callable[[], Any]]:
    """What garbage costs: refusals at each depth of the login, against one recovery."""
    account = Account.from_key(KEY)
    auth = WalletAuth(secret_key=SECRET, domain="example.com", uri="https://example.com")
    json_headers = [(b"content-type", b"application/json")]
    garbage = json.dumps(
        {"login_random_secret": "x", "signature": "0x00", "wallet_address": "nope"}
    ).encode()
    secret = json.loads(
        driver.call(
            auth,
            http_scope("POST", "/login_random_secret", json_headers),
            json.dumps({"wallet_address": account.address}).encode(),
        )[1]
    )["data"]
    other = Account.from_key("0x" + "22" * 32)
    sig = other.sign_message(encode_defunct(text=secret)).signature.hex()
    wrong_signer = json.dumps(
        {
            "login_random_secret": secret,
            "signature": sig if sig.startswith("0x") else "0x" + sig,
            "wallet_address": account.address,
        }
    ).encode()
    scope = http_scope("POST", "/login", json_headers)

    def refused(body: bytes, status: int, call_scope: dict[str, Any] = scope) -> Callable[[], Any]:
        async def call() -> None:
            assert (await driver._call(auth, call_scope, body))[0] == status

        return call

    return {
        "coincurve floor": recovery_candidates()["coincurve floor"],
        "refused: wrong content type": refused(garbage, 415, http_scope("POST", "/login", [])),
        "refused: malformed fields": refused(garbage, 400),
        "refused: wrong signer (after recovery)": refused(wrong_signer, 401),
    }


def memory_per_secret(count: int) -> float:
    """Bytes per outstanding secret in MemoryNonceStore, measured in a fresh interpreter."""
    code = f"""
import asyncio, secrets, tracemalloc
from asgi_wallet_auth import MemoryNonceStore
store = MemoryNonceStore(maxsize={count})
address = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
async def fill():
    # Keys are made inside the trace: what the store keeps of them is counted too.
    for _ in range({count}):
        await store.put(f"login:{{address}}:{{secrets.token_hex(20)}}", "1", 300)
asyncio.run(fill())
after = tracemalloc.get_traced_memory()[0]
print((after - before) / {count})
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


# server_app's apps under uvicorn, each with what it is called in the table and docs.
SERVERS = {
    "bare": "bare app",
    "wrapped": "with WalletAuthMiddleware (valid token)",
    "pyjwt": "hand-written PyJWT middleware",
}


@dataclass
class Served:
    """Under uvicorn: the bare app's requests per second and each middleware's ratio to it."""

    bare_rps: float
    ratios: dict[str, float]  # server_app name -> median of per-round ratios to "bare"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_status(port: int, token: str, timeout: float = 20) -> int:
    """Wait until the server on ``port`` accepts, then return the status of one ``GET /me``."""
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/me", headers={"Authorization": f"Bearer {token}"})
            return connection.getresponse().status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            connection.close()


def under_uvicorn(seconds: int, rounds: int) -> Served | None:
    """Requests per second of the bare app and of each middleware, under uvicorn, driven by wrk.

    All servers start once, are checked to answer 200 and warmed up; then short runs go round
    them, the order rotated each round, so drift and warm-up hit all alike. Loopback only,
    bounded in time.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    bench = ROOT / "benchmarks"
    token = subprocess.run(
        [sys.executable, str(bench / "server_app.py"), "token"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}

    def load(port: int, duration: int) -> float:
        out = subprocess.run(
            [
                wrk,
                "-t1",
                "-c32",
                f"-d{duration}s",
                "-H",
                f"Authorization: Bearer {token}",
                f"http://127.0.0.1:{port}/me",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 30,
        ).stdout
        # Refusals are cheap: a rate that counts any of them would flatter the middleware.
        if "Non-2xx" in out:
            raise RuntimeError(f"wrk saw refused requests on port {port}:\n{out}")
        return next(
            float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec")
        )

    names = list(SERVERS)
    try:
        for name in names:
            port = free_port()
            servers[name] = (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        f"server_app:{name}",
                        "--port",
                        str(port),
                        "--host",
                        "127.0.0.1",
                        "--http",
                        "httptools",
                        "--loop",
                        "uvloop",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    cwd=bench,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
                port,
            )
        for name, (_, port) in servers.items():
            status = wait_for_status(port, token)
            assert status == 200, f"server_app:{name}: status {status}"
            load(port, 1)  # warm-up, discarded
        results: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(rounds):
            shift = round_ % len(names)  # each server goes first, middle and last in turn
            for name in names[shift:] + names[:shift]:
                results[name].append(load(servers[name][1], seconds))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=10)
    ratios = {
        name: statistics.median(
            [w / b for w, b in zip(results[name], results["bare"], strict=True)]
        )
        for name in names
        if name != "bare"
    }
    return Served(statistics.median(results["bare"]), ratios)


def parsing_candidates() -> dict[str, Callable[[], Any]]:
    candidates: dict[str, Callable[[], Any]] = {
        "asgi-wallet-auth SiweMessage.parse": lambda: SiweMessage.parse(SIWE_TEXT)
    }
    try:
        from siwe import SiweMessage as PeerMessage  # optional: pip install siwe

        candidates["siwe-py SiweMessage.from_message"] = lambda: PeerMessage.from_message(SIWE_TEXT)
    except Exception as exc:  # the peer is optional: say why it is missing
        print(f"siwe-py not in this environment ({type(exc).__name__}): --peers times it")
    return candidates


def project_copy(destination: Path) -> Path:
    """What ``pip install`` needs of this project, copied: a build in the work tree itself
    leaves ``build/`` behind and rewrites ``src/*.egg-info`` under the other engineers' feet."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(
        ROOT / "src",
        destination / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    return destination


def peer_python() -> Path:
    """The peer virtualenv's interpreter, with siwe-py and the current project installed.

    The virtualenv is made once and reused; the project is reinstalled on every run (pip rebuilds
    a local directory) so the peers are timed against the code in the work tree, not a stale copy.
    Raises ``OSError`` or ``subprocess.SubprocessError`` when it cannot be built (no network).
    """
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEER_VENV.relative_to(ROOT)} (first --peers run)")
        subprocess.run(
            [sys.executable, "-m", "venv", str(PEER_VENV)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    with tempfile.TemporaryDirectory() as workdir:
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--retries",
                "1",  # offline, fail in seconds rather than after pip's five retries
                *PEER_REQUIREMENTS,
                str(project_copy(Path(workdir))),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    return python


def peer_rows(number: int, rounds: int) -> list[Row]:
    """siwe-py's rows, timed by peers.py in the peer virtualenv; none (and why) if it fails.

    A missing peer never fails the run: these rows are the only ones that need the network.
    """
    try:
        python = peer_python()
        out = subprocess.run(
            [
                str(python),
                str(ROOT / "benchmarks" / "peers.py"),
                "--number",
                str(number),
                "--rounds",
                str(rounds),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
        # The rows are the last line: anything a library prints on import comes before.
        return [Row(**fields) for fields in json.loads(out.strip().splitlines()[-1])]
    except subprocess.CalledProcessError as exc:
        # pip's warnings (about this machine's extra indexes, say) would hide its error.
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        tail = "\n".join([line for line in lines if not line.startswith("WARNING:")][-5:])
        print(f"siwe-py peers not measured: {' '.join(map(str, exc.cmd[:4]))} ... failed:\n{tail}")
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, IndexError) as exc:
        print(f"siwe-py peers not measured: {type(exc).__name__}: {exc}")
    return []


def chart(rows: list[Row], path: Path) -> None:
    """A bar chart of the ratios, where matplotlib is installed (pip install matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart written")
        return
    shown = [r for r in rows if r.name != r.anchor]
    fig, ax = plt.subplots(figsize=(12, 0.42 * len(shown) + 1.2))
    ax.barh([f"{r.group}: {r.name}" for r in shown], [r.ratio for r in shown], color="#4a7ab0")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("ratio to the group's anchor (same run, median; log scale)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


def render_markdown(
    rows: list[Row],
    rounds: int,
    per_secret: float,
    count: int,
    served: Served | None,
) -> str:
    peers = any(r.group.endswith("(peers)") for r in rows)
    command = "python benchmarks/run.py" + (" --peers" if peers else "")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (numbers below are from its last run).",
        f"Each group is timed in {rounds} interleaved rounds (the two middleware groups, whose"
        f" rounds are short, in {MIDDLEWARE_ROUNDS_FACTOR * rounds}); a ratio is the median of",
        "per-round ratios against the group's anchor, so it holds even when the machine's",
        "speed drifts. Absolute times are indicative only.",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}.",
        "",
        "| group | candidate | median µs | ratio | anchor |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r.group} | {r.name} | {r.median_us:.1f} | {r.ratio:.2f}x | {r.anchor} |")
    lines += [
        "",
        f"Memory: {per_secret:.0f} bytes per outstanding secret in `MemoryNonceStore` with"
        f" {count:,} secrets outstanding (tracemalloc, fresh interpreter; key and value included).",
        "",
    ]
    if served is None:
        lines.append("Under uvicorn: not measured (wrk was not installed).")
    else:
        lines.append(
            f"Under uvicorn (httptools, uvloop; wrk -t1 -c32 on loopback): the bare app served"
            f" {served.bare_rps:,.0f} requests/s; with `WalletAuthMiddleware` and a valid token,"
            f" {served.ratios['wrapped']:.2f}x of that; with the hand-written PyJWT middleware"
            f" around the same app, {served.ratios['pyjwt']:.2f}x (medians of per-round ratios;"
            " the three servers checked to answer 200 and warmed up, then short wrk runs going"
            " round them, the order rotated each round). On two shared cores single runs of"
            " `WalletAuthMiddleware`'s ratio spread by about ±5%, so read it as a range."
        )
    lines.append("")
    lines.append("![ratios](benchmarks.png)")
    lines += [
        "",
        "What each figure is measured against, where the time goes and what bounds the rest:",
        "[performance.md](performance.md).",
        "",
        "Groups:",
        "- *recovery*: one EIP-191 signer recovery. The floor is coincurve's recovery plus",
        "  the two Keccak hashes with no input checks at all; ours adds the strict format, v",
        "  and low-s checks and the EIP-55 checksum.",
        "- *login*: `POST /login_random_secret` then `POST /login` on the app alone, called",
        "  as ASGI (memory stores), against the same floor.",
        "- *middleware*: one request with a valid bearer token to a trivial raw ASGI app, called",
        "  as ASGI: bare (the anchor); behind a do-nothing pure-ASGI middleware (the cost floor of",
        "  any middleware layer); behind `WalletAuthMiddleware`, which answers the repeated token",
        "  from its cache of verified `Authorization` headers; behind `WalletAuthMiddleware` with",
        "  `token_cache_size=0`, which verifies it on every request; and behind a hand-written",
        "  one, Starlette's `AuthenticationMiddleware` with a backend calling PyJWT's",
        '  `jwt.decode(token, secret, algorithms=["HS256"], audience=..., issuer=...)` on every',
        "  request (`benchmarks/baselines.py`). Every candidate checks the same token.",
        "- *middleware (Starlette app)*: the same request to a real `Starlette` app with one",
        "  route returning `JSONResponse({\"ok\": True})` (the anchor), then that app with",
        "  `Middleware(WalletAuthMiddleware, ...)` and with the hand-written PyJWT middleware.",
        "  The handler is the same in all three and does not read `request.user`.",
        "- *parsing*: one EIP-4361 message parsed (siwe-py appears where it is installed in this",
        "  environment; `--peers` times it in its own, below).",
        "- *parsing (peers)*, *verification (peers)*: only with `--peers`. siwe-py 4.4.0 cannot",
        "  share this environment (see [benchmarks-peers.md](benchmarks-peers.md)), so",
        "  `benchmarks/peers.py` runs in `benchmarks/.peer-venv` (siwe 4.4.0, abnf 2.2.0 and this",
        "  project) and times both libraries in its one process, in the same interleaved rounds.",
        "  Parsing: the message of *parsing*, through siwe-py's default ABNF parser and its regex",
        "  parser (`from_message(text, abnf=False)`). Verification: a message signed with",
        "  eth-account, each library with each siwe-py parser;",
        "  ours parses, calls `validate` (domain, URI, nonce, address, chain id, time window) and",
        "  checks that `recover_address` gives the message's address; siwe-py's `from_message`",
        "  then `verify(signature, domain=..., nonce=..., timestamp=...)`, which checks the",
        "  domain, the nonce and the time window (not the URI or the chain id), builds a `Web3`",
        "  object and recovers the signer with eth-account.",
        "- *refusals*: what a refused login costs at each depth, against one recovery: garbage",
        "  is turned away in microseconds, before any curve arithmetic.",
        "- *stores*: one secret's life (a `put` and a `take`), per secret, over batches of 100,",
        "  against a redis-server on loopback started by the harness: one login at a time (two",
        "  round trips each), 100 logins at once (round trips overlap in the connection pool),",
        "  and one pipelined batch (the server's ceiling; what a bulk job could reach).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer iterations, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also time siwe-py from benchmarks/.peer-venv (built on first use: needs the network)",
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    driver = AsgiDriver()
    rows: list[Row] = []
    rows += compare(
        "recovery", recovery_candidates(), "coincurve floor", 2000 // scale, args.rounds
    )
    login_number = 300 // scale
    logins = login_candidates(driver, login_number * args.rounds + 1)
    rows += compare("login", logins, "coincurve floor", login_number, args.rounds)
    mw_number = 5000 // scale
    # A middleware round is short and one slow round moves a small ratio a lot: more of them.
    mw_rounds = MIDDLEWARE_ROUNDS_FACTOR * args.rounds
    # repeat() already loops internally; time one call of it per round, then divide.
    for group, candidates, anchor in (
        ("middleware", middleware_candidates(driver, mw_number), "bare app"),
        (
            "middleware (Starlette app)",
            starlette_candidates(driver, mw_number),
            "bare Starlette app",
        ),
    ):
        rows += compare(group, candidates, anchor, 1, mw_rounds)
        for row in rows[-len(candidates) :]:
            row.median_us /= mw_number
    rows += compare(
        "parsing",
        parsing_candidates(),
        "asgi-wallet-auth SiweMessage.parse",
        2000 // scale,
        args.rounds,
    )
    if args.peers:
        # siwe-py's ABNF parser takes milliseconds a message: fewer calls keep the run short.
        rows += peer_rows(500 // scale, args.rounds)
    rows += compare(
        "refusals", refusal_candidates(driver), "coincurve floor", 2000 // scale, args.rounds
    )
    pairs = 100
    with redis_server() as url:
        stores = store_candidates(driver, url, pairs)
        rows += compare("stores", stores, "memory put+take", 1, args.rounds)
    for row in rows[-len(stores) :]:
        row.median_us /= pairs  # per secret: one put and one take
    if url is None:
        print("redis-server not installed: the Redis store rows are left out")
    count = 100_000 if args.quick else 1_000_000
    per_secret = memory_per_secret(count)
    print(f"memory      {per_secret:.0f} bytes per outstanding secret at {count:,} secrets")
    served = under_uvicorn(2 if args.quick else 3, 2 if args.quick else 8)
    if served is None:
        print("wrk not installed: the under-uvicorn rows are left out (apt-get install wrk)")
    else:
        relative = "; ".join(f"{SERVERS[n]} {ratio:.2f}x" for n, ratio in served.ratios.items())
        print(f"uvicorn     bare app {served.bare_rps:,.0f} req/s; {relative} of that")
    group_width = max(len(r.group) for r in rows)
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(
            f"{r.group:<{group_width}} {r.name:<{width}} {r.median_us:10.1f} us"
            f"  {r.ratio:6.2f}x  (vs {r.anchor})"
        )
    if not args.no_write:
        out = ROOT / "docs" / "benchmarks.md"
        out.write_text(
            render_markdown(rows, args.rounds, per_secret, count, served), encoding="utf-8"
        )
        chart(rows, ROOT / "docs" / "benchmarks.png")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
