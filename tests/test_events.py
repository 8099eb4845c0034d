"""Audit events: one for every login, refusal, refresh, re-authentication, logout, key
registration and binding; written before a token leaves (or no token), refusals queued; the
SQLite store, retention, and ``asgi-wallet-auth events``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import SQLiteUserStore, WalletAuth
from asgi_wallet_auth.cli import main
from asgi_wallet_auth.events import AuthEvent, EventSettings, MemoryEventStore, session_digest
from asgi_wallet_auth.identity import IdentitySettings, event_store_for
from asgi_wallet_auth.stores.sqlite_events import SQLiteEventStore
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import assert_error, get_secret, login, make_auth
from tests.test_web3mq import login_body


class BrokenStore(MemoryEventStore):
    """An event store whose database is down."""

    async def record(self, event: AuthEvent) -> None:
        raise ConnectionError("database down")


def audited(clock: FakeClock, store: Any, **overrides: Any) -> WalletAuth:
    events = EventSettings(store=store, **overrides.pop("events", {}))
    return make_auth(clock, identity=IdentitySettings(events=events), revocation=True, **overrides)


async def test_every_kind_of_request_leaves_its_event_and_none_holds_a_secret(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = MemoryEventStore()
    auth = audited(clock, store)
    await auth.startup()
    try:
        async with client_for(auth) as client:
            secret = await get_secret(client, wallet.address)
            bad = {
                "login_random_secret": secret,
                "signature": sign_text(wallet, "not the secret"),
                "wallet_address": wallet.address,
            }
            assert_error(await client.post("/login", json=bad), 401, 40101)
            data = await login(client, wallet)
            token = data["access_token"]
            bearer = {"authorization": f"Bearer {token}"}
            refreshed = (await client.get("/refresh", headers=bearer)).json()["data"]
            bearer = {"authorization": f"Bearer {refreshed['access_token']}"}
            assert (await client.post("/logout", headers=bearer)).status_code == 200
            body = login_body(wallet, userid="alice")
            assert (await client.post("/api/user_login/", json=body)).status_code == 200
    finally:
        await auth.aclose()  # the queued refusal and logout are written here at the latest
    kinds = [e.kind for e in store.events]
    assert sorted(kinds) == sorted(
        ["refusal", "login", "refresh", "logout", "login", "key_registered", "userid_bound"]
    )
    refusal = next(e for e in store.events if e.kind == "refusal")
    assert (refusal.code, refusal.detail, refusal.address) == (
        40101,
        "SignatureMismatch",
        wallet.address,
    )
    assert refusal.route == "/login"
    first = next(e for e in store.events if e.kind == "login")
    claims = auth.authenticate_token(token).claims
    assert first.session == session_digest(claims["sid"]) != claims["sid"]
    assert {e.session for e in store.events if e.kind in ("refresh", "logout")} == {first.session}
    text = json.dumps([e.to_dict() for e in store.events])
    for leaked in (
        secret,
        token,
        claims["sid"],
        bad["signature"][2:40],
        body["did_signature"][2:40],
    ):
        assert leaked not in text
    bound = next(e for e in store.events if e.kind == "userid_bound")
    assert bound.userid == "alice" and bound.address == wallet.address


async def test_a_token_is_not_sent_when_its_event_cannot_be_recorded(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = audited(clock, BrokenStore())
    async with client_for(auth) as client:
        secret = await get_secret(client, wallet.address)
        body = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        response = await client.post("/login", json=body)
    assert_error(response, 503, 50301)
    assert "access_token" not in response.text
    assert auth.identity.events.failed == 1


async def test_an_on_event_hook_sees_every_event_and_its_failure_refuses_the_login(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    seen: list[AuthEvent] = []

    async def on_event(event: AuthEvent) -> None:
        if len(seen) == 1:
            raise RuntimeError("the audit sink is full")
        seen.append(event)

    auth = make_auth(clock, identity=IdentitySettings(events=EventSettings(on_event=on_event)))
    async with client_for(auth) as client:
        await login(client, wallet)
        secret = await get_secret(client, wallet.address)
        body = {
            "login_random_secret": secret,
            "signature": sign_text(wallet, secret),
            "wallet_address": wallet.address,
        }
        assert_error(await client.post("/login", json=body), 503, 50301)
    assert [e.kind for e in seen] == ["login"]


async def test_refusals_wait_in_a_bounded_queue_and_overflow_is_counted(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = MemoryEventStore()
    auth = audited(clock, store, events={"queue_size": 2})
    async with client_for(auth) as client:  # no startup: nothing writes the queue yet
        for _ in range(5):
            assert_error(await client.post("/login", json={}), 400, 40001)
    assert store.events == [] and auth.identity.events.dropped == 3
    await auth.startup()
    await auth.aclose()
    assert [e.code for e in store.events] == [40001, 40001]


async def test_the_sqlite_store_keeps_queries_and_purges_by_age(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "users.db")
    try:
        for n, kind in enumerate(["login", "refusal", "login", "logout"]):
            await store.record(AuthEvent(kind=kind, at=T0 + n, address=f"0x{n}", code=n or None))
        everything = await store.query(since=0)
        assert [e.kind for e in everything] == ["login", "refusal", "login", "logout"]
        assert everything[1] == AuthEvent(
            kind="refusal", at=T0 + 1, id=everything[1].id, address="0x1", code=1
        )
        assert [e.at for e in await store.query(since=T0 + 1, until=T0 + 3)] == [T0 + 1, T0 + 2]
        assert len(await store.query(since=0, kinds=["login"])) == 2
        assert len(await store.query(since=0, kinds=[])) == 0
        assert [e.address for e in await store.query(since=0, address="0x3")] == ["0x3"]
        assert len(await store.query(since=0, limit=1)) == 1
        assert await store.purge(T0 + 2) == 2
        assert [e.at for e in await store.query(since=0)] == [T0 + 2, T0 + 3]
    finally:
        store.close()


async def test_retention_purges_old_events_at_startup(clock: FakeClock, tmp_path: Path) -> None:
    users = SQLiteUserStore(tmp_path / "users.db")
    store = event_store_for(users)
    await store.record(AuthEvent(kind="login", at=T0 - 10 * 86_400))
    await store.record(AuthEvent(kind="login", at=T0 - 86_400))
    auth = make_auth(
        clock,
        user_store=users,
        identity=IdentitySettings(events=EventSettings(store=store, retention=7 * 86_400)),
    )
    await auth.startup()
    await auth.aclose()
    assert [e.at for e in await store.query(since=0)] == [T0 - 86_400]
    users.close()
    with pytest.raises(ValueError, match="your own EventStore"):
        event_store_for(object())


def test_the_events_command_lists_what_the_service_recorded(
    clock: FakeClock, wallet: LocalAccount, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "users.db"

    async def serve_a_little() -> None:
        users = SQLiteUserStore(db)
        auth = audited(clock, event_store_for(users), user_store=users)
        await auth.startup()
        async with client_for(auth) as client:
            await login(client, wallet)
            clock.advance(1)  # events are listed by time
            assert_error(await client.post("/login", json={"wallet_address": 1}), 400)
        await auth.aclose()
        users.close()

    asyncio.run(serve_a_little())  # the command runs its own event loop: this test has none
    since = str(int(T0 - 60))
    assert main(["events", "--since", since, "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "login" in lines[0] and wallet.address in lines[0]
    assert "refusal" in lines[1] and "code=40001 (InvalidRequest)" in lines[1]
    assert main(["events", "--since", since, "--db", str(db), "--json", "--kind", "login"]) == 0
    (only,) = capsys.readouterr().out.splitlines()
    assert json.loads(only)["address"] == wallet.address
    assert main(["events", "--since", "2026-01-01T00:00:00Z", "--db", str(db), "--until", "1"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["events", "--since", "24h", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no database" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(SystemExit):
        main(["events", "--since", "yesterday"])
    assert main(["events", "--since", "1h", "--database-url", "mysql://x"]) == 2


def test_event_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="EventStore"):
        EventSettings(store=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retention"):
        EventSettings(retention=0)
    with pytest.raises(ValueError, match="queue_size"):
        EventSettings(queue_size=0)
    with pytest.raises(ValueError, match="identity events"):
        IdentitySettings(events=MemoryEventStore())  # type: ignore[arg-type]
