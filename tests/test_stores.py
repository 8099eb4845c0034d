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
from asgi_wallet_auth.users import (
    KeyedUserStore,
    MemoryUserStore,
    UserRecord,
    UserStore,
    WalletBound,
)
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


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file", "postgres"])
async def users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    if request.param == "memory":
        yield MemoryUserStore()
        return
    if request.param == "postgres":
        from asgi_wallet_auth.stores.postgres import PostgresUserStore

        server = request.getfixturevalue("postgres_server")
        # Tables of their own per test, in the one session server.
        pg = PostgresUserStore(server.url, prefix=f"t{uuid.uuid4().hex[:12]}_", pool_size=20)
        try:
            yield pg
        finally:
            await pg.aclose()
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


KEYS = tuple(f"{i:064x}" for i in range(1, 61))


def _login(
    userid: str = ADDRESS_A,
    address: str = ADDRESS_A,
    at: float = T0,
    keys: tuple[str, ...] = (),
    nickname: str | None = None,
    avatar: bytes | None = None,
) -> UserRecord:
    return UserRecord(
        userid,
        address,
        "eth",
        at,
        at,
        device_keys=keys,
        nickname=nickname,
        avatar_url=None if nickname is None else f"https://example.com/{nickname}.png",
        avatar=avatar,
        avatar_type=None if avatar is None else "image/png",
    )


async def test_merge_into_an_empty_store_creates_the_user(users: UserStore) -> None:
    merged = await users.merge(_login("alice", keys=KEYS[:5], nickname="al"), max_devices=3)
    expected = _login("alice", keys=KEYS[2:5], nickname="al")  # the newest three keys
    assert merged == expected
    assert await users.get("alice") == expected
    assert await users.get_by_address(ADDRESS_A) == expected


async def test_merge_of_a_returning_device_widens_times_and_moves_its_key_last(
    users: UserStore,
) -> None:
    await users.merge(_login("alice", at=T0, keys=KEYS[0:3]), max_devices=4)
    merged = await users.merge(_login("alice", at=T0 + 60, keys=(KEYS[0], KEYS[3])), max_devices=4)
    assert merged is not None
    assert merged.device_keys == (KEYS[1], KEYS[2], KEYS[0], KEYS[3])
    assert (merged.first_login, merged.last_login) == (T0, T0 + 60)
    merged = await users.merge(_login("alice", at=T0 - 5, keys=(KEYS[4],)), max_devices=4)
    assert merged is not None
    assert merged.device_keys == (KEYS[2], KEYS[0], KEYS[3], KEYS[4])  # the oldest one dropped
    assert (merged.first_login, merged.last_login) == (T0 - 5, T0 + 60)
    assert await users.get("alice") == merged


async def test_merge_fills_empty_profile_fields_and_never_overwrites_them(
    users: UserStore,
) -> None:
    await users.merge(_login("alice", keys=KEYS[:1]), max_devices=4)
    first = await users.merge(
        _login("alice", keys=KEYS[:1], nickname="al", avatar=b"\x89PNG1"), max_devices=4
    )
    assert first is not None
    assert (first.nickname, first.avatar, first.avatar_type) == ("al", b"\x89PNG1", "image/png")
    second = await users.merge(
        _login("alice", keys=KEYS[:1], nickname="mallory", avatar=b"\x89PNG2"), max_devices=4
    )
    assert second == first
    assert await users.get("alice") == first


async def test_merge_of_a_userid_owned_by_another_wallet_is_none_and_changes_nothing(
    users: UserStore,
) -> None:
    alice = await users.merge(_login("alice", ADDRESS_A, keys=KEYS[:1]), max_devices=4)
    bob = await users.merge(_login(ADDRESS_B, ADDRESS_B, at=T0 + 1), max_devices=4)
    assert await users.merge(_login("alice", ADDRESS_B, keys=KEYS[1:2]), max_devices=4) is None
    assert await users.get("alice") == alice
    assert await users.get_by_address(ADDRESS_B) == bob


