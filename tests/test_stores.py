"""Nonce and user stores: one contract suite per protocol, then each backend's own promises."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from asgi_wallet_auth.stores.base import NonceStore
from asgi_wallet_auth.stores.memory import MemoryNonceStore
from asgi_wallet_auth.stores.redis import RedisNonceStore
from asgi_wallet_auth.stores.sqlite import SQLiteUserStore
from asgi_wallet_auth.users import MemoryUserStore, UserRecord, UserStore
from tests.conftest import T0, FakeClock

ADDRESS_A = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
ADDRESS_B = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
TTL = 60.0

# Request the anyio backend explicitly: anyio's plugin rebuilds auto-marked async items that lack it
# and would drop their other parameters (the backend fixtures and ``parametrize`` below).
pytestmark = pytest.mark.usefixtures("anyio_backend")

# --------------------------------------------------------------------------- nonce store contract


@dataclass
class NonceBackend:
    """A nonce store under test and a way to move its notion of time forward."""

    store: NonceStore
    advance: Callable[[float], None]


def _memory_backend(request: pytest.FixtureRequest, clock: FakeClock) -> NonceBackend:
    return NonceBackend(MemoryNonceStore(clock=clock), clock.advance)


def _redis_backend(request: pytest.FixtureRequest, clock: FakeClock) -> NonceBackend:
    server = request.getfixturevalue("redis_server")
    prefix = f"test:{uuid.uuid4().hex}:"
    admin = redis.Redis.from_url(server.url)
    request.addfinalizer(admin.close)

    def advance(seconds: float) -> None:
        # Time cannot be moved on a real server, so shorten every key's remaining life instead:
        # the server then sees exactly what it would after ``seconds`` had passed.
        for key in admin.scan_iter(match=prefix + "*"):
            remaining = admin.pttl(key)
            if remaining <= seconds * 1000:
                admin.delete(key)
            else:
                admin.pexpire(key, int(remaining - seconds * 1000))

    return NonceBackend(RedisNonceStore(server.url, prefix=prefix), advance)


# Add a backend here and the whole contract suite runs against it.
_NONCE_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, FakeClock], NonceBackend]] = {
    "memory": _memory_backend,
    "redis": _redis_backend,
}


@pytest.fixture(params=sorted(_NONCE_BACKENDS))
async def nonces(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[NonceBackend]:
    backend = _NONCE_BACKENDS[request.param](request, clock)
    yield backend
    if isinstance(backend.store, RedisNonceStore):
        await backend.store.aclose()


def test_nonce_backend_satisfies_the_protocol(nonces: NonceBackend) -> None:
    assert isinstance(nonces.store, NonceStore)


async def test_put_then_take_returns_the_value_exactly_once(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "v1", TTL) is True
    assert await nonces.store.take("k") == "v1"
    assert await nonces.store.take("k") is None
    assert await nonces.store.take("k") is None


async def test_put_on_a_live_key_is_refused_and_keeps_the_old_value(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "original", TTL) is True
    assert await nonces.store.put("k", "attacker", TTL) is False
    assert await nonces.store.put("k", "attacker", 10 * TTL) is False
    assert await nonces.store.take("k") == "original"
    assert await nonces.store.take("k") is None


async def test_put_does_not_extend_the_life_of_a_live_key(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "v", TTL) is True
    nonces.advance(TTL - 1)
    assert await nonces.store.put("k", "v", 10 * TTL) is False
    nonces.advance(1)
    assert await nonces.store.take("k") is None


async def test_exists_reports_live_keys_without_consuming_them(nonces: NonceBackend) -> None:
    assert await nonces.store.exists("k") is False
    assert await nonces.store.put("k", "v", TTL) is True
    assert await nonces.store.exists("k") is True
    assert await nonces.store.exists("k") is True
    assert await nonces.store.take("k") == "v"
    assert await nonces.store.exists("k") is False
    assert await nonces.store.put("e", "v", TTL) is True
    nonces.advance(TTL)
    assert await nonces.store.exists("e") is False


async def test_take_of_a_missing_key_is_none(nonces: NonceBackend) -> None:
    assert await nonces.store.take("never-put") is None
    assert await nonces.store.put("other", "v", TTL) is True
    assert await nonces.store.take("never-put") is None
    assert await nonces.store.take("other") == "v"


async def test_keys_are_independent(nonces: NonceBackend) -> None:
    assert await nonces.store.put("a", "1", TTL) is True
    assert await nonces.store.put("b", "2", TTL) is True
    assert await nonces.store.take("b") == "2"
    assert await nonces.store.take("a") == "1"


async def test_a_taken_key_can_be_put_again(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "first", TTL) is True
    assert await nonces.store.take("k") == "first"
    assert await nonces.store.put("k", "second", TTL) is True
    assert await nonces.store.take("k") == "second"


async def test_value_is_live_just_before_ttl_and_gone_at_ttl(nonces: NonceBackend) -> None:
    assert await nonces.store.put("early", "v", TTL) is True
    assert await nonces.store.put("late", "v", TTL) is True
    nonces.advance(TTL - 0.5)
    assert await nonces.store.take("early") == "v"
    nonces.advance(0.5)
    assert await nonces.store.take("late") is None


async def test_each_key_keeps_its_own_ttl(nonces: NonceBackend) -> None:
    assert await nonces.store.put("short", "s", 10) is True
    assert await nonces.store.put("long", "l", 1000) is True
    nonces.advance(500)
    assert await nonces.store.take("short") is None
    assert await nonces.store.take("long") == "l"


async def test_an_expired_key_can_be_put_again(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "old", TTL) is True
    nonces.advance(TTL)
    assert await nonces.store.put("k", "new", TTL) is True
    assert await nonces.store.take("k") == "new"
    assert await nonces.store.take("k") is None


async def test_concurrent_takes_of_one_key_give_the_value_once(nonces: NonceBackend) -> None:
    assert await nonces.store.put("k", "secret", TTL) is True
    results = await asyncio.gather(*(nonces.store.take("k") for _ in range(50)))
    assert results.count("secret") == 1
    assert results.count(None) == 49


async def test_concurrent_puts_of_one_key_let_exactly_one_win(nonces: NonceBackend) -> None:
    results = await asyncio.gather(*(nonces.store.put("k", f"v{i}", TTL) for i in range(50)))
    assert results.count(True) == 1
    assert results.count(False) == 49
    winner = results.index(True)
    assert await nonces.store.take("k") == f"v{winner}"


# --------------------------------------------------------------------------- MemoryNonceStore


async def test_memory_store_at_maxsize_evicts_the_oldest_and_fails_closed(clock: FakeClock) -> None:
    store = MemoryNonceStore(maxsize=3, clock=clock)
    assert store.maxsize == 3
    for key in ("a", "b", "c", "d"):
        assert await store.put(key, key.upper(), TTL) is True
    assert len(store) == 3
    assert await store.take("a") is None  # evicted: the secret is unknown, the login fails
    assert await store.take("d") == "D"
    assert await store.take("b") == "B"
    assert await store.take("c") == "C"


async def test_memory_store_len_counts_only_live_entries(clock: FakeClock) -> None:
    store = MemoryNonceStore(clock=clock)
    await store.put("short", "s", 10)
    await store.put("long", "l", 100)
    assert len(store) == 2
    clock.advance(10)
    assert len(store) == 1
    await store.take("long")
    assert len(store) == 0


@pytest.mark.parametrize("ttl", [0, 0.0, -1, -TTL])
async def test_memory_store_refuses_a_non_positive_ttl(clock: FakeClock, ttl: float) -> None:
    store = MemoryNonceStore(clock=clock)
    with pytest.raises(ValueError, match="ttl"):
        await store.put("k", "v", ttl)
    assert await store.take("k") is None


@pytest.mark.parametrize("maxsize", [0, -1, -100_000])
def test_memory_store_refuses_a_maxsize_below_one(maxsize: int) -> None:
    with pytest.raises(ValueError, match="maxsize must be at least 1"):
        MemoryNonceStore(maxsize=maxsize)


class _TickingClock(FakeClock):
    """A clock that moves ``step`` seconds every time it is read, like a real clock does."""

    def __init__(self, now: float = T0) -> None:
        super().__init__(now)
        self.step = 0.0

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


@pytest.mark.parametrize("offset", [-1.5, -0.5, 0.0, 0.5])
async def test_memory_take_near_the_expiry_instant_never_raises_while_the_clock_ticks(
    offset: float,
) -> None:
    # A real clock moves between the reads inside one take(); whichever side of the expiry instant
    # the reads land on, the answer is the value or None, never an exception, and never twice.
    clock = _TickingClock()
    store = MemoryNonceStore(clock=clock)
    assert await store.put("k", "v", TTL) is True
    clock.now = T0 + TTL + offset
    clock.step = 1.0
    first = await store.take("k")
    assert first in ("v", None)
    if offset >= 0:
        assert first is None
    assert await store.take("k") is None


# --------------------------------------------------------------------------- user store contract


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def users(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserStore]:
    if request.param == "memory":
        yield MemoryUserStore()
        return
    store = SQLiteUserStore(":memory:" if request.param == "sqlite-memory" else tmp_path / "u.db")
    try:
        yield store
    finally:
        store.close()


def _record(
    userid: str = ADDRESS_A,
    address: str = ADDRESS_A,
    first_login: float = T0,
    last_login: float = T0,
    did_type: str = "eth",
) -> UserRecord:
    return UserRecord(userid, address, did_type, first_login, last_login)


def test_user_backend_satisfies_the_protocol(users: UserStore) -> None:
    assert isinstance(users, UserStore)


async def test_unknown_user_is_none(users: UserStore) -> None:
    assert await users.get(ADDRESS_A) is None
    assert await users.get_by_address(ADDRESS_A) is None
    await users.save(_record())
    assert await users.get(ADDRESS_B) is None
    assert await users.get_by_address(ADDRESS_B) is None


async def test_saved_user_is_found_by_userid_and_by_address(users: UserStore) -> None:
    record = _record(userid="alice", first_login=T0 + 0.25, last_login=T0 + 0.75)
    await users.save(record)
    assert await users.get("alice") == record
    assert await users.get_by_address(ADDRESS_A) == record
    assert await users.get(ADDRESS_A) is None  # the userid is "alice", not the address


async def test_two_users_do_not_mix(users: UserStore) -> None:
    alice, bob = _record("alice", ADDRESS_A), _record("bob", ADDRESS_B, did_type="web3mq")
    await users.save(alice)
    await users.save(bob)
    assert await users.get("alice") == alice
    assert await users.get("bob") == bob
    assert await users.get_by_address(ADDRESS_A) == alice
    assert await users.get_by_address(ADDRESS_B) == bob


async def test_saving_again_updates_last_login(users: UserStore) -> None:
    await users.save(_record(first_login=T0, last_login=T0))
    later = _record(first_login=T0, last_login=T0 + 3600)
    await users.save(later)
    assert await users.get(ADDRESS_A) == later
    assert await users.get_by_address(ADDRESS_A) == later


async def test_resaving_a_userid_under_a_new_address_releases_the_old_address(
    users: UserStore,
) -> None:
    await users.save(_record("alice", ADDRESS_A))
    moved = _record("alice", ADDRESS_B, last_login=T0 + 1)
    await users.save(moved)
    assert await users.get("alice") == moved
    assert await users.get_by_address(ADDRESS_B) == moved
    # The old address must not resolve to a record that belongs to another address.
    assert await users.get_by_address(ADDRESS_A) is None


async def test_concurrent_saves_of_distinct_users_all_land(users: UserStore) -> None:
    records = [_record(f"user{i}", "0x" + f"{i + 1:040x}") for i in range(30)]
    await asyncio.gather(*(users.save(r) for r in records))
    for r in records:
        assert await users.get(r.userid) == r
        assert await users.get_by_address(r.address) == r


# --------------------------------------------------------------------------- SQLiteUserStore


@pytest.fixture
def sqlite_store() -> Iterator[SQLiteUserStore]:
    store = SQLiteUserStore(":memory:")
    try:
        yield store
    finally:
        store.close()


async def test_sqlite_keeps_the_earliest_first_login(sqlite_store: SQLiteUserStore) -> None:
    await sqlite_store.save(_record(first_login=T0, last_login=T0))
    await sqlite_store.save(_record(first_login=T0 + 500, last_login=T0 + 600))
    stored = await sqlite_store.get(ADDRESS_A)
    assert stored == _record(first_login=T0, last_login=T0 + 600)
    await sqlite_store.save(_record(first_login=T0 - 100, last_login=T0 + 700))
    assert await sqlite_store.get(ADDRESS_A) == _record(first_login=T0 - 100, last_login=T0 + 700)


async def test_sqlite_stale_save_does_not_roll_last_login_back(
    sqlite_store: SQLiteUserStore,
) -> None:
    await sqlite_store.save(_record(last_login=T0 + 600))
    await sqlite_store.save(_record(last_login=T0 + 10))
    stored = await sqlite_store.get(ADDRESS_A)
    assert stored is not None and stored.last_login == T0 + 600


async def test_sqlite_count_is_the_number_of_users(sqlite_store: SQLiteUserStore) -> None:
    assert await sqlite_store.count() == 0
    await sqlite_store.save(_record("alice", ADDRESS_A))
    assert await sqlite_store.count() == 1
    await sqlite_store.save(_record("bob", ADDRESS_B))
    assert await sqlite_store.count() == 2
    await sqlite_store.save(_record("alice", ADDRESS_A, last_login=T0 + 5))
    assert await sqlite_store.count() == 2


async def test_sqlite_data_persists_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    record = _record("alice", ADDRESS_A, first_login=T0 + 0.5, last_login=T0 + 99.25)
    store = SQLiteUserStore(path)
    assert store.path == str(path)
    await store.save(record)
    store.close()

    reopened = SQLiteUserStore(path)
    try:
        assert await reopened.get("alice") == record
        assert await reopened.get_by_address(ADDRESS_A) == record
        assert await reopened.count() == 1
    finally:
        reopened.close()


def test_sqlite_path_in_a_missing_directory_fails_at_construction(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "users.db"
    with pytest.raises(sqlite3.OperationalError):
        SQLiteUserStore(missing)
    assert not missing.parent.exists()


async def test_sqlite_calls_after_close_raise(tmp_path: Path) -> None:
    store = SQLiteUserStore(tmp_path / "users.db")
    await store.save(_record())
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError):
        await store.get(ADDRESS_A)
    with pytest.raises(RuntimeError):
        await store.get_by_address(ADDRESS_A)
    with pytest.raises(RuntimeError):
        await store.save(_record(last_login=T0 + 1))
    with pytest.raises(RuntimeError):
        await store.count()


async def test_sqlite_work_runs_on_one_dedicated_thread_off_the_event_loop(
    sqlite_store: SQLiteUserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int, str]] = []
    original = sqlite_store._connection

    def spy() -> sqlite3.Connection:
        current = threading.current_thread()
        seen.append((threading.get_ident(), current.name))
        return original()

    monkeypatch.setattr(sqlite_store, "_connection", spy)
    await sqlite_store.save(_record())
    assert await sqlite_store.get(ADDRESS_A) == _record()
    assert await sqlite_store.get_by_address(ADDRESS_A) == _record()
    assert await sqlite_store.count() == 1
    await asyncio.gather(*(sqlite_store.get(ADDRESS_A) for _ in range(10)))

    assert len(seen) == 14
    assert {ident for ident, _ in seen} != {loop_thread}
    assert loop_thread not in {ident for ident, _ in seen}
    assert len({ident for ident, _ in seen}) == 1  # one thread owns the connection
    assert all(name.startswith("wallet-auth-sqlite") for _, name in seen)
