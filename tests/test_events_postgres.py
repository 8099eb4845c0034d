"""Audit events in PostgreSQL: migration 3 of the user store, the store's queries and purge, and
a service writing a login's event there (a real server, started by the session fixture)."""

from __future__ import annotations

import uuid

from eth_account.signers.local import LocalAccount

from asgi_wallet_auth.events import AuthEvent, EventSettings
from asgi_wallet_auth.identity import IdentitySettings, event_store_for
from asgi_wallet_auth.stores.postgres import PostgresUserStore
from asgi_wallet_auth.stores.postgres_events import PostgresEventStore
from tests.conftest import T0, FakeClock, client_for
from tests.helpers import assert_error, login, make_auth
from tests.postgres_server import PostgresServer


async def test_events_are_kept_queried_and_purged_beside_the_users(
    postgres_server: PostgresServer,
) -> None:
    users = PostgresUserStore(postgres_server.url, prefix=f"t{uuid.uuid4().hex[:12]}_")
    store = event_store_for(users)
    assert isinstance(store, PostgresEventStore)
    try:
        for n, kind in enumerate(["login", "refusal", "login", "logout"]):
            await store.record(AuthEvent(kind=kind, at=T0 + n, address=f"0x{n}", code=n or None))
        everything = await store.query(since=0)
        assert [e.kind for e in everything] == ["login", "refusal", "login", "logout"]
        assert everything[1].code == 1 and everything[1].address == "0x1"
        assert [e.at for e in await store.query(since=T0 + 1, until=T0 + 3)] == [T0 + 1, T0 + 2]
        assert len(await store.query(since=0, kinds=["login"])) == 2
        assert [e.address for e in await store.query(since=0, address="0x3")] == ["0x3"]
        assert len(await store.query(since=0, limit=1)) == 1
        assert await store.purge(T0 + 2) == 2
        assert [e.at for e in await store.query(since=0)] == [T0 + 2, T0 + 3]
    finally:
        await users.aclose()


async def test_a_service_records_its_logins_and_refusals_in_postgresql(
    postgres_server: PostgresServer, clock: FakeClock, wallet: LocalAccount
) -> None:
    users = PostgresUserStore(postgres_server.url, prefix=f"t{uuid.uuid4().hex[:12]}_")
    store = event_store_for(users)
    auth = make_auth(
        clock, user_store=users, identity=IdentitySettings(events=EventSettings(store=store))
    )
    await auth.startup()
    try:
        async with client_for(auth) as client:
            await login(client, wallet)
            clock.advance(1)  # events are listed by time
            assert_error(await client.post("/refresh"), 401, 40112)
        await auth.aclose()
        found = await store.query(since=T0 - 1)
        assert [(e.kind, e.code) for e in found] == [("login", None), ("refusal", 40112)]
        assert found[0].address == wallet.address
    finally:
        await users.aclose()
