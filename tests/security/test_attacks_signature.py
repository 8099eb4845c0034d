"""Attacks on the signature: malleable twins, non-canonical encodings, foreign signing schemes,
contract-wallet signatures and a recovery routine that misbehaves.

Each test is named after the attack it blocks, sends a real signature (or a real signature
altered one way) through the HTTP routes, and checks the documented refusal (docs/errors.md):
never a 500, never a token, and never a burned secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
import httpx
import nacl.signing
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_intended_validator, encode_typed_data
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import MemoryUserStore, WalletAuth
from asgi_wallet_auth import signatures as signatures_module
from asgi_wallet_auth.routes import secret as secret_routes
from asgi_wallet_auth.siwe import parse_rfc3339
from tests.conftest import T0, FakeClock, client_for, sign_text
from tests.helpers import get_secret, make_auth, siwe_text
from tests.security.support import assert_refused, assert_token, web3mq_login_body

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = N // 2
NOW_MS = int(T0 * 1000)
USERID = "user:attack-signature"
DEVICE = nacl.signing.SigningKey(bytes(range(164, 196)))
WEB3MQ_ROUTE = "/api/user_login/"
EIP1271_VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "siwe" / "eip1271.json"


# -- helpers --------------------------------------------------------------------------------


def split(signature: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(signature[2:])
    assert len(raw) == 65
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]


def join(r: int, s: int, v: int) -> str:
    return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])).hex()


def hex_signature(signature: bytes) -> str:
    text = signature.hex()
    return text if text.startswith("0x") else "0x" + text


def high_s_twin(signature: str, *, flip_v: bool = True) -> str:
    """The other valid ECDSA signature of the same message: (r, n - s), recovery id flipped."""
    r, s, v = split(signature)
    assert s <= HALF_N  # eth-account signs low s
    twin_v = {27: 28, 28: 27, 0: 1, 1: 0}[v] if flip_v else v
    return join(r, N - s, twin_v)


def raw_fields(account: LocalAccount, secret: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "login_random_secret": secret,
        "signature": sign_text(account, secret),
        "wallet_address": account.address,
    }
    fields.update(overrides)
    return fields


def siwe_fields(account: LocalAccount, secret: str) -> dict[str, Any]:
    content = siwe_text(address=account.address, nonce=secret, issued_at=T0)
    return {
        "login_random_secret": secret,
        "signature": sign_text(account, content),
        "wallet_address": account.address,
        "signature_content": content,
    }


def web3mq_body(account: LocalAccount) -> dict[str, Any]:
    """A genuine Web3MQ login body (compact template)."""
    return web3mq_login_body(account, device=DEVICE, userid=USERID)


def nothing_stored(auth: WalletAuth) -> bool:
    store = auth.user_store
    assert isinstance(store, MemoryUserStore)
    return len(store) == 0


@pytest.fixture
def auth(clock: FakeClock) -> WalletAuth:
    return make_auth(clock)


@pytest.fixture
async def client(auth: WalletAuth) -> Any:
    async with client_for(auth) as c:
        yield c


# -- malleability ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "v_encoding", "flip_v"),
    [
        ("raw secret", "27/28", True),
        ("raw secret", "27/28", False),
        ("raw secret", "0/1", True),
        ("raw secret", "0/1", False),
        ("EIP-4361", "27/28", True),
        ("EIP-4361", "0/1", True),
    ],
)
async def test_high_s_twin_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, form: str, v_encoding: str, flip_v: bool
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret) if form == "raw secret" else siwe_fields(wallet, secret)
    r, s, v = split(genuine["signature"])
    if v_encoding == "0/1":
        genuine["signature"] = join(r, s, v - 27)
    twin = high_s_twin(genuine["signature"], flip_v=flip_v)
    assert_refused(await client.post("/login", json={**genuine, "signature": twin}), 400, 40003)
    # The twin burned nothing; the canonical form logs in, once.
    assert_token(await client.post("/login", json=genuine))
    assert_refused(await client.post("/login", json={**genuine, "signature": twin}), 400, 40003)


async def test_high_s_twin_of_a_web3mq_did_signature_cannot_log_in(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = web3mq_body(wallet)
    for flip_v in (True, False):
        twin = high_s_twin(body["did_signature"], flip_v=flip_v)
        assert_refused(
            await client.post(WEB3MQ_ROUTE, json={**body, "did_signature": twin}), 400, 40003
        )
    assert nothing_stored(auth)
    assert_token(await client.post(WEB3MQ_ROUTE, json=body))


async def test_recovery_byte_outside_0_1_27_28_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret)
    r, s, _ = split(genuine["signature"])
    refused = 0
    for v in range(256):
        if v in (0, 1, 27, 28):
            continue
        response = await client.post("/login", json={**genuine, "signature": join(r, s, v)})
        assert_refused(response, 400, 40003)
        refused += 1
    assert refused == 252
    # Not one of the 252 attempts burned the secret.
    assert_token(await client.post("/login", json=genuine))


async def test_web3mq_recovery_byte_outside_0_1_27_28_cannot_log_in(
    auth: WalletAuth, client: httpx.AsyncClient, wallet: LocalAccount
) -> None:
    body = web3mq_body(wallet)
    r, s, _ = split(body["did_signature"])
    for v in range(256):
        if v in (0, 1, 27, 28):
            continue
        response = await client.post(WEB3MQ_ROUTE, json={**body, "did_signature": join(r, s, v)})
        assert_refused(response, 400, 40003)
    assert nothing_stored(auth)
    assert_token(await client.post(WEB3MQ_ROUTE, json=body))


@pytest.mark.parametrize("v_encoding", ["27/28", "0/1"])
async def test_flipped_recovery_id_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, v_encoding: str
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret)
    r, s, v = split(genuine["signature"])
    base = 27 if v_encoding == "27/28" else 0
    flipped = join(r, s, base + (1 - (v - 27)))
    # The other recovery id recovers another public key: not the wallet.
    assert_refused(await client.post("/login", json={**genuine, "signature": flipped}), 401, 40101)
    assert_token(await client.post("/login", json=genuine))


# -- non-canonical encodings ----------------------------------------------------------------


def _compact(signature: str) -> str:
    """EIP-2098: r || (yParity << 255 | s), 64 bytes."""
    r, s, v = split(signature)
    y_parity = v - 27
    return "0x" + (r.to_bytes(32, "big") + ((y_parity << 255) | s).to_bytes(32, "big")).hex()


#: Each form with the documented code: 40003 for a wrong format, 40001 for a string longer than
#: the 132 characters a signature field may hold (docs/errors.md, "over-long string").
COMPACT_FORMS: dict[str, tuple[Callable[[str], str], int]] = {
    "EIP-2098 compact (64 bytes)": (_compact, 40003),
    "EIP-2098 compact without 0x": (lambda sig: _compact(sig)[2:], 40003),
    "r and s only, v dropped": (lambda sig: sig[:-2], 40003),
    "65 bytes plus a type byte (66 bytes)": (lambda sig: sig + "02", 40001),
    "65 bytes without 0x": (lambda sig: sig[2:], 40003),
    "uppercase 0X prefix": (lambda sig: "0X" + sig[2:], 40003),
    "65 bytes with a trailing space": (lambda sig: sig + " ", 40001),
    "65 bytes with a trailing newline": (lambda sig: sig + "\n", 40001),
    "65 bytes with a leading space": (lambda sig: " " + sig[:-1], 40003),
}


@pytest.mark.parametrize("form", list(COMPACT_FORMS))
async def test_non_canonical_signature_encoding_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, form: str
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret)
    encode, code = COMPACT_FORMS[form]
    altered = encode(genuine["signature"])
    assert altered != genuine["signature"]
    assert_refused(await client.post("/login", json={**genuine, "signature": altered}), 400, code)
    assert_token(await client.post("/login", json=genuine))


@pytest.mark.parametrize(
    ("r", "s"),
    [
        ("0", "s"),
        ("n", "s"),
        ("n+1", "s"),
        ("2^256-1", "s"),
        ("r", "0"),
        ("r", "n"),
        ("r", "n+1"),
        ("r", "2^256-1"),
        ("r", "n/2+1"),
        ("0", "0"),
    ],
)
async def test_out_of_range_r_or_s_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, r: str, s: str
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret)
    real_r, real_s, v = split(genuine["signature"])
    values = {"0": 0, "n": N, "n+1": N + 1, "2^256-1": 2**256 - 1, "n/2+1": HALF_N + 1}
    forged = join(values.get(r, real_r), values.get(s, real_s), v)
    assert_refused(await client.post("/login", json={**genuine, "signature": forged}), 400, 40003)
    assert_token(await client.post("/login", json=genuine))


# -- contract wallets (EIP-1271) ------------------------------------------------------------


def _eip1271_vectors() -> dict[str, dict[str, str]]:
    vectors: dict[str, dict[str, str]] = json.loads(EIP1271_VECTORS.read_text("utf-8"))
    return vectors


@pytest.mark.parametrize(
    ("wallet_name", "status", "code"),
    [
        # Argent: 65 bytes, low s: it recovers to some EOA, not the contract.
        ("argent", 401, 40101),
        # Loopring: 66 bytes (a trailing type byte): longer than a signature field may be.
        ("loopring", 400, 40001),
    ],
)
async def test_contract_wallet_eip1271_signature_cannot_log_in(
    monkeypatch: pytest.MonkeyPatch, wallet_name: str, status: int, code: int
) -> None:
    vector = _eip1271_vectors()[wallet_name]
    message, signature = vector["message"], vector["signature"]
    lines = message.split("\n")
    contract = lines[1]
    nonce = next(line[len("Nonce: ") :] for line in lines if line.startswith("Nonce: "))
    issued = next(line[len("Issued At: ") :] for line in lines if line.startswith("Issued At: "))
    # The service the vectors were made for, at the moment they were signed, handing out the
    # vector's nonce: so the message passes every other check and only the signature decides.
    clock = FakeClock(parse_rfc3339(issued) + 5)
    auth = make_auth(clock, domain="localhost:4361", uri="http://localhost:4361")

    class FixedSecrets:
        @staticmethod
        def token_hex(nbytes: int) -> str:
            return nonce

    monkeypatch.setattr(secret_routes, "secrets", FixedSecrets)
    async with client_for(auth) as client:
        assert await get_secret(client, contract) == nonce
        fields = {
            "login_random_secret": nonce,
            "signature": signature,
            "wallet_address": contract,
            "signature_content": message,
        }
        for _ in range(2):
            assert_refused(await client.post("/login", json=fields), status, code)
    assert nothing_stored(auth)


# -- a misbehaving recovery routine ---------------------------------------------------------


class _CustomCurveError(Exception):
    """Something the curve library might raise that nobody anticipated."""


class _FakeKey:
    def __init__(self, formatted: object) -> None:
        self.formatted = formatted

    def format(self, compressed: bool = True) -> object:
        if isinstance(self.formatted, BaseException):
            raise self.formatted
        return self.formatted


ZERO_POINT = b"\x04" + bytes(64)
#: The address a recovery returning the all-zero "point" would yield: keccak(64 zero bytes).
ZERO_POINT_ADDRESS = signatures_module.public_key_to_address(ZERO_POINT)

RECOVERY_FAULTS: dict[str, object] = {
    "raises ValueError": ValueError("no point"),
    "raises TypeError": TypeError("bad type"),
    "raises RuntimeError": RuntimeError("library failure"),
    "raises ArithmeticError": ArithmeticError("overflow"),
    "raises a custom Exception": _CustomCurveError("surprise"),
    "format gives 64 bytes": _FakeKey(b"\x04" + b"\x01" * 63),
    "format gives 66 bytes": _FakeKey(b"\x04" + b"\x01" * 65),
    "format gives a compressed key": _FakeKey(b"\x02" + b"\x01" * 32),
    "format gives empty bytes": _FakeKey(b""),
    "format gives a bytearray": _FakeKey(bytearray(b"\x04" + b"\x01" * 64)),
    "format gives a memoryview": _FakeKey(memoryview(b"\x04" + b"\x01" * 64)),
    "format gives a str": _FakeKey("\x04" + "\x01" * 64),
    "format gives None": _FakeKey(None),
    "format gives an int": _FakeKey(4),
    "format raises": _FakeKey(ValueError("cannot serialize")),
    "format gives the zero point": _FakeKey(ZERO_POINT),
    "format gives 65 zero bytes": _FakeKey(bytes(65)),
}


def _patch_recovery(monkeypatch: pytest.MonkeyPatch, fault: object, calls: list[int]) -> None:
    def fake(*args: Any, **kwargs: Any) -> object:
        calls.append(1)
        if isinstance(fault, BaseException):
            raise fault
        return fault

    # The very attribute asgi_wallet_auth.signatures calls through its own coincurve reference.
    assert signatures_module.coincurve is coincurve
    monkeypatch.setattr(signatures_module.coincurve.PublicKey, "from_signature_and_message", fake)


@pytest.mark.parametrize("fault", list(RECOVERY_FAULTS))
@pytest.mark.parametrize("route", ["raw secret", "EIP-4361", "Web3MQ"])
async def test_misbehaving_recovery_never_lets_a_login_through(
    auth: WalletAuth,
    client: httpx.AsyncClient,
    wallet: LocalAccount,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    route: str,
) -> None:
    if route == "Web3MQ":
        body = web3mq_body(wallet)
        path = WEB3MQ_ROUTE
    else:
        secret = await get_secret(client, wallet.address)
        body = raw_fields(wallet, secret) if route == "raw secret" else siwe_fields(wallet, secret)
        path = "/login"
    calls: list[int] = []
    _patch_recovery(monkeypatch, RECOVERY_FAULTS[fault], calls)
    assert_refused(await client.post(path, json=body), 401, 40101)
    assert calls == [1]  # the fault was really reached, once
    assert nothing_stored(auth)
    # With the real recovery back, the same request succeeds: the refusal burned nothing.
    monkeypatch.undo()
    assert_token(await client.post(path, json=body))


@pytest.mark.parametrize("formatted", [ZERO_POINT, bytes(65)], ids=["0x04+zeros", "65 zeros"])
async def test_recovery_returning_a_point_off_the_curve_cannot_log_in_as_its_address(
    auth: WalletAuth,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    formatted: bytes,
) -> None:
    """A recovery that yields no real public key (here all zeros, as a zero-filling failure
    would) must refuse even for the address that key would hash to: nobody holds a private key
    for a point that is not on secp256k1, so no login may succeed as it."""
    secret = await get_secret(client, ZERO_POINT_ADDRESS)
    calls: list[int] = []
    _patch_recovery(monkeypatch, _FakeKey(formatted), calls)
    response = await client.post(
        "/login",
        json={
            "login_random_secret": secret,
            "signature": join(1, 1, 27),
            "wallet_address": ZERO_POINT_ADDRESS,
        },
    )
    assert calls == [1]
    assert_refused(response, 401, 40101)
    assert nothing_stored(auth)


# -- other signing schemes ------------------------------------------------------------------


def _keccak(data: bytes) -> bytes:
    return signatures_module.keccak256(data)


FOREIGN_SCHEMES: dict[str, Callable[[LocalAccount, bytes], str]] = {
    # Account.unsafe_sign_hash: a bare ECDSA signature of keccak(message), no EIP-191 prefix.
    "raw keccak, no prefix": lambda a, m: hex_signature(
        Account.unsafe_sign_hash(_keccak(m), a.key).signature
    ),
    "EIP-191 version 0x00 (intended validator)": lambda a, m: hex_signature(
        a.sign_message(encode_intended_validator(a.address, primitive=m)).signature
    ),
    "personal_sign of the keccak of the message": lambda a, m: hex_signature(
        a.sign_message(encode_defunct(primitive=_keccak(m))).signature
    ),
    "personal_sign prefix without the length": lambda a, m: hex_signature(
        Account.unsafe_sign_hash(_keccak(b"\x19Ethereum Signed Message:\n" + m), a.key).signature
    ),
    "personal_sign prefix with a wrong length": lambda a, m: hex_signature(
        Account.unsafe_sign_hash(
            _keccak(b"\x19Ethereum Signed Message:\n" + str(len(m) + 1).encode() + m), a.key
        ).signature
    ),
    "personal_sign of the hex text, not the bytes": lambda a, m: sign_text(a, "0x" + m.hex()),
}


@pytest.mark.parametrize("scheme", list(FOREIGN_SCHEMES))
@pytest.mark.parametrize("form", ["raw secret", "EIP-4361"])
async def test_signature_under_another_prefix_or_scheme_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, scheme: str, form: str
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret) if form == "raw secret" else siwe_fields(wallet, secret)
    signed = genuine.get("signature_content", secret).encode("utf-8")
    foreign = FOREIGN_SCHEMES[scheme](wallet, signed)
    assert foreign != genuine["signature"]
    assert_refused(await client.post("/login", json={**genuine, "signature": foreign}), 401, 40101)
    assert_token(await client.post("/login", json=genuine))


def _typed_data(secret: str, address: str, chain_id: int) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Login": [
                {"name": "wallet", "type": "address"},
                {"name": "nonce", "type": "string"},
            ],
        },
        "primaryType": "Login",
        "domain": {"name": "Example", "version": "1", "chainId": chain_id},
        "message": {"wallet": address, "nonce": secret},
    }


@pytest.mark.parametrize("chain_id", [1, 5, 137, 11155111])
@pytest.mark.parametrize("form", ["raw secret", "EIP-4361"])
async def test_eip712_typed_data_signature_from_any_chain_cannot_log_in(
    client: httpx.AsyncClient, wallet: LocalAccount, chain_id: int, form: str
) -> None:
    secret = await get_secret(client, wallet.address)
    genuine = raw_fields(wallet, secret) if form == "raw secret" else siwe_fields(wallet, secret)
    typed = encode_typed_data(full_message=_typed_data(secret, wallet.address, chain_id))
    signature = hex_signature(wallet.sign_message(typed).signature)
    assert_refused(
        await client.post("/login", json={**genuine, "signature": signature}), 401, 40101
    )
    assert_token(await client.post("/login", json=genuine))
