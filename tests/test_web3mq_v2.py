"""Web3MQ's v2 routes in process: every refusal with its status, its code and no change stored.

The bodies are written here as the SDK writes them (tests/test_web3mq_sdk.py runs the SDK itself);
keys are fixed, the clock is the injected FakeClock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import SQLiteUserStore, WalletAuth, Web3MQSettings, Web3MQV2Settings
from asgi_wallet_auth.users import KeyedUserStore, MemoryUserStore, UserRecord
from tests.conftest import DOMAIN, OTHER_KEY, SECRET_KEY, URI, WALLET_KEY, FakeClock, sign_text

pytestmark = pytest.mark.usefixtures("anyio_backend")

THIRD_KEY = "0x" + "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ORIGIN = "https://dapp.example.org"
MAIN = nacl.signing.SigningKey(bytes(range(1, 33)))
OTHER_MAIN = nacl.signing.SigningKey(bytes(range(2, 34)))
SESSION = nacl.signing.SigningKey(bytes(range(3, 35)))
SESSION_2 = nacl.signing.SigningKey(bytes(range(4, 36)))
USERID = "user:" + "ab" * 28
DAY_MS = 86_400_000


def hexkey(key: nacl.signing.SigningKey) -> str:
    return key.verify_key.encode().hex()


def sha3(text: str) -> str:
    return hashlib.sha3_224(text.encode()).hexdigest()


def b64sign(key: nacl.signing.SigningKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode()).signature).decode()


@dataclass
class Kit:
    """A service with Web3MQ v2 on, its client, clock and user store."""

    auth: WalletAuth
    client: httpx.AsyncClient
    clock: FakeClock
    store: KeyedUserStore

    def ms(self, delta: float = 0) -> int:
        return int((self.clock.now + delta) * 1000)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def kit(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Kit]:
    store: Any
    if request.param == "postgres":
        from asgi_wallet_auth.stores.postgres import PostgresUserStore

        server = request.getfixturevalue("postgres_server")
        store = PostgresUserStore(server.url, prefix=f"t{uuid.uuid4().hex[:12]}_")
    elif request.param == "sqlite":
        store = SQLiteUserStore(tmp_path / "u.db")
    else:
        store = MemoryUserStore()
    auth = WalletAuth(
        secret_key=SECRET_KEY,
        domain=DOMAIN,
        uri=URI,
        user_store=store,
        clock=clock,
        web3mq=Web3MQSettings(uris=[URI, ORIGIN], signed_requests=True, v2=Web3MQV2Settings()),
    )
    transport = httpx.ASGITransport(app=auth)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Kit(auth, client, clock, store)
    if isinstance(store, SQLiteUserStore):
        store.close()
    elif not isinstance(store, MemoryUserStore):
        await store.aclose()


def register_text(account: LocalAccount, nonce: str) -> str:
    """What the SDK's getRegisterSignContent writes (MetaMask wording, its date format)."""
    return (
        "Web3MQ wants you to sign in with your MetaMask account:\n"
        f"{account.address.lower()}\nFor Web3MQ register\nURI: {ORIGIN}\nVersion: 1\n\n"
        f"Nonce: {nonce}\nIssued At: 01/01/2026 00:00"
    )


