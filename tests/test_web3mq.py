"""Web3MQ's ``POST /api/user_login/`` (DESIGN.md §2.2, docs/web3mq.md), called in process as ASGI.

Every body is built here from first principles: NonceContent with pycryptodome's SHA3-224 (not the
library's routine, which a known-answer test pins separately), the SDK's message template written
out by hand, real EIP-191 signatures by the fixed wallet keys and fixed-seed ed25519 device keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import jwt
import nacl.signing
import pytest
from Crypto.Hash import SHA3_224, keccak
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_wallet_auth import (
    MemoryNonceStore,
    MemoryUserStore,
    UserRecord,
    WalletAuth,
    WalletAuthMiddleware,
)
from asgi_wallet_auth.stores.memory import StoreFull
from asgi_wallet_auth.web3mq import nonce_content
from tests.conftest import (
    OTHER_KEY,
    SECRET_KEY,
    T0,
    URI,
    WALLET_KEY,
    FakeClock,
    client_for,
    sign_text,
)
from tests.helpers import assert_error, login, make_auth

ROUTE = "/api/user_login/"
USERID = "user:alice"
NOW_MS = int(T0 * 1000)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

DEVICE = nacl.signing.SigningKey(bytes(range(32)))
DEVICE_2 = nacl.signing.SigningKey(bytes(range(32, 64)))
DEVICE_3 = nacl.signing.SigningKey(bytes(range(64, 96)))

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(20)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
GIF87 = b"GIF87a" + bytes(20)
GIF89 = b"GIF89a" + bytes(20)
WEBP = b"RIFF" + (24).to_bytes(4, "little") + b"WEBPVP8 " + bytes(16)


def pub(device: nacl.signing.SigningKey) -> str:
    return device.verify_key.encode().hex()


def sha3_nonce(
    userid: str, pubkey_type: str, pubkey_value: str, did_type: str, did_value: str, ts: object
) -> str:
    """NonceContent computed independently of the library (pycryptodome's FIPS SHA3-224)."""
    text = userid + pubkey_type + pubkey_value + did_type + did_value + str(ts)
    return SHA3_224.new(text.encode("utf-8")).hexdigest()


def content_text(address: str, nonce: str, *, uri: str | None = URI, style: str = "sdk") -> str:
    """Web3MQ's SDK template: indented with blank lines ("sdk"), compact, or compact with CRLF."""
    if style == "sdk":
        lines = [
            "Web3MQ wants you to sign in with your Ethereum account:",
            f"    {address}",
            "",
            "    For Web3MQ register",
            *([f"    URI: {uri}"] if uri is not None else []),
            "    Version: 1",
            "",
            f"    Nonce: {nonce}",
            "    Issued At: 01/01/2026 00:00",
        ]
        return "\n".join(lines)
    lines = [
        "Web3MQ wants you to sign in with your Ethereum account:",
        address,
        "For Web3MQ register",
        *([f"URI: {uri}"] if uri is not None else []),
        "Version: 1",
        f"Nonce: {nonce}",
        "Issued At: 01/01/2026 00:00",
    ]
    return ("\r\n" if style == "crlf" else "\n").join(lines)


def login_body(
    account: LocalAccount,
    *,
    userid: str = USERID,
    device: nacl.signing.SigningKey = DEVICE,
    timestamp: object = NOW_MS,
    did_value: str | None = None,
    did_type: str = "eth",
    pubkey_type: str = "ed25519",
    pubkey_value: str | None = None,
    style: str = "sdk",
    uri: str | None = URI,
    nonce: str | None = None,
    content: str | None = None,
    edit: Callable[[str], str] | None = None,
    signer: LocalAccount | None = None,
    **profile: Any,
) -> dict[str, Any]:
    """A complete request body; every part can be replaced to build one attack at a time."""
    did_value = account.address if did_value is None else did_value
    pubkey_value = pub(device) if pubkey_value is None else pubkey_value
    if nonce is None:
        nonce = sha3_nonce(userid, pubkey_type, pubkey_value, did_type, did_value, timestamp)
    if content is None:
        content = content_text(did_value, nonce, uri=uri, style=style)
    if edit is not None:
        content = edit(content)
    body: dict[str, Any] = {
        "userid": userid,
        "did_type": did_type,
        "did_value": did_value,
        "timestamp": timestamp,
        "did_signature": sign_text(signer or account, content),
        "signature_content": content,
        "pubkey_type": pubkey_type,
        "pubkey_value": pubkey_value,
    }
    body.update(profile)
    return body


def assert_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    data: dict[str, Any] = body["data"]
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        SECRET_KEY,
        algorithms=["HS256"],
        audience=URI,
        issuer=URI,
        options={"verify_exp": False, "verify_iat": False},
    )
    return claims


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(ROUTE, json=body)