async def test_merge_renames_the_wallets_default_record_to_the_chosen_userid(
    users: UserStore,
) -> None:
    await users.merge(_login(at=T0), max_devices=4)  # a legacy login first: userid = address
    merged = await users.merge(_login("alice", at=T0 + 9, keys=KEYS[:1]), max_devices=4)
    assert merged == UserRecord("alice", ADDRESS_A, "eth", T0, T0 + 9, (KEYS[0],))
    assert await users.get(ADDRESS_A) is None
    assert await users.get("alice") == merged
    assert await users.get_by_address(ADDRESS_A) == merged


async def test_a_legacy_login_merge_keeps_the_wallets_userid_keys_and_profile(
    users: UserStore,
) -> None:
    # What POST /login stores: userid = address, no device keys, the service clock's time.
    registered = await users.merge(
        _login("alice", at=T0, keys=KEYS[:2], nickname="al", avatar=b"img"), max_devices=4
    )
    assert registered is not None
    merged = await users.merge(_login(at=T0 + 3600), max_devices=4)
    assert merged == registered.with_logins(T0, T0 + 3600)
    assert await users.get("alice") == merged
    assert await users.get(ADDRESS_A) is None  # no second record under the address
    assert await users.get_by_address(ADDRESS_A) == merged


async def test_legacy_login_merges_create_then_update_the_default_record(
    users: UserStore,
) -> None:
    assert await users.merge(_login(at=T0), max_devices=4) == _login(at=T0)
    again = await users.merge(_login(at=T0 + 10), max_devices=4)
    assert again == UserRecord(ADDRESS_A, ADDRESS_A, "eth", T0, T0 + 10)
    stale = await users.merge(_login(at=T0 + 5), max_devices=4)  # a slow request lands late
    assert stale == again
    assert await users.get_by_address(ADDRESS_A) == again


async def test_merge_under_a_new_userid_of_a_wallet_with_another_is_refused(
    users: UserStore,
) -> None:
    # The routes refuse this before merging (409); under a race the store refuses it too: a
    # wallet has one userid, and its record is never dropped for a login naming another.
    bob = await users.merge(_login("bob", keys=KEYS[:1]), max_devices=4)
    assert await users.merge(_login("carol", at=T0 + 1, keys=KEYS[1:2]), max_devices=4) is None
    assert await users.get("carol") is None
    assert await users.get("bob") == bob
    assert await users.get_by_address(ADDRESS_A) == bob


async def test_concurrent_merges_of_one_wallets_devices_keep_every_key(users: UserStore) -> None:
    await users.merge(_login(at=T0), max_devices=64)  # an existing default record is renamed
    logins = [_login("alice", at=T0 + i, keys=(KEYS[i],)) for i in range(50)]
    results = await asyncio.gather(*(users.merge(x, max_devices=64) for x in logins))
    assert all(r is not None and r.userid == "alice" for r in results)
    stored = await users.get("alice")
    assert stored is not None
    assert sorted(stored.device_keys) == sorted(KEYS[:50])
    assert (stored.first_login, stored.last_login) == (T0, T0 + 49)
    assert await users.get(ADDRESS_A) is None


async def test_concurrent_first_logins_of_a_new_wallets_devices_keep_every_key(
    users: UserStore,
) -> None:
    for round_ in range(8):  # nothing stored yet: the first inserts collide with each other
        address = "0x" + f"{round_ + 200:040x}"
        logins = [_login(f"new{round_}", address, keys=(KEYS[i],)) for i in range(12)]
        results = await asyncio.gather(*(users.merge(x, max_devices=16) for x in logins))
        assert all(r is not None for r in results)
        stored = await users.get(f"new{round_}")
        assert stored is not None and sorted(stored.device_keys) == sorted(KEYS[:12])


async def test_concurrent_merges_beyond_the_cap_keep_the_cap(users: UserStore) -> None:
    logins = [_login("alice", keys=(KEYS[i],)) for i in range(50)]
    await asyncio.gather(*(users.merge(x, max_devices=16) for x in logins))
    stored = await users.get("alice")
    assert stored is not None
    assert len(stored.device_keys) == 16
    assert len(set(stored.device_keys)) == 16
    assert set(stored.device_keys) <= set(KEYS[:50])


