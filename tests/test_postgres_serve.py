"""``serve --database-url``: several service processes sharing PostgreSQL (and Redis), for real."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth.stores.postgres import PostgresUserStore
from tests.conftest import SECRET_KEY, URI, sign_text
from tests.postgres_server import PostgresServer
from tests.processes import free_port, running_service
from tests.redis_server import RedisServer
from tests.test_web3mq import login_body


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which the test stops and restarts."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


async def create_database(url: str) -> str:
    """A new empty database on the server; its DSN."""
    name = f"db_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


# -- serve: many processes, one database -----------------------------------------------------


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def _sync_login(base: str, account: LocalAccount) -> httpx.Response:
    secret = httpx.post(
        f"{base}/login_random_secret", json={"wallet_address": account.address}
    ).json()["data"]
    return httpx.post(
        f"{base}/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )


def test_two_serve_processes_share_users_through_postgres_and_redis(
    tmp_path: Path, own_server: PostgresServer, redis_server: RedisServer, wallet: LocalAccount
) -> None:
    env = {"WALLET_AUTH_SECRET": SECRET_KEY}
    shared = [
        "--database-url",
        own_server.url,
        "--redis-url",
        redis_server.url,
        "--domain",
        "example.com",
        "--uri",
        URI,
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_service(tmp_path / "a", free_port(), *shared, env=env) as a,
        running_service(tmp_path / "b", free_port(), *shared, env=env) as b,
    ):
        # Registered through A with a userid of its own choosing...
        body = login_body(wallet, userid="alice", timestamp=int(time.time() * 1000))
        registered = httpx.post(f"{a}/api/user_login/", json=body)
        assert registered.status_code == 200, registered.text
        # ...and logged in through B, which finds that user in the shared database.
        response = _sync_login(b, wallet)
        assert response.status_code == 200, response.text
        token = response.json()["data"]["access_token"]
        assert _claims(token)["userid"] == "alice"
        me = httpx.get(f"{a}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["data"]["userid"] == "alice"

        own_server.stop()
        down = _sync_login(b, wallet)
        assert down.status_code == 503 and down.json()["data"] is None
        own_server.start()
        again = _sync_login(a, wallet)
        assert again.status_code == 200, again.text
        assert _claims(again.json()["data"]["access_token"])["userid"] == "alice"
    assert not list((tmp_path / "a").glob("*.db"))  # no SQLite file beside the secret


def test_serve_refuses_a_newer_schema_at_startup_with_the_reason(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = asyncio.run(create_database(postgres_server.url))

    async def from_the_future() -> None:
        store = PostgresUserStore(url)
        await store.open()
        await store.aclose()
        conn = await asyncpg.connect(url)
        await conn.execute("INSERT INTO wallet_auth_schema_version (version) VALUES (9)")
        await conn.close()

    asyncio.run(from_the_future())
    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "serve", "--database-url", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WALLET_AUTH_SECRET": SECRET_KEY},
    )
    assert result.returncode == 2
    assert "version 9, newer than version 4" in result.stderr
    assert "upgrade asgi-wallet-auth" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database-url", "mysql://h/db"], "postgresql://user@host:5432/db or sqlite:///path"),
        (["--database-url", "sqlite:///a.db", "--db", "b.db"], "not both"),
        (["--database-url", "postgresql://u@127.0.0.1:1/db"], "cannot use the user database"),
    ],
)
def test_serve_refuses_a_bad_database_url(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "serve", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "WALLET_AUTH_SECRET": SECRET_KEY},
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_serve_with_a_sqlite_database_url(tmp_path: Path, wallet: LocalAccount) -> None:
    with running_service(tmp_path, free_port(), "--database-url", "sqlite:///users.db") as base:
        assert _sync_login(base, wallet).status_code == 200
    from asgi_wallet_auth.stores.sqlite import SQLiteUserStore

    store = SQLiteUserStore(tmp_path / "users.db")
    try:
        import anyio

        record = anyio.run(store.get_by_address, wallet.address)
        assert record is not None and record.address == wallet.address
    finally:
        store.close()