async def record_of(auth: WalletAuth, userid: str = USERID) -> UserRecord | None:
    record: UserRecord | None = await auth.user_store.get(userid)
    return record


def nothing_stored(auth: WalletAuth) -> bool:
    store = auth.user_store
    assert isinstance(store, MemoryUserStore)
    return len(store) == 0


# -- NonceContent ---------------------------------------------------------------------------

#: sha3_224("user:alice" "ed25519" <DEVICE key> "eth" <wallet EIP-55> "1767225600000"), computed
#: once with pycryptodome's ``Crypto.Hash.SHA3_224`` and written down here.
KNOWN_NONCE = "a8a7f363eb5695ab842f9f853e65f140f1cda0df930b8119527d4970"


def test_nonce_content_is_fips_sha3_224_known_answer(wallet: LocalAccount) -> None:
    assert wallet.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    fields = (USERID, "ed25519", pub(DEVICE), "eth", wallet.address, NOW_MS)
    assert pub(DEVICE) == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert nonce_content(*fields) == KNOWN_NONCE
    text = "".join(str(f) for f in fields).encode()
    keccak_224 = keccak.new(digest_bits=224, data=text).hexdigest()
    assert keccak_224 != KNOWN_NONCE  # the pre-standard Keccak padding gives another digest


async def test_content_with_keccak_224_nonce_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    text = USERID + "ed25519" + pub(DEVICE) + "eth" + wallet.address + str(NOW_MS)
    wrong = keccak.new(digest_bits=224, data=text.encode()).hexdigest()
    assert_error(await post(client, login_body(wallet, nonce=wrong)), 401, 40103)
    assert nothing_stored(auth)


# -- success --------------------------------------------------------------------------------