async def test_two_wallets_racing_for_one_userid_give_exactly_one_owner(users: UserStore) -> None:
    for round_ in range(5):
        userid = f"race{round_}"
        # Fresh wallets each round: a wallet that won a userid keeps it (one userid a wallet).
        first, second = "0x" + f"{2 * round_ + 1:040x}", "0x" + f"{2 * round_ + 2:040x}"
        a = _login(userid, first, at=T0 + round_, keys=(KEYS[0],))
        b = _login(userid, second, at=T0 + round_, keys=(KEYS[1],))
        results = await asyncio.gather(*(users.merge(x, max_devices=4) for x in (a, b) * 10))
        winners = {r.address for r in results if r is not None}
        assert len(winners) == 1
        stored = await users.get(userid)
        assert stored is not None and stored.address in winners
        assert results.count(None) == 10  # every login of the other wallet was refused


async def test_a_legacy_and_a_web3mq_login_of_one_wallet_at_once_lose_nothing(
    users: UserStore,
) -> None:
    for round_ in range(5):
        address = "0x" + f"{round_ + 100:040x}"
        legacy = _login(address, address, at=T0 + 100 + round_)
        web3mq = _login(f"w{round_}", address, at=T0 + round_, keys=(KEYS[round_],), nickname="n")
        await asyncio.gather(users.merge(legacy, max_devices=4), users.merge(web3mq, max_devices=4))
        stored = await users.get_by_address(address)
        assert stored == UserRecord(
            f"w{round_}",
            address,
            "eth",
            T0 + round_,
            T0 + 100 + round_,
            (KEYS[round_],),
            "n",
            "https://example.com/n.png",
        )
        assert await users.get(address) is None


async def test_merges_and_saves_agree_with_the_reference_store(users: UserStore) -> None:
    # The same seeded sequence of operations on MemoryUserStore and on the store under test.
    import random

    rng = random.Random(18)
    reference = MemoryUserStore()
    addresses = [ADDRESS_A, ADDRESS_B, "0x" + "ab" * 20]
    userids = ["alice", "bob", *addresses]
    for step in range(300):
        address = rng.choice(addresses)
        userid = rng.choice([*userids, address, address])
        record = _login(
            userid,
            address,
            at=T0 + rng.randrange(-50, 50),
            keys=tuple(rng.sample(KEYS[:8], rng.randrange(0, 3))),
            nickname=rng.choice([None, "x", "y"]),
            avatar=rng.choice([None, b"a", b"b"]),
        )
        if rng.random() < 0.15:
            await reference.save(record)
            await users.save(record)
        else:
            cap = rng.choice([1, 3, 16])
            expected = await reference.merge(record, max_devices=cap)
            assert await users.merge(record, max_devices=cap) == expected, step
        for key in userids:
            assert await users.get(key) == await reference.get(key), (step, key)
        for address in addresses:
            found = await users.get_by_address(address)
            assert found == await reference.get_by_address(address), (step, address)


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


# --------------------------------------------------------------------------- Web3MQ v2 state


ADDRESS_C = "0x63FaC9201494f0bd17B9892B9fae4d52fe3BD377"


def _v2(userid: str = "alice", address: str = ADDRESS_A) -> UserRecord:
    from asgi_wallet_auth.users import BoundWallet, SessionKey

    return UserRecord(
        userid,
        address,
        "eth",
        T0,
        T0,
        (KEYS[0],),
        main_pubkey=KEYS[1],
        session_keys=(
            SessionKey(KEYS[2], T0 + 60, address),
            SessionKey(KEYS[3], T0 + 90, ADDRESS_C),
        ),
        bound_wallets=(BoundWallet("eth", ADDRESS_C, "web3mq", T0, KEYS[4]),),
    )


def _keyed(users: UserStore) -> KeyedUserStore:
    assert isinstance(users, KeyedUserStore)
    return users


async def test_main_keys_session_keys_and_bound_wallets_are_kept(users: UserStore) -> None:
    store = _keyed(users)
    record = _v2()
    await store.save(record)
    assert await store.get("alice") == record
    assert await store.get_by_wallet(ADDRESS_C) == record  # found by its bound wallet
    assert await store.get_by_address(ADDRESS_C) is None  # which is not its own address
    # A login merged into the user keeps every v2 field.
    merged = await store.merge(_login("alice", at=T0 + 5, keys=(KEYS[5],)), max_devices=4)
    assert merged is not None and merged == await store.get("alice")
    assert (merged.main_pubkey, merged.session_keys, merged.bound_wallets) == (
        record.main_pubkey,
        record.session_keys,
        record.bound_wallets,
    )


