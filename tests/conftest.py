"""Shared fixtures: fixed keys, a controllable clock, real signatures, and an in-process client."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

# Fixed private keys: the suite is deterministic and never depends on a random wallet.
WALLET_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
OTHER_KEY = "0x" + "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
DOMAIN = "example.com"
URI = "https://example.com"
#: 2026-01-01T00:00:00Z: every test starts at the same instant.
T0 = 1_767_225_600.0

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test under anyio without marking each one."""
    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        pytest.mark.anyio(obj)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A clock the test moves by hand; callable like ``time.time``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wallet() -> LocalAccount:
    return Account.from_key(WALLET_KEY)


@pytest.fixture
def other_wallet() -> LocalAccount:
    return Account.from_key(OTHER_KEY)


def sign_text(account: LocalAccount, text: str) -> str:
    """An EIP-191 ``personal_sign`` signature of ``text``, as ``0x`` + 130 hex."""
    signature = account.sign_message(encode_defunct(text=text)).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


def client_for(app: object, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An httpx client calling the ASGI app in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (tests isolate themselves by key prefix)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (tests isolate themselves by table prefix)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def contracts() -> dict[str, bytes]:
    """The mock wallets of tests/contracts, compiled with solc from tests/js/chain."""
    from tests.anvil_node import compile_contracts

    return compile_contracts()


@pytest.fixture(scope="session")
def anvil() -> Iterator[Any]:
    """One real anvil node (Prague hardfork) for the session, on a free loopback port."""
    from tests.anvil_node import AnvilNode

    node = AnvilNode()
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def wallets(anvil: Any, contracts: dict[str, bytes]) -> Any:
    """The mock wallets deployed on ``anvil`` (and the counterfactual one predicted)."""
    from tests.anvil_node import CHAIN_ID
    from tests.chain_kit import deploy

    return deploy(anvil.url, CHAIN_ID, contracts)


@pytest.fixture(scope="session")
def identity_chain(anvil: Any) -> Any:
    """Mock ERC-20/721/1155 tokens and a small ENS on ``anvil`` (tests/identity_chain.py)."""
    from tests.anvil_node import CHAIN_ID, CONTRACTS, compile_contracts
    from tests.identity_chain import deploy_identity

    contracts = compile_contracts(CONTRACTS / "MockIdentity.sol")
    return deploy_identity(anvil.url, CHAIN_ID, contracts)