async def test_login_returns_a_token_bound_to_the_userid_and_stores_the_user(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = login_body(
        wallet,
        nickname="Alice",
        avatar_url="https://cdn.example.com/a.png",
        avatar_base64=b64(PNG),
    )
    data = assert_ok(await post(client, body))
    assert data["userid"] == USERID
    assert data["did_value"] == wallet.address
    assert data["did_type"] == "eth"
    assert data["pubkey_type"] == "ed25519"
    assert data["pubkey_value"] == pub(DEVICE)
    claims = claims_of(data["access_token"])
    assert claims["sub"] == wallet.address
    assert claims["userid"] == USERID
    assert claims["did_type"] == "eth" and claims["did_value"] == wallet.address

    record = await record_of(auth)
    assert record is not None
    assert record.userid == USERID and record.address == wallet.address
    assert record.did_type == "eth"
    assert record.device_keys == (pub(DEVICE),)
    assert record.nickname == "Alice"
    assert record.avatar_url == "https://cdn.example.com/a.png"
    assert record.avatar == PNG and record.avatar_type == "image/png"
    assert record.first_login == record.last_login == T0
    assert await auth.user_store.get_by_address(wallet.address) == record


@pytest.mark.parametrize("style", ["sdk", "compact", "crlf"])
async def test_sdk_template_variants_are_accepted(
    client: httpx.AsyncClient, wallet: LocalAccount, style: str
) -> None:
    body = login_body(wallet, style=style)
    if style == "crlf":
        assert "\r\n" in body["signature_content"]
    assert assert_ok(await post(client, body))["userid"] == USERID


@pytest.mark.parametrize("case", ["lower", "upper"])
async def test_did_value_in_any_accepted_case_gives_the_eip55_address(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, case: str
) -> None:
    hex40 = wallet.address[2:]
    did_value = "0x" + (hex40.lower() if case == "lower" else hex40.upper())
    data = assert_ok(await post(client, login_body(wallet, did_value=did_value)))
    assert data["did_value"] == wallet.address
    record = await record_of(auth)
    assert record is not None and record.address == wallet.address


# -- signature_content ----------------------------------------------------------------------


def _replace_line(prefix: str, new: str | None) -> Callable[[str], str]:
    def edit(content: str) -> str:
        lines = content.split("\n")
        out = []
        for line in lines:
            if line.strip().startswith(prefix):
                if new is not None:
                    out.append(new)
            else:
                out.append(line)
        return "\n".join(out)

    return edit


def _append(extra: str) -> Callable[[str], str]:
    return lambda content: content + "\n" + extra


def _other_address(content: str) -> str:
    mine, other = Account.from_key(WALLET_KEY).address, Account.from_key(OTHER_KEY).address
    assert mine in content
    return content.replace(mine, other)


CONTENT_ATTACKS: dict[str, Callable[[str], str]] = {
    "two Nonce lines, the same value": lambda c: c + "\n" + c.split("\n")[7],
    "two Nonce lines, one forged": _append("Nonce: " + "0" * 56),
    "wrong Nonce": _replace_line("Nonce:", "Nonce: " + "0" * 56),
    "Nonce line missing": _replace_line("Nonce:", None),
    "address line missing": _replace_line("0x", None),
    "another address line": _other_address,
    "URI line missing": _replace_line("URI:", None),
    "wrong URI": _replace_line("URI:", "URI: https://evil.example"),
    "two URI lines, both right": _append(f"URI: {URI}"),
    "two URI lines, one wrong": _append("URI: https://evil.example"),
}


@pytest.mark.parametrize("attack", list(CONTENT_ATTACKS))
async def test_signature_content_not_naming_this_login_is_refused_without_effect(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, attack: str
) -> None:
    good = login_body(wallet)
    bad = login_body(wallet, content=good["signature_content"], edit=CONTENT_ATTACKS[attack])
    assert bad["signature_content"] != good["signature_content"]
    assert_error(await post(client, bad), 401, 40103)
    assert nothing_stored(auth)
    # The refusal burned nothing: the genuine request with the same NonceContent still works.
    assert_ok(await post(client, good))


async def test_web3mq_uris_setting_allows_a_listed_second_uri(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    app_uri = "https://app.example.com"
    async with client_for(make_auth(clock)) as client:
        assert_error(await post(client, login_body(wallet, uri=app_uri)), 401, 40103)
    async with client_for(make_auth(clock, web3mq_uris=[URI, app_uri])) as client:
        assert_ok(await post(client, login_body(wallet, uri=app_uri)))
        assert_ok(await post(client, login_body(wallet, uri=URI, timestamp=NOW_MS + 1)))
        evil = login_body(wallet, uri="https://evil.example", timestamp=NOW_MS + 2)
        assert_error(await post(client, evil), 401, 40103)


# -- did_signature --------------------------------------------------------------------------


async def test_did_signature_by_another_wallet_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    assert_error(await post(client, login_body(wallet, signer=other_wallet)), 401, 40101)
    assert nothing_stored(auth)


@pytest.mark.parametrize(
    "signature",
    ["0x1234", "not a signature", "ab" * 65, "0x" + "ab" * 64 + "1d", "0x" + "zz" * 65, None, 7],
)
async def test_malformed_did_signature_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, signature: object
) -> None:
    body = login_body(wallet)
    body["did_signature"] = signature
    assert_error(await post(client, body), 400, 40003)
    assert nothing_stored(auth)


async def test_high_s_twin_of_a_valid_did_signature_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = login_body(wallet)
    raw = bytes.fromhex(body["did_signature"][2:])
    r, s, v = raw[:32], int.from_bytes(raw[32:64], "big"), raw[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    assert_error(await post(client, {**body, "did_signature": "0x" + twin.hex()}), 400, 40003)
    assert nothing_stored(auth)
    assert_ok(await post(client, body))


# -- timestamp ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [float(NOW_MS), NOW_MS + 0.5, True, str(NOW_MS), -NOW_MS, 0, -1, 2**53, 10**30, None],
    ids=[
        "float",
        "fraction",
        "bool",
        "string",
        "negative",
        "zero",
        "minus-one",
        "2^53",
        "huge",
        "null",
    ],
)
async def test_timestamp_that_is_not_a_positive_integer_of_ms_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, timestamp: object
) -> None:
    assert_error(await post(client, login_body(wallet, timestamp=timestamp)), 400, 40001)
    assert nothing_stored(auth)