async def test_update_changes_a_record_atomically_or_not_at_all(users: UserStore) -> None:
    from dataclasses import replace

    from asgi_wallet_auth.users import SessionKey

    store = _keyed(users)
    assert await store.update("alice", lambda r: r) is None  # no such user
    await store.save(_v2())
    assert await store.update("alice", lambda r: None) is None
    assert await store.get("alice") == _v2()
    with pytest.raises(ValueError, match="may not change"):
        await store.update("alice", lambda r: replace(r, address=ADDRESS_B))
    assert await store.get("alice") == _v2()

    # Fifty session logins at once: every one lands (no lost update).
    def add(i: int) -> Callable[[UserRecord], UserRecord]:
        key = SessionKey(KEYS[10 + i], T0 + 600, ADDRESS_A)
        return lambda r: replace(r, session_keys=(*r.session_keys, key))

    results = await asyncio.gather(*(store.update("alice", add(i)) for i in range(40)))
    assert all(r is not None for r in results)
    stored = await store.get("alice")
    assert stored is not None
    assert sorted(k.pubkey for k in stored.session_keys[2:]) == sorted(KEYS[10:50])


async def test_a_wallet_is_bound_to_one_user_and_never_its_own_user_too(users: UserStore) -> None:
    from dataclasses import replace

    from asgi_wallet_auth.users import BoundWallet

    store = _keyed(users)
    await store.merge(_login("alice", ADDRESS_A), max_devices=4)
    await store.merge(_login("bob", ADDRESS_B), max_devices=4)
    wallet = BoundWallet("eth", ADDRESS_C, "web3mq", T0)

    def bind(r: UserRecord) -> UserRecord | None:
        if wallet in r.bound_wallets:
            return None  # bound already: nothing to change
        return replace(r, bound_wallets=(*r.bound_wallets, wallet))

    for round_ in range(5):  # two users racing for one wallet: exactly one gets it
        results = await asyncio.gather(*(store.update(u, bind) for u in ("alice", "bob") * 5))
        winners = {r.userid for r in results if r is not None}
        assert len(winners) == 1, round_
        owner = await store.get_by_wallet(ADDRESS_C)
        assert owner is not None and owner.userid in winners
        assert await store.update(owner.userid, lambda r: replace(r, bound_wallets=())) is not None
    # A user's own wallet cannot be bound to another; a bound wallet cannot log in on its own.
    own = BoundWallet("eth", ADDRESS_B, "web3mq", T0)
    assert await store.update("alice", lambda r: replace(r, bound_wallets=(own,))) is None
    assert await store.update("alice", bind) is not None
    assert await store.merge(_login(ADDRESS_C, ADDRESS_C), max_devices=4) is None
    assert await store.merge(_login("carol", ADDRESS_C), max_devices=4) is None
    assert await store.get(ADDRESS_C) is None and await store.get("carol") is None
    with pytest.raises(WalletBound):
        await store.save(_login("carol", ADDRESS_C))
    with pytest.raises(WalletBound):
        await store.save(replace(_login("bob", ADDRESS_B), bound_wallets=(wallet,)))
    alice = await store.get("alice")
    assert alice is not None and alice.bound_wallets == (wallet,)
    assert await store.get_by_wallet(ADDRESS_C) == alice


async def test_a_renamed_default_record_keeps_its_bound_wallets(users: UserStore) -> None:
    from dataclasses import replace

    from asgi_wallet_auth.users import BoundWallet

    store = _keyed(users)
    await store.merge(_login(at=T0), max_devices=4)  # a legacy login: userid = address
    wallet = BoundWallet("eth", ADDRESS_C, "web3mq", T0)
    assert await store.update(ADDRESS_A, lambda r: replace(r, bound_wallets=(wallet,)))
    renamed = await store.merge(_login("alice", at=T0 + 1, keys=KEYS[:1]), max_devices=4)
    assert renamed is not None and renamed.bound_wallets == (wallet,)
    assert await store.get_by_wallet(ADDRESS_C) == renamed
    # The index follows the rename: the wallet still cannot join anyone else.
    assert await store.merge(_login("carol", ADDRESS_C), max_devices=4) is None