def register_body(
    kit: Kit,
    account: LocalAccount,
    main: nacl.signing.SigningKey = MAIN,
    *,
    userid: str = USERID,
    signer: LocalAccount | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A user_register_v2 body as the SDK sends it (empty strings for what it does not give)."""
    ts = kit.ms() if timestamp is None else timestamp
    did_value = account.address.lower()
    nonce = sha3(f"{userid}ed25519{hexkey(main)}eth{did_value}{ts}")
    text = register_text(account, nonce)
    return {
        "userid": userid,
        "did_type": "eth",
        "did_value": did_value,
        "did_pubkey": "",
        "did_signature": sign_text(signer or account, text),
        "signature_content": text,
        "pubkey_type": "ed25519",
        "pubkey_value": hexkey(main),
        "nickname": "",
        "avatar_url": "",
        "avatar_base64": "",
        "timestamp": ts,
        "testnet_access_key": "",
    }


def login_body(
    kit: Kit,
    account: LocalAccount,
    main: nacl.signing.SigningKey = MAIN,
    session: nacl.signing.SigningKey = SESSION,
    *,
    userid: str = USERID,
    timestamp: int | None = None,
    expires: int | None = None,
) -> dict[str, Any]:
    """A user_login_v2 body as the SDK's login builds it."""
    ts = kit.ms() if timestamp is None else timestamp
    exp = ts + DAY_MS if expires is None else expires
    content = sha3(f"{userid}{hexkey(session)}{exp}{ts}")
    return {
        "userid": userid,
        "did_type": "eth",
        "did_value": account.address.lower(),
        "login_signature": b64sign(main, content),
        "signature_content": content,
        "main_pubkey": hexkey(main),
        "pubkey_value": hexkey(session),
        "pubkey_type": "ed25519",
        "timestamp": ts,
        "pubkey_expired_timestamp": exp,
    }


def signed(
    kit: Kit, key: nacl.signing.SigningKey, fields: str = "", userid: str = USERID
) -> dict[str, Any]:
    """The SDK's signed-request fields: ``web3mq_signature`` over userid + fields + timestamp."""
    ts = kit.ms()
    return {
        "userid": userid,
        "timestamp": ts,
        "web3mq_signature": b64sign(key, userid + fields + str(ts)),
    }


def pick(key: nacl.signing.SigningKey, account: LocalAccount) -> dict[str, str]:
    """The headers the SDK sets after login."""
    return {"web3mq-request-pubkey": hexkey(key), "didkey": f"eth:{account.address.lower()}"}


async def snapshot(kit: Kit, *accounts: LocalAccount) -> list[UserRecord | None]:
    """Everything stored about the test userids and wallets."""
    found: list[UserRecord | None] = [await kit.store.get(USERID), await kit.store.get("bob")]
    for account in accounts:
        found.append(await kit.store.get_by_wallet(account.address))
    return found


def refused(response: httpx.Response, status: int, code: int) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["data"] is None


async def signed_up(kit: Kit, account: LocalAccount) -> dict[str, Any]:
    """A wallet registered and logged in with SESSION; the login's data."""
    response = await kit.client.post("/api/user_register_v2/", json=register_body(kit, account))
    assert response.status_code == 200, response.text
    response = await kit.client.post("/api/user_login_v2/", json=login_body(kit, account))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
def alice() -> LocalAccount:
    return Account.from_key(WALLET_KEY)


@pytest.fixture
def bob() -> LocalAccount:
    return Account.from_key(OTHER_KEY)


@pytest.fixture
def carol() -> LocalAccount:
    return Account.from_key(THIRD_KEY)


# -- what works --------------------------------------------------------------------------------


async def test_register_login_and_user_info_as_the_sdk_reads_them(
    kit: Kit, alice: LocalAccount
) -> None:
    unknown = await kit.client.post(
        "/api/get_user_info/",
        json={"did_type": "eth", "did_value": alice.address.lower(), "timestamp": kit.ms()},
    )
    refused(unknown, 404, 40402)
    data = await signed_up(kit, alice)
    assert data["userid"] == USERID and data["wallet_address"] == alice.address
    assert data["pubkey_value"] == hexkey(SESSION) and data["main_pubkey"] == hexkey(MAIN)
    assert kit.auth.authenticate_token(data["access_token"]).userid == USERID
    info = await kit.client.post(
        "/api/get_user_info/",
        json={"did_type": "eth", "did_value": alice.address, "timestamp": kit.ms()},
    )
    assert info.json()["data"] == {
        "userid": USERID,
        "did_type": "eth",
        "did_value": alice.address,
        "main_pubkey": hexkey(MAIN),
        "pubkey_type": "ed25519",
    }
    record = await kit.store.get(USERID)
    assert record is not None and record.main_pubkey == hexkey(MAIN)
    assert record.nickname is None and record.avatar_url is None  # "" is "not given"
    [key] = record.session_keys
    assert (key.pubkey, key.expires_at, key.address) == (
        hexkey(SESSION),
        kit.clock.now + 86_400,
        alice.address,
    )


async def test_a_session_key_signs_requests_until_it_expires(kit: Kit, alice: LocalAccount) -> None:
    await signed_up(kit, alice)
    response = await kit.client.get(
        "/api/my_profile/", params=signed(kit, SESSION), headers=pick(SESSION, alice)
    )
    assert response.status_code == 200 and response.json()["data"]["userid"] == USERID
    kit.clock.advance(86_400)
    before = await snapshot(kit, alice)
    response = await kit.client.get(
        "/api/my_profile/", params=signed(kit, SESSION), headers=pick(SESSION, alice)
    )
    refused(response, 401, 40109)
    # Without the header the expired key is simply not among the candidates.
    response = await kit.client.get("/api/my_profile/", params=signed(kit, SESSION))
    refused(response, 401, 40107)
    assert await snapshot(kit, alice) == before


# -- the refusals the issue lists ----------------------------------------------------------------


async def test_a_login_with_the_wrong_main_key_is_refused(kit: Kit, alice: LocalAccount) -> None:
    await signed_up(kit, alice)
    before = await snapshot(kit, alice)
    # A main key that is not the registered one, even if it signs its own login correctly.
    response = await kit.client.post(
        "/api/user_login_v2/", json=login_body(kit, alice, OTHER_MAIN, SESSION_2)
    )
    refused(response, 401, 40108)
    # The registered main key named, but the signature made by another key.
    body = login_body(kit, alice, MAIN, SESSION_2)
    body["login_signature"] = b64sign(OTHER_MAIN, body["signature_content"])
    refused(await kit.client.post("/api/user_login_v2/", json=body), 401, 40101)
    assert await snapshot(kit, alice) == before


async def test_a_replayed_login_is_refused(kit: Kit, alice: LocalAccount) -> None:
    await kit.client.post("/api/user_register_v2/", json=register_body(kit, alice))
    body = login_body(kit, alice)
    assert (await kit.client.post("/api/user_login_v2/", json=body)).status_code == 200
    before = await snapshot(kit, alice)
    refused(await kit.client.post("/api/user_login_v2/", json=body), 401, 40105)
    assert await snapshot(kit, alice) == before


async def test_timestamps_out_of_the_window_are_refused(kit: Kit, alice: LocalAccount) -> None:
    stale = register_body(kit, alice, timestamp=kit.ms(-301))
    refused(await kit.client.post("/api/user_register_v2/", json=stale), 401, 40106)
    assert await snapshot(kit, alice) == [None, None, None]
    await kit.client.post("/api/user_register_v2/", json=register_body(kit, alice))
    before = await snapshot(kit, alice)
    for ts in (kit.ms(-301), kit.ms(61)):
        refused(
            await kit.client.post("/api/user_login_v2/", json=login_body(kit, alice, timestamp=ts)),
            401,
            40106,
        )
    # A session key asked for too far ahead, or already expired.
    for exp in (kit.ms(8 * 86_400), kit.ms(-1)):
        body = login_body(kit, alice, expires=exp)
        refused(await kit.client.post("/api/user_login_v2/", json=body), 400, 40001)
    assert await snapshot(kit, alice) == before


async def test_a_reset_needs_a_fresh_wallet_signature(
    kit: Kit, alice: LocalAccount, bob: LocalAccount
) -> None:
    await signed_up(kit, alice)
    before = await snapshot(kit, alice)
    body = register_body(kit, alice, OTHER_MAIN)
    del body["did_signature"]
    refused(await kit.client.post("/api/user_reset_password_v2/", json=body), 400, 40003)
    forged = register_body(kit, alice, OTHER_MAIN, signer=bob)
    refused(await kit.client.post("/api/user_reset_password_v2/", json=forged), 401, 40101)
    assert await snapshot(kit, alice) == before
    # With it, the main key is replaced and the sessions the old one proved end.
    fresh = register_body(kit, alice, OTHER_MAIN)
    assert (await kit.client.post("/api/user_reset_password_v2/", json=fresh)).status_code == 200
    record = await kit.store.get(USERID)
    assert record is not None and record.main_pubkey == hexkey(OTHER_MAIN)
    assert record.session_keys == ()
    refused(
        await kit.client.post("/api/user_login_v2/", json=login_body(kit, alice, MAIN, SESSION_2)),
        401,
        40108,
    )


async def test_register_twice_is_refused_and_a_reset_needs_a_key(
    kit: Kit, alice: LocalAccount
) -> None:
    refused(
        await kit.client.post("/api/user_reset_password_v2/", json=register_body(kit, alice)),
        404,
        40402,
    )
    await signed_up(kit, alice)
    before = await snapshot(kit, alice)
    again = register_body(kit, alice, OTHER_MAIN)
    refused(await kit.client.post("/api/user_register_v2/", json=again), 409, 40902)
    assert await snapshot(kit, alice) == before


def consent(
    kit: Kit, account: LocalAccount, *, userid: str = USERID, signer: LocalAccount | None = None
) -> str:
    """The bound wallet's ``did_content``: its signature over this binding's nonce."""
    ts = kit.ms()
    nonce = sha3(f"{userid}eth{account.address.lower()}{ts}")
    text = (
        "Web3MQ wants you to sign in with your MetaMask account:\n"
        f"{account.address.lower()}\nFor Web3MQ bind did\nURI: {ORIGIN}\nVersion: 1\n\n"
        f"Nonce: {nonce}"
    )
    return json.dumps(
        {
            "signature_content": text,
            "did_signature": sign_text(signer or account, text),
            "timestamp": ts,
        }
    )


def bind_body(
    kit: Kit,
    account: LocalAccount,
    did_content: str | None,
    key: nacl.signing.SigningKey = SESSION,
    userid: str = USERID,
) -> dict[str, Any]:
    body = {
        **signed(kit, key, "eth" + account.address.lower(), userid=userid),
        "did_action": "",
        "did_type": "eth",
        "did_value": account.address.lower(),
        "provider_id": "web3mq",
    }
    if did_content is not None:
        body["did_content"] = did_content
    return body


async def test_a_bind_needs_the_second_wallets_signature(
    kit: Kit, alice: LocalAccount, bob: LocalAccount
) -> None:
    await signed_up(kit, alice)
    before = await snapshot(kit, alice, bob)
    refused(await kit.client.post("/api/user_binddid/", json=bind_body(kit, bob, None)), 400, 40001)
    signed_by_alice = consent(kit, bob, signer=alice)
    refused(
        await kit.client.post("/api/user_binddid/", json=bind_body(kit, bob, signed_by_alice)),
        401,
        40101,
    )
    assert await snapshot(kit, alice, bob) == before
    ok = await kit.client.post("/api/user_binddid/", json=bind_body(kit, bob, consent(kit, bob)))
    assert ok.status_code == 200, ok.text
    assert (await kit.store.get_by_wallet(bob.address)) == await kit.store.get(USERID)
    listed = await kit.client.post("/api/get_user_binddids/", json=signed(kit, SESSION))
    assert [w["did_value"] for w in listed.json()["data"]] == [bob.address]


async def test_a_wallet_bound_elsewhere_or_a_user_of_its_own_is_refused(
    kit: Kit, alice: LocalAccount, bob: LocalAccount, carol: LocalAccount
) -> None:
    await signed_up(kit, alice)
    assert (
        await kit.client.post("/api/user_binddid/", json=bind_body(kit, carol, consent(kit, carol)))
    ).status_code == 200
    # Bob's own user, who then tries to bind carol too, and alice tries to bind bob.
    body = register_body(kit, bob, OTHER_MAIN, userid="bob")
    assert (await kit.client.post("/api/user_register_v2/", json=body)).status_code == 200
    body = login_body(kit, bob, OTHER_MAIN, SESSION_2, userid="bob")
    assert (await kit.client.post("/api/user_login_v2/", json=body)).status_code == 200
    before = await snapshot(kit, alice, bob, carol)
    twice = bind_body(kit, carol, consent(kit, carol, userid="bob"), key=SESSION_2, userid="bob")
    refused(await kit.client.post("/api/user_binddid/", json=twice), 409, 40903)
    own = bind_body(kit, bob, consent(kit, bob))
    refused(await kit.client.post("/api/user_binddid/", json=own), 409, 40903)
    # A bound wallet cannot become a user of its own either, on any route.
    alone = register_body(kit, carol, OTHER_MAIN, userid="carol")
    refused(await kit.client.post("/api/user_register_v2/", json=alone), 409, 40901)
    assert await snapshot(kit, alice, bob, carol) == before
    assert await kit.store.get("carol") is None


async def test_a_profile_update_must_be_signed_by_the_user(
    kit: Kit, alice: LocalAccount, bob: LocalAccount
) -> None:
    await signed_up(kit, alice)
    body = register_body(kit, bob, OTHER_MAIN, userid="bob")
    assert (await kit.client.post("/api/user_register_v2/", json=body)).status_code == 200
    body = login_body(kit, bob, OTHER_MAIN, SESSION_2, userid="bob")
    assert (await kit.client.post("/api/user_login_v2/", json=body)).status_code == 200
    before = await snapshot(kit, alice, bob)
    unsigned = {"userid": USERID, "timestamp": kit.ms(), "nickname": "mallory"}
    refused(await kit.client.post("/api/my_profile/", json=unsigned), 401, 40107)
    # Bob's session key signing for alice's userid, and a signature over another timestamp.
    forged = {**signed(kit, SESSION_2), "nickname": "mallory"}
    refused(await kit.client.post("/api/my_profile/", json=forged), 401, 40107)
    stale = {**signed(kit, SESSION), "nickname": "mallory"}
    stale["timestamp"] += 1
    refused(await kit.client.post("/api/my_profile/", json=stale), 401, 40107)
    assert await snapshot(kit, alice, bob) == before
    good = {**signed(kit, SESSION), "nickname": "alice", "avatar_url": ""}
    response = await kit.client.post("/api/my_profile/", json=good)
    assert (
        response.json()["data"]["nickname"] == "alice"
        and response.json()["data"]["avatar_url"] == ""
    )
    again = await kit.client.post("/api/my_profile/", json=good)
    refused(again, 401, 40105)  # a request signature is single use


async def test_unbinding_ends_the_wallets_sessions(
    kit: Kit, alice: LocalAccount, bob: LocalAccount
) -> None:
    await signed_up(kit, alice)
    assert (
        await kit.client.post("/api/user_binddid/", json=bind_body(kit, bob, consent(kit, bob)))
    ).status_code == 200
    assert (
        await kit.client.post("/api/user_register_v2/", json=register_body(kit, bob, OTHER_MAIN))
    ).status_code == 200
    login = await kit.client.post(
        "/api/user_login_v2/", json=login_body(kit, bob, OTHER_MAIN, SESSION_2)
    )
    assert (
        login.json()["data"]["wallet_address"] == bob.address
        and login.json()["data"]["userid"] == USERID
    )
    as_bob = await kit.client.get(
        "/api/my_profile/", params=signed(kit, SESSION_2), headers=pick(SESSION_2, bob)
    )
    assert as_bob.status_code == 200
    # The header naming bob's key with alice as the wallet is refused.
    mixed = await kit.client.get(
        "/api/my_profile/", params=signed(kit, SESSION_2), headers=pick(SESSION_2, alice)
    )
    refused(mixed, 401, 40107)
    kit.clock.advance(1)  # a new timestamp: the same signed text would be a replay
    unbind = {**bind_body(kit, bob, None), "did_action": "unbind"}
    assert (await kit.client.post("/api/user_binddid/", json=unbind)).status_code == 200
    record = await kit.store.get(USERID)
    assert record is not None and record.bound_wallets == ()
    assert [k.address for k in record.session_keys] == [alice.address]
    refused(await kit.client.get("/api/my_profile/", params=signed(kit, SESSION_2)), 401, 40107)
    kit.clock.advance(1)
    again = {**unbind, **signed(kit, SESSION, "eth" + bob.address.lower())}
    refused(await kit.client.post("/api/user_binddid/", json=again), 404, 40402)


async def test_the_session_keys_kept_per_user_are_capped(kit: Kit, alice: LocalAccount) -> None:
    await kit.client.post("/api/user_register_v2/", json=register_body(kit, alice))
    keys = [nacl.signing.SigningKey(bytes([i]) * 32) for i in range(1, 20)]
    for key in keys:
        assert (
            await kit.client.post("/api/user_login_v2/", json=login_body(kit, alice, session=key))
        ).status_code == 200
        kit.clock.advance(1)
    record = await kit.store.get(USERID)
    assert record is not None
    assert [k.pubkey for k in record.session_keys] == [hexkey(k) for k in keys[-16:]]


async def test_signed_fields_are_read_as_the_sdk_names_them(kit: Kit, alice: LocalAccount) -> None:
    await signed_up(kit, alice)
    before = await snapshot(kit, alice)
    both = signed(kit, SESSION)
    both["web3mq_user_signature"] = both["web3mq_signature"]
    refused(await kit.client.get("/api/my_profile/", params=both), 401, 40107)
    kit.clock.advance(1)
    other = {**signed(kit, SESSION), "creator_id": "bob"}
    refused(await kit.client.get("/api/my_profile/", params=other), 401, 40107)
    assert await snapshot(kit, alice) == before
    kit.clock.advance(1)
    as_creator = signed(kit, SESSION)
    as_creator["creator_id"] = as_creator.pop("userid")
    as_creator["web3mq_user_signature"] = as_creator.pop("web3mq_signature")
    response = await kit.client.get("/api/my_profile/", params=as_creator)
    assert response.json()["data"]["userid"] == USERID


def test_v2_needs_a_store_that_keeps_keys(clock: FakeClock) -> None:
    class Plain:
        async def get(self, userid: str) -> None: ...
        async def get_by_address(self, address: str) -> None: ...
        async def save(self, record: UserRecord) -> None: ...
        async def merge(self, login: UserRecord, *, max_devices: int) -> None: ...

    with pytest.raises(ValueError, match="KeyedUserStore"):
        WalletAuth(
            secret_key=SECRET_KEY,
            domain=DOMAIN,
            uri=URI,
            user_store=Plain(),  # type: ignore[arg-type]
            web3mq=Web3MQSettings(v2=Web3MQV2Settings()),
        )
    with pytest.raises(ValueError, match="max_session_keys"):
        Web3MQV2Settings(max_session_keys=0)
    with pytest.raises(ValueError, match="Web3MQV2Settings"):
        Web3MQSettings(v2=True)  # type: ignore[arg-type]


def test_serve_settings_take_the_dapps_origins() -> None:
    from asgi_wallet_auth.service import SIGNED_REQUESTS_ENV, WEB3MQ_URIS_ENV, web3mq_from_env

    env = {WEB3MQ_URIS_ENV: f"{ORIGIN} http://localhost:5173", SIGNED_REQUESTS_ENV: "1"}
    settings = web3mq_from_env(env, URI)
    assert settings.uris == {URI, ORIGIN, "http://localhost:5173"}
    assert settings.signed_requests is True and settings.v2 == Web3MQV2Settings()
    assert web3mq_from_env({}, URI).signed_requests is False
    with pytest.raises(ValueError, match="--web3mq-uri must be an origin"):
        web3mq_from_env({WEB3MQ_URIS_ENV: "ftp://x"}, URI)