async def test_nan_timestamp_is_refused_by_the_body_parser(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    text = json.dumps(login_body(wallet)).replace(f'"timestamp": {NOW_MS}', '"timestamp": NaN')
    assert '"timestamp": NaN' in text
    response = await client.post(
        ROUTE, content=text.encode(), headers={"content-type": "application/json"}
    )
    assert_error(response, 400)
    assert nothing_stored(auth)


@pytest.mark.parametrize(
    ("offset_ms", "ok"),
    [(-300_000, True), (-300_001, False), (60_000, True), (60_001, False), (-86_400_000, False)],
)
async def test_timestamp_window_edges(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, offset_ms: int, ok: bool
) -> None:
    response = await post(client, login_body(wallet, timestamp=NOW_MS + offset_ms))
    if ok:
        assert_ok(response)
    else:
        assert_error(response, 401, 40106)
        assert nothing_stored(auth)


async def test_timestamp_window_setting_moves_the_edges(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    async with client_for(make_auth(clock, timestamp_window=(10.0, 5.0))) as client:
        for offset_ms, ok in [
            (-10_000, True),
            (-10_001, False),
            (5_000, True),
            (5_001, False),
            (60_000, False),  # inside the default window, outside this one
            (-300_000, False),
        ]:
            response = await post(client, login_body(wallet, timestamp=NOW_MS + offset_ms))
            if ok:
                assert_ok(response)
            else:
                assert_error(response, 401, 40106)


# -- did_type and device key ----------------------------------------------------------------


async def test_unsupported_did_type_is_400_naming_the_supported_ones(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = assert_error(await post(client, login_body(wallet, did_type="sol")), 400, 40001)
    assert "eth" in body["msg"]
    assert nothing_stored(auth)


async def test_unsupported_pubkey_type_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_error(await post(client, login_body(wallet, pubkey_type="secp256k1")), 400, 40001)
    assert nothing_stored(auth)


@pytest.mark.parametrize(
    "pubkey_value",
    [
        pub(DEVICE).upper(),
        pub(DEVICE)[:63],
        pub(DEVICE) + "0",
        "g" * 64,
        "00" * 32,  # a point of small order
        "01" + "00" * 31,  # the identity point
        "ec" + "ff" * 30 + "7f",  # y = p - 1: order 2
        None,
        42,
    ],
    ids=["upper", "63", "65", "non-hex", "zeros", "identity", "order-2", "null", "int"],
)
async def test_unusable_device_key_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, pubkey_value: object
) -> None:
    body = login_body(wallet, pubkey_value=str(pubkey_value))
    body["pubkey_value"] = pubkey_value
    assert_error(await post(client, body), 400, 40001)
    assert nothing_stored(auth)


# -- replay ---------------------------------------------------------------------------------


async def test_replayed_login_is_refused_and_changes_nothing(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    body = login_body(wallet, nickname="alice")
    assert_ok(await post(client, body))
    before = await record_of(auth)
    clock.advance(1)
    assert_error(await post(client, body), 401, 40105)
    # The profile is unsigned, so a replay with other profile fields is still the same login.
    assert_error(await post(client, {**body, "nickname": "mallory"}), 401, 40105)
    assert await record_of(auth) == before


async def test_replay_marker_lives_until_the_window_closes(
    client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    body = login_body(wallet)
    assert_ok(await post(client, body))
    clock.advance(300)  # the last instant the timestamp is still inside the window
    assert_error(await post(client, body), 401, 40105)
    clock.advance(0.001)
    assert_error(await post(client, body), 401, 40106)


async def test_twenty_concurrent_identical_logins_yield_exactly_one_token(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = login_body(wallet)
    responses: list[httpx.Response] = []

    async def attempt() -> None:
        responses.append(await post(client, body))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(attempt)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19
    assert sorted(r.json()["code"] for r in responses) == [0] + [40105] * 19
    record = await record_of(auth)
    assert record is not None and record.device_keys == (pub(DEVICE),)


# -- identity -------------------------------------------------------------------------------


async def test_userid_bound_to_another_wallet_is_409_and_the_victim_is_untouched(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    assert_ok(await post(client, login_body(wallet, nickname="alice", avatar_base64=b64(PNG))))
    victim = await record_of(auth)
    attack = login_body(
        other_wallet, device=DEVICE_2, timestamp=NOW_MS + 1, nickname="mallory", avatar_url=URI
    )
    assert_error(await post(client, attack), 409, 40901)
    assert await record_of(auth) == victim
    assert victim is not None and victim.device_keys == (pub(DEVICE),)
    assert victim.nickname == "alice"
    assert await auth.user_store.get_by_address(other_wallet.address) is None
    # The refusal stored nothing: the wallet is still free to register under a userid of its own.
    own = login_body(other_wallet, userid="user:mallory", device=DEVICE_2, timestamp=NOW_MS + 2)
    assert_ok(await post(client, own))


async def test_wallet_registered_under_one_userid_cannot_take_another(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_ok(await post(client, login_body(wallet)))
    before = await record_of(auth)
    response = await post(client, login_body(wallet, userid="user:second", timestamp=NOW_MS + 1))
    assert_error(response, 409, 40901)
    assert await record_of(auth, "user:second") is None
    assert await record_of(auth) == before


async def test_userid_that_is_another_wallets_address_is_refused(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, other_wallet: LocalAccount
) -> None:
    # The legacy /login gives every wallet its EIP-55 address as userid, so an address-shaped
    # userid names that wallet: another wallet must not register it (and then appear in tokens
    # and request.user.userid as the victim).
    for squatted in (wallet.address, wallet.address.lower()):
        response = await post(client, login_body(other_wallet, userid=squatted))
        assert_error(response, 409, 40901)
    assert await record_of(auth, wallet.address) is None
    assert nothing_stored(auth)
    # A wallet may still use its own address as its userid.
    own = login_body(other_wallet, userid=other_wallet.address.lower(), timestamp=NOW_MS + 1)
    assert assert_ok(await post(client, own))["userid"] == other_wallet.address.lower()


async def test_legacy_login_wallet_is_migrated_to_its_web3mq_userid(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, clock: FakeClock
) -> None:
    await login(client, wallet)
    legacy = await record_of(auth, wallet.address)
    assert legacy is not None and legacy.userid == wallet.address
    clock.advance(10)
    data = assert_ok(await post(client, login_body(wallet, timestamp=NOW_MS + 10_000)))
    assert data["userid"] == USERID
    assert claims_of(data["access_token"])["userid"] == USERID
    assert await record_of(auth, wallet.address) is None
    record = await auth.user_store.get_by_address(wallet.address)
    assert record is not None and record.userid == USERID
    assert record.first_login == T0 and record.last_login == T0 + 10
    assert record.device_keys == (pub(DEVICE),)
    # And the legacy route now answers with the new userid.
    assert (await login(client, wallet))["userid"] == USERID


# -- device keys ----------------------------------------------------------------------------


async def test_second_device_key_is_added_after_the_first(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_ok(await post(client, login_body(wallet)))
    assert_ok(await post(client, login_body(wallet, device=DEVICE_2, timestamp=NOW_MS + 1)))
    record = await record_of(auth)
    assert record is not None and record.device_keys == (pub(DEVICE), pub(DEVICE_2))


async def test_same_device_key_twice_is_stored_once(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_ok(await post(client, login_body(wallet)))
    assert_ok(await post(client, login_body(wallet, timestamp=NOW_MS + 1)))
    record = await record_of(auth)
    assert record is not None and record.device_keys == (pub(DEVICE),)


async def test_max_devices_keeps_the_newest_keys(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock, max_devices=2)
    async with client_for(auth) as client:
        for i, device in enumerate([DEVICE, DEVICE_2, DEVICE_3]):
            assert_ok(await post(client, login_body(wallet, device=device, timestamp=NOW_MS + i)))
    record = await record_of(auth)
    assert record is not None and record.device_keys == (pub(DEVICE_2), pub(DEVICE_3))


class InterleavingUserStore(MemoryUserStore):
    """Reads answer a snapshot, then yield, as a networked or threaded store's round trip does."""

    async def get(self, userid: str) -> UserRecord | None:
        record = await super().get(userid)
        for _ in range(50):
            await anyio.lowlevel.checkpoint()
        return record


async def test_concurrent_logins_from_two_new_devices_register_both(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    # Two devices of one user log in at the same moment and both get a 200: both keys must then
    # be registered, or the loser's signed requests fail although its login succeeded.
    auth = make_auth(clock, user_store=InterleavingUserStore())
    async with client_for(auth) as client:
        assert_ok(await post(client, login_body(wallet)))
        responses: list[httpx.Response] = []

        async def attempt(device: nacl.signing.SigningKey, ts: int) -> None:
            responses.append(await post(client, login_body(wallet, device=device, timestamp=ts)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, DEVICE_2, NOW_MS + 1)
            tg.start_soon(attempt, DEVICE_3, NOW_MS + 2)
    assert [r.status_code for r in responses] == [200, 200]
    record = await record_of(auth)
    assert record is not None
    assert set(record.device_keys) == {pub(DEVICE), pub(DEVICE_2), pub(DEVICE_3)}


# -- profile --------------------------------------------------------------------------------


async def test_nickname_length_limit(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_error(await post(client, login_body(wallet, nickname="a" * 65)), 400, 40001)
    assert_error(await post(client, login_body(wallet, nickname="")), 400, 40001)
    assert nothing_stored(auth)
    assert_ok(await post(client, login_body(wallet, nickname="a" * 64)))
    record = await record_of(auth)
    assert record is not None and record.nickname == "a" * 64


async def test_max_nickname_length_setting(clock: FakeClock, wallet: LocalAccount) -> None:
    async with client_for(make_auth(clock, max_nickname_length=8)) as client:
        assert_error(await post(client, login_body(wallet, nickname="a" * 9)), 400, 40001)
        assert_ok(await post(client, login_body(wallet, nickname="a" * 8)))


@pytest.mark.parametrize(
    "nickname",
    [
        "bell\x07",
        "evil\u202egnp.exe",
        "zero\u200dwidth",
        "zero\u200bspace",
        "nl\n",
        "tab\t",
        "\x00",
    ],
    ids=["bel", "bidi-override", "zwj", "zwsp", "newline", "tab", "nul"],
)
async def test_nickname_with_control_or_format_characters_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, nickname: str
) -> None:
    assert_error(await post(client, login_body(wallet, nickname=nickname)), 400, 40001)
    assert nothing_stored(auth)


async def test_nickname_with_unicode_letters_and_emoji_is_stored(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    nickname = "Zoë 日本 Ωmega 🦊👍🏽"
    assert_ok(await post(client, login_body(wallet, nickname=nickname)))
    record = await record_of(auth)
    assert record is not None and record.nickname == nickname


@pytest.mark.parametrize(
    "avatar_url",
    [
        "http://cdn.example.com/a.png",
        "https:///a.png",
        "https://",
        "https://user:pw@cdn.example.com/a.png",
        "https://user@cdn.example.com/a.png",
        "https://exämple.com/a.png",
        "https://cdn.example.com/" + "a" * 2048,
        "javascript:alert(1)",
        "//cdn.example.com/a.png",
        "https://cdn.example.com/a b.png",
        "https://cdn.example.com:99999/a.png",
        "",
    ],
    ids=[
        "http",
        "no-host",
        "empty-authority",
        "userinfo",
        "user",
        "non-ascii",
        "too-long",
        "javascript",
        "scheme-relative",
        "space",
        "bad-port",
        "empty",
    ],
)
async def test_bad_avatar_url_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, avatar_url: str
) -> None:
    assert_error(await post(client, login_body(wallet, avatar_url=avatar_url)), 400, 40001)
    assert nothing_stored(auth)


async def test_https_avatar_url_is_stored(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    url = "https://cdn.example.com:8443/u/alice.png?size=64#x"
    assert_ok(await post(client, login_body(wallet, avatar_url=url)))
    record = await record_of(auth)
    assert record is not None and record.avatar_url == url


@pytest.mark.parametrize(
    "avatar",
    ["not base64!", "iVBORw0KGgo", b64(PNG)[:-1], " " + b64(PNG), b64(b"plain text, not an image")],
    ids=["bad-chars", "bad-padding", "truncated", "whitespace", "not-an-image"],
)
async def test_bad_avatar_base64_is_400(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, avatar: str
) -> None:
    assert_error(await post(client, login_body(wallet, avatar_base64=avatar)), 400, 40001)
    assert nothing_stored(auth)


@pytest.mark.parametrize(
    ("image", "media_type"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF87, "image/gif"),
        (GIF89, "image/gif"),
        (WEBP, "image/webp"),
    ],
    ids=["png", "jpeg", "gif87a", "gif89a", "webp"],
)
async def test_avatar_image_is_stored_with_its_sniffed_type(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount, image: bytes, media_type: str
) -> None:
    assert_ok(await post(client, login_body(wallet, avatar_base64=b64(image))))
    record = await record_of(auth)
    assert record is not None
    assert record.avatar == image and record.avatar_type == media_type


async def test_avatar_data_url_is_accepted_when_its_type_matches_the_bytes(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    lying = login_body(wallet, avatar_base64="data:image/gif;base64," + b64(PNG))
    assert_error(await post(client, lying), 400, 40001)
    assert nothing_stored(auth)
    assert_ok(
        await post(client, login_body(wallet, avatar_base64="data:image/png;base64," + b64(PNG)))
    )
    record = await record_of(auth)
    assert record is not None and record.avatar == PNG and record.avatar_type == "image/png"


async def test_avatar_over_max_avatar_size_is_413(clock: FakeClock, wallet: LocalAccount) -> None:
    auth = make_auth(clock, max_avatar_size=1024)
    async with client_for(auth) as client:
        big = PNG + bytes(2048 - len(PNG))
        response = await post(client, login_body(wallet, avatar_base64=b64(big)))
        assert_error(response, 413, 41301)
        just_over = PNG + bytes(1025 - len(PNG))  # same base64 length as 1024 bytes
        response = await post(client, login_body(wallet, avatar_base64=b64(just_over)))
        assert_error(response, 413, 41301)
        assert nothing_stored(auth)
        at_limit = PNG + bytes(1024 - len(PNG))
        assert_ok(await post(client, login_body(wallet, avatar_base64=b64(at_limit))))


async def test_route_body_cap_grows_with_the_avatar_but_still_bounds_the_body(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, max_avatar_size=16 * 1024)
    async with client_for(auth) as client:
        avatar = PNG + bytes(15_000)
        body = login_body(wallet, avatar_base64=b64(avatar))
        assert len(json.dumps(body)) > auth.max_body_size
        assert_ok(await post(client, body))
        padded = login_body(wallet, timestamp=NOW_MS + 1, padding="x" * 64 * 1024)
        assert_error(await post(client, padded), 413, 41301)
    record = await record_of(auth)
    assert record is not None and record.last_login == T0 and record.avatar == avatar


async def test_profile_fields_fill_but_never_overwrite(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    first = login_body(wallet, nickname="alice", avatar_base64=b64(PNG))
    assert_ok(await post(client, first))
    second = login_body(
        wallet,
        timestamp=NOW_MS + 1,
        nickname="mallory",
        avatar_url="https://cdn.example.com/a.png",
        avatar_base64=b64(JPEG),
    )
    assert_ok(await post(client, second))
    record = await record_of(auth)
    assert record is not None
    assert record.nickname == "alice"
    assert record.avatar == PNG and record.avatar_type == "image/png"
    assert record.avatar_url == "https://cdn.example.com/a.png"  # was empty: filled
    third = login_body(wallet, timestamp=NOW_MS + 2, avatar_url="https://evil.example/x.png")
    assert_ok(await post(client, third))
    record = await record_of(auth)
    assert record is not None and record.avatar_url == "https://cdn.example.com/a.png"


async def test_empty_profile_fields_are_filled_by_a_later_login(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    assert_ok(await post(client, login_body(wallet)))
    record = await record_of(auth)
    assert record is not None and record.nickname is None and record.avatar is None
    later = login_body(wallet, timestamp=NOW_MS + 1, nickname="alice", avatar_base64=b64(GIF89))
    assert_ok(await post(client, later))
    record = await record_of(auth)
    assert record is not None
    assert (
        record.nickname == "alice" and record.avatar == GIF89 and record.avatar_type == "image/gif"
    )


# -- store faults ---------------------------------------------------------------------------


class FailingUserStore(MemoryUserStore):
    """A user store whose writes fail once ``down`` is set (reads work), like a lost database.

    Every write method a version of the ``UserStore`` protocol has had is covered, so the test
    does not depend on which one the route uses.
    """

    down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("database is down")

    async def save(self, record: UserRecord) -> None:
        self._check()
        await super().save(record)

    async def create(self, record: UserRecord) -> bool:
        self._check()
        result: bool = await super().create(record)  # type: ignore
        return result

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        self._check()
        result: UserRecord | None = await super().merge(  # type: ignore
            login, max_devices=max_devices
        )
        return result


async def test_failing_user_store_gives_503_and_no_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = FailingUserStore()
    store.down = True
    async with client_for(make_auth(clock, user_store=store)) as client:
        response = await post(client, login_body(wallet))
        assert_error(response, 503, 50301)
        assert "access_token" not in response.text
    assert len(store) == 0


async def test_failing_user_store_on_a_later_login_gives_503_and_no_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    store = FailingUserStore()
    async with client_for(make_auth(clock, user_store=store)) as client:
        assert_ok(await post(client, login_body(wallet)))
        before = await store.get(USERID)
        store.down = True
        response = await post(client, login_body(wallet, device=DEVICE_2, timestamp=NOW_MS + 1))
        assert_error(response, 503, 50301)
        assert "access_token" not in response.text
    assert await store.get(USERID) == before


async def test_full_replay_store_gives_503_never_a_token(
    clock: FakeClock, wallet: LocalAccount
) -> None:
    auth = make_auth(clock, replay_store=MemoryNonceStore(evict=False, maxsize=1))
    async with client_for(auth) as client:
        first = login_body(wallet)
        assert_ok(await post(client, first))
        response = await post(client, login_body(wallet, device=DEVICE_2, timestamp=NOW_MS + 1))
        assert_error(response, 503, 50301)
        assert "access_token" not in response.text
        # The marker of the first login was kept, not evicted to make room: still a replay.
        assert_error(await post(client, first), 401, 40105)
    record = await record_of(auth)
    assert record is not None and record.device_keys == (pub(DEVICE),)


async def test_non_evicting_memory_store_refuses_when_full_and_keeps_live_entries(
    clock: FakeClock,
) -> None:
    store = MemoryNonceStore(evict=False, maxsize=3, clock=clock)
    assert not store.evicts
    for i in range(3):
        assert await store.put(f"k{i}", "v", 10 + i)
    with pytest.raises(StoreFull):
        await store.put("k3", "v", 10)
    assert await store.put("k0", "other", 10) is False  # a live key is never overwritten
    for i in range(3):
        assert await store.exists(f"k{i}")
    assert not await store.exists("k3")
    clock.advance(10.5)  # k0 has expired; k1 and k2 are live
    assert await store.put("k3", "v", 10)
    assert await store.exists("k1") and await store.exists("k2") and await store.exists("k3")
    with pytest.raises(StoreFull):
        await store.put("k4", "v", 10)
    clock.advance(100)
    for i in range(4, 7):
        assert await store.put(f"k{i}", "v", 10)
    assert len(store) == 3


# -- the token in an application ------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "address": getattr(user, "address", None),
            "userid": getattr(user, "userid", None),
        }
    )


async def test_web3mq_token_works_through_the_middleware_and_refresh_keeps_the_userid(
    auth: WalletAuth, wallet: LocalAccount, clock: FakeClock
) -> None:
    app = Starlette(
        routes=[Route("/whoami", whoami), Mount("/auth", app=auth)],
        middleware=[Middleware(WalletAuthMiddleware, auth=auth)],
    )
    async with client_for(app) as client:
        data = assert_ok(await client.post("/auth" + ROUTE, json=login_body(wallet)))
        headers = {"Authorization": f"Bearer {data['access_token']}"}
        me = (await client.get("/whoami", headers=headers)).json()
        assert me == {"authenticated": True, "address": wallet.address, "userid": USERID}
        clock.advance(3600)
        refreshed = assert_ok(await client.get("/auth/refresh", headers=headers))
        assert refreshed["userid"] == USERID
        assert refreshed["access_token"] != data["access_token"]
        assert claims_of(refreshed["access_token"])["userid"] == USERID
        headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
        me = (await client.get("/whoami", headers=headers)).json()
        assert me == {"authenticated": True, "address": wallet.address, "userid": USERID}
