"""PostgreSQL in earnest: migrations, prefixes, pools, round trips and faults on a real server.

The ``UserStore`` contract (every operation, and concurrency) runs on PostgreSQL in
``tests/test_stores.py``; this file holds what only this store promises.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import nacl.signing
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import WalletAuth
from asgi_wallet_auth.stores.postgres import PostgresUserStore, SchemaVersionError
from asgi_wallet_auth.stores.postgres_schema import SCHEMA_VERSION, migrate
from asgi_wallet_auth.users import UserRecord
from tests.conftest import SECRET_KEY, T0, URI, FakeClock, client_for, sign_text
from tests.helpers import login, make_auth
from tests.postgres_server import PostgresServer, RoundTripCounter
from tests.test_web3mq import login_body

ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
KEY_1, KEY_2 = "1" * 64, "2" * 64

pytestmark = pytest.mark.usefixtures("anyio_backend")


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}_"


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresUserStore]:
    s = PostgresUserStore(postgres_server.url, prefix=fresh_prefix())
    yield s
    await s.aclose()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which the test may stop and restart."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


async def versions(url: str, prefix: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        sql = f"SELECT version FROM {prefix}schema_version ORDER BY version"  # noqa: S608
        rows = await conn.fetch(sql)
        return [int(row[0]) for row in rows]
    finally:
        await conn.close()


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({}, "exactly one of dsn"),
        ({"dsn": "postgresql://h/db", "pool": object()}, "exactly one of dsn"),
        ({"dsn": "mysql://h/db"}, "postgresql://user@host"),
        ({"dsn": "postgresql://h/db", "pool_size": 0}, "pool_size must be a positive"),
        ({"dsn": "postgresql://h/db", "pool_size": True}, "pool_size must be a positive"),
        ({"dsn": "postgresql://h/db", "prefix": "Wallet_"}, "prefix must be lower case"),
        ({"dsn": "postgresql://h/db", "prefix": "1x_"}, "prefix must be lower case"),
        ({"dsn": "postgresql://h/db", "prefix": "x; DROP TABLE y; --"}, "prefix must be"),
        ({"dsn": "postgresql://h/db", "prefix": "x" * 41}, "at most 40"),
        ({"dsn": "postgresql://h/db", "timeout": 0}, "timeout must be a positive"),
    ],
)
def test_misconfiguration_fails_at_construction(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        PostgresUserStore(**kwargs)


def test_importing_the_package_does_not_import_asyncpg() -> None:
    code = "import sys, asgi_wallet_auth; sys.exit('asyncpg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


async def test_merge_refuses_a_cap_below_one(store: PostgresUserStore) -> None:
    with pytest.raises(ValueError, match="max_devices"):
        await store.merge(UserRecord(ADDRESS, ADDRESS, "eth", T0, T0), max_devices=0)


# -- schema and migrations -------------------------------------------------------------------


async def test_a_fresh_database_gets_every_migration_recorded(
    postgres_server: PostgresServer, store: PostgresUserStore
) -> None:
    await store.open()
    assert await versions(postgres_server.url, store.prefix) == list(range(1, SCHEMA_VERSION + 1))
    assert store.schema_version == SCHEMA_VERSION == 4
    await store.open()  # opening again changes nothing
    assert await versions(postgres_server.url, store.prefix) == [1, 2, 3, 4]
    assert await store.count() == 0


async def test_an_older_schema_is_migrated_keeping_its_users(
    postgres_server: PostgresServer,
) -> None:
    prefix = fresh_prefix()
    conn = await asyncpg.connect(postgres_server.url)
    try:  # a database left at version 1 by an older release, with a user in it
        assert await migrate(conn, prefix, target=1) == 0  # the version found before
        await conn.execute(
            f"INSERT INTO {prefix}users (userid, address, did_type, first_login, last_login, "  # noqa: S608
            "device_keys) VALUES ('alice', $1, 'eth', $2, $2, $3)",
            ADDRESS,
            T0,
            [KEY_1],
        )
    finally:
        await conn.close()
    assert await versions(postgres_server.url, prefix) == [1]
    store = PostgresUserStore(postgres_server.url, prefix=prefix)
    try:
        await store.open()
        assert await versions(postgres_server.url, prefix) == [1, 2, 3, 4]
        old = UserRecord("alice", ADDRESS, "eth", T0, T0, (KEY_1,))
        assert await store.get("alice") == old
        merged = await store.merge(
            UserRecord("alice", ADDRESS, "eth", T0 + 5, T0 + 5, (KEY_2,)), max_devices=4
        )
        assert merged == UserRecord("alice", ADDRESS, "eth", T0, T0 + 5, (KEY_1, KEY_2))
    finally:
        await store.aclose()


async def test_a_newer_schema_is_refused_with_the_reason_and_nothing_changes(
    postgres_server: PostgresServer, clock: FakeClock, wallet: LocalAccount
) -> None:
    prefix = fresh_prefix()
    first = PostgresUserStore(postgres_server.url, prefix=prefix)
    await first.save(UserRecord("alice", ADDRESS, "eth", T0, T0))
    await first.aclose()
    conn = await asyncpg.connect(postgres_server.url)
    try:  # what a later release would leave behind
        await conn.execute(f"INSERT INTO {prefix}schema_version VALUES (5)")  # noqa: S608
    finally:
        await conn.close()
    store = PostgresUserStore(postgres_server.url, prefix=prefix)
    try:
        with pytest.raises(SchemaVersionError, match=r"version 5, newer than version 4") as info:
            await store.open()
        assert "upgrade asgi-wallet-auth" in str(info.value)
        with pytest.raises(SchemaVersionError):
            await store.get("alice")  # every operation refuses until the code is upgraded
        async with client_for(make_auth(clock, user_store=store)) as client:
            response = await legacy_login(client, wallet)
            assert response.status_code == 503 and response.json()["code"] == 50301
        assert await versions(postgres_server.url, prefix) == [1, 2, 3, 4, 5]
    finally:
        await store.aclose()


async def legacy_login(client: httpx.AsyncClient, account: LocalAccount) -> httpx.Response:
    """A raw-secret login whose answer may be a refusal."""
    response = await client.post("/login_random_secret", json={"wallet_address": account.address})
    secret = response.json()["data"]
    return await client.post(
        "/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )


async def test_a_failed_migration_leaves_nothing_behind(postgres_server: PostgresServer) -> None:
    prefix = fresh_prefix()
    conn = await asyncpg.connect(postgres_server.url)
    try:  # the application already has a table of that name
        await conn.execute(f"CREATE TABLE {prefix}users (id integer)")
    finally:
        await conn.close()
    store = PostgresUserStore(postgres_server.url, prefix=prefix)
    try:
        with pytest.raises(asyncpg.DuplicateTableError):
            await store.open()
    finally:
        await store.aclose()
    conn = await asyncpg.connect(postgres_server.url)
    try:  # the version table created in the same transaction is gone again
        assert await conn.fetchval("SELECT to_regclass($1)", f"{prefix}schema_version") is None
        assert await conn.fetchval("SELECT to_regproc($1)", f"{prefix}merge") is None
    finally:
        await conn.close()


async def test_hosts_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    prefix = fresh_prefix()
    stores = [PostgresUserStore(postgres_server.url, prefix=prefix) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert await versions(postgres_server.url, prefix) == [1, 2, 3, 4]
        await stores[0].merge(UserRecord("alice", ADDRESS, "eth", T0, T0), max_devices=4)
        assert all([await s.get("alice") is not None for s in stores])
    finally:
        await asyncio.gather(*(s.aclose() for s in stores))


async def test_prefixes_keep_stores_apart_in_one_database(
    postgres_server: PostgresServer,
) -> None:
    a = PostgresUserStore(postgres_server.url, prefix=fresh_prefix())
    b = PostgresUserStore(postgres_server.url, prefix=fresh_prefix())
    try:
        await a.merge(UserRecord("alice", ADDRESS, "eth", T0, T0, (KEY_1,)), max_devices=4)
        await b.merge(UserRecord("bob", ADDRESS, "eth", T0 + 1, T0 + 1), max_devices=4)
        assert (await a.get_by_address(ADDRESS), await b.get_by_address(ADDRESS)) == (
            UserRecord("alice", ADDRESS, "eth", T0, T0, (KEY_1,)),
            UserRecord("bob", ADDRESS, "eth", T0 + 1, T0 + 1),
        )
        assert await a.get("bob") is None and await b.get("alice") is None
    finally:
        await a.aclose()
        await b.aclose()


# -- pools and round trips -------------------------------------------------------------------


async def test_a_pool_from_the_app_is_used_and_left_open(postgres_server: PostgresServer) -> None:
    pool = await asyncpg.create_pool(postgres_server.url, min_size=1, max_size=2)
    try:
        store = PostgresUserStore(pool=pool, prefix=fresh_prefix())
        assert store.pool is pool
        record = UserRecord("alice", ADDRESS, "eth", T0, T0)
        assert await store.merge(record, max_devices=4) == record
        await store.aclose()
        assert await pool.fetchval("SELECT 41 + 1") == 42  # still the app's, still open
        with pytest.raises(RuntimeError, match="closed"):
            await store.get("alice")
    finally:
        await pool.close()


async def test_the_store_pool_holds_at_most_pool_size_connections(
    postgres_server: PostgresServer,
) -> None:
    store = PostgresUserStore(postgres_server.url, prefix=fresh_prefix(), pool_size=3)
    try:
        await asyncio.gather(*(store.get(f"u{i}") for i in range(30)))
        assert store.pool is not None and store.pool.get_size() <= 3
    finally:
        await store.aclose()


async def test_a_returning_wallets_login_costs_one_round_trip(
    postgres_server: PostgresServer,
) -> None:
    counter = RoundTripCounter(postgres_server.port)
    await counter.start()
    store = PostgresUserStore(counter.url(), prefix=fresh_prefix(), pool_size=1)
    try:
        legacy = UserRecord(ADDRESS, ADDRESS, "eth", T0, T0)
        device = UserRecord("alice", ADDRESS, "eth", T0, T0, (KEY_1,))
        await store.merge(legacy, max_devices=4)  # opens, migrates, prepares the statements
        await store.merge(device, max_devices=4)
        await store.get("alice")
        for operation, expected in [
            (store.merge(legacy.with_logins(T0, T0 + 1), max_devices=4), "alice"),
            (store.merge(device.with_logins(T0, T0 + 2), max_devices=4), "alice"),
            (store.get_by_address(ADDRESS), "alice"),
        ]:
            before = counter.round_trips
            result = await operation
            assert result is not None and result.userid == expected
            assert counter.round_trips - before == 1
    finally:
        await store.aclose()
        await counter.stop()


# -- faults: the database goes away, or hangs ------------------------------------------------


async def test_postgres_stopped_mid_run_gives_503_then_service_returns_by_itself(
    own_server: PostgresServer, clock: FakeClock, wallet: LocalAccount
) -> None:
    store = PostgresUserStore(own_server.url, timeout=2)
    try:
        async with client_for(make_auth(clock, user_store=store)) as client:
            assert (await login(client, wallet))["access_token"]
            own_server.stop()
            for _ in range(3):  # the pool's connections died with the server: no 500, no token
                response = await legacy_login(client, wallet)
                assert response.status_code == 503, response.text
                assert response.json() == {
                    "code": 50301,
                    "msg": "service temporarily unavailable",
                    "data": None,
                }
            own_server.start()  # same port, same data
            clock.advance(60)
            assert (await login(client, wallet))["access_token"]
        stored = await store.get_by_address(wallet.address)
        assert stored is not None and (stored.first_login, stored.last_login) == (T0, T0 + 60)
    finally:
        await store.aclose()


async def test_a_database_that_never_answers_times_out_into_503(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = PostgresUserStore(f"postgresql://u@127.0.0.1:{port}/db", timeout=0.3)
    try:
        async with client_for(make_auth(clock, user_store=store)) as client:
            started = time.monotonic()
            response = await legacy_login(client, wallet)
            assert response.status_code == 503
            assert time.monotonic() - started < 5
        assert accepted  # it did try, and gave up on time
    finally:
        await store.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


# -- through the app -------------------------------------------------------------------------


async def test_concurrent_web3mq_logins_of_one_wallet_keep_every_device(
    store: PostgresUserStore, clock: FakeClock, wallet: LocalAccount
) -> None:
    devices = [nacl.signing.SigningKey(bytes([i]) * 32) for i in range(1, 13)]
    auth = make_auth(clock, user_store=store)
    async with client_for(auth) as client:
        bodies = [login_body(wallet, userid="alice", device=d) for d in devices]
        responses = await asyncio.gather(*(client.post("/api/user_login/", json=b) for b in bodies))
    assert [r.status_code for r in responses] == [200] * len(devices)
    stored = await store.get("alice")
    assert stored is not None
    assert sorted(stored.device_keys) == sorted(d.verify_key.encode().hex() for d in devices)


def test_service_builds_a_postgres_store_from_a_database_url(
    postgres_server: PostgresServer,
) -> None:
    from asgi_wallet_auth.service import build_auth, user_store_for

    auth = build_auth(
        secret=SECRET_KEY,
        domain="example.com",
        uri=URI,
        db="unused.db",
        redis_url=None,
        database_url=postgres_server.url,
    )
    assert isinstance(auth, WalletAuth)
    assert isinstance(auth.user_store, PostgresUserStore)
    with pytest.raises(ValueError, match="sqlite:///path"):
        user_store_for("mysql://h/db")
    with pytest.raises(ValueError, match="needs a file"):
        user_store_for("sqlite:///")


def test_missing_binaries_skip_locally_and_fail_where_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.postgres_server as harness

    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    monkeypatch.setattr(harness.glob, "glob", lambda pattern: [])
    monkeypatch.delenv(harness.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        harness.postgres_bindir()
    monkeypatch.setenv(harness.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="WALLET_AUTH_REQUIRE_POSTGRES=1 requires"):
        harness.postgres_bindir()


async def test_first_logins_racing_a_new_userid_never_drop_a_committed_row(
    store: PostgresUserStore,
) -> None:
    # The window this guards is narrow (a row committed between the function's two looks), so
    # many rounds of colliding first logins; each round must keep all twelve keys.
    keys = [f"{i:064x}" for i in range(1, 13)]
    for round_ in range(120):
        address = "0x" + f"{round_ + 1:040x}"
        logins = [UserRecord(f"r{round_}", address, "eth", T0, T0, (k,)) for k in keys]
        await asyncio.gather(*(store.merge(x, max_devices=16) for x in logins))
        stored = await store.get(f"r{round_}")
        assert stored is not None and sorted(stored.device_keys) == keys, round_
