"""``merge_login``: every field of a stored user survives a login that does not set it."""

from __future__ import annotations

import dataclasses

from asgi_wallet_auth.users import BoundWallet, SessionKey, UserRecord, merge_login, merge_target

ADDRESS = "0x" + "ab" * 20
FULL = UserRecord(
    "user:alice",
    ADDRESS,
    "eth",
    100.0,
    200.0,
    device_keys=("11" * 32,),
    nickname="alice",
    avatar_url="https://example.com/a.png",
    avatar=b"\x89PNG",
    avatar_type="image/png",
    main_pubkey="22" * 32,
    session_keys=(SessionKey("33" * 32, 999.0, ADDRESS),),
    bound_wallets=(BoundWallet("eth", "0x" + "cd" * 20, "p", 150.0),),
)


def test_a_bare_login_changes_only_the_login_times() -> None:
    login = UserRecord("user:alice", ADDRESS, "eth", 300.0, 300.0)
    merged = merge_login(FULL, login, max_devices=16)
    for field in dataclasses.fields(UserRecord):
        expected = 300.0 if field.name == "last_login" else getattr(FULL, field.name)
        assert getattr(merged, field.name) == expected, field.name


def test_a_first_login_is_kept_whole() -> None:
    assert merge_login(None, FULL, max_devices=16) == FULL
    capped = merge_login(None, dataclasses.replace(FULL, device_keys=("1", "2", "3")), 2)
    assert capped == dataclasses.replace(FULL, device_keys=("2", "3"))


def test_a_login_without_a_userid_of_its_own_joins_the_wallets_record() -> None:
    login = UserRecord(ADDRESS, ADDRESS, "eth", 300.0, 300.0)
    current, folded = merge_target(FULL, login)
    assert current == FULL and folded is not None and folded.userid == "user:alice"
    assert merge_target(FULL, UserRecord("user:bob", ADDRESS, "eth", 1.0, 1.0)) == (None, None)
