"""Web3MQ's v2 login as its JavaScript SDK speaks it: settings, signed texts, key bookkeeping.

The SDK registers a wallet's **main** ed25519 key (derived in the client from a wallet signature
and a password) with a wallet signature, then logs in by proving a temporary **session** key with
the main key. The routes are in ``routes/web3mq_v2.py`` and ``routes/web3mq_profile.py``; this
module holds what they share and what a user record's change looks like.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .errors import InvalidRequest
from .settings import Web3MQV2Settings
from .users import BoundWallet, SessionKey, UserChange, UserRecord


def sha3_hex(text: str) -> str:
    """FIPS SHA3-224 of UTF-8 ``text`` in hex, as the SDK's ``sha3_224`` (not Keccak)."""
    return hashlib.sha3_224(text.encode("utf-8")).hexdigest()


def login_content(userid: str, session_pubkey: str, expires_ms: int, timestamp: int) -> str:
    """What the main key signs at login: ``sha3_224(userid + pubkey + expiry + timestamp)``."""
    return sha3_hex(f"{userid}{session_pubkey}{expires_ms}{timestamp}")


def bind_nonce(userid: str, did_type: str, did_value: str, timestamp: int) -> str:
    """The ``Nonce:`` a wallet to bind signs: ``sha3_224(userid + did_type + did_value + ts)``."""
    return sha3_hex(f"{userid}{did_type}{did_value}{timestamp}")


def given(body: Mapping[str, Any], name: str) -> Any:
    """The field, with the SDK's ``""`` for "not given" read as absent."""
    value = body.get(name)
    return None if value == "" else value


def main_key_of(record: UserRecord, address: str) -> tuple[bool, str | None]:
    """(whether ``address`` is one of the user's wallets, that wallet's main key)."""
    if record.address == address:
        return True, record.main_pubkey
    for wallet in record.bound_wallets:
        if wallet.address == address:
            return True, wallet.main_pubkey
    return False, None


def did_type_of(record: UserRecord, address: str) -> str:
    """The did_type of one of the user's wallets (its own or a bound one)."""
    for wallet in record.bound_wallets:
        if wallet.address == address:
            return wallet.did_type
    return record.did_type


def set_main_key(address: str, pubkey: str, *, reset: bool) -> UserChange:
    """The change that registers (or, with ``reset``, replaces) a wallet's main key.

    A register refuses a wallet that has one (None); a reset refuses one that has none, and
    drops every session key the old main key proved.
    """

    def change(record: UserRecord) -> UserRecord | None:
        mine, current = main_key_of(record, address)
        if not mine or (current is not None) != reset:
            return None
        sessions = tuple(k for k in record.session_keys if k.address != address)
        if record.address == address:
            return replace(record, main_pubkey=pubkey, session_keys=sessions)
        wallets = tuple(
            replace(w, main_pubkey=pubkey) if w.address == address else w
            for w in record.bound_wallets
        )
        return replace(record, bound_wallets=wallets, session_keys=sessions)

    return change


def add_session_key(
    address: str, main_pubkey: str, key: SessionKey, *, now: float, cap: int
) -> UserChange:
    """The change that keeps a new session key, if ``main_pubkey`` is still the wallet's.

    Expired keys are dropped; past ``cap`` the oldest give way.
    """

    def change(record: UserRecord) -> UserRecord | None:
        if main_key_of(record, address) != (True, main_pubkey):
            return None
        kept = [k for k in record.session_keys if k.expires_at > now and k.pubkey != key.pubkey]
        kept.append(key)
        return replace(
            record, session_keys=tuple(kept[-cap:]), last_login=max(record.last_login, now)
        )

    return change


def bind_wallet(wallet: BoundWallet, *, cap: int) -> UserChange:
    """The change that binds ``wallet``; None past ``cap`` or where it is the user's own."""

    def change(record: UserRecord) -> UserRecord | None:
        if record.address == wallet.address or len(record.bound_wallets) >= cap:
            return None
        if any(w.address == wallet.address for w in record.bound_wallets):
            return None
        return replace(record, bound_wallets=(*record.bound_wallets, wallet))

    return change


def unbind_wallet(address: str) -> UserChange:
    """The change that unbinds ``address`` and drops the session keys its main key proved."""

    def change(record: UserRecord) -> UserRecord | None:
        wallets = tuple(w for w in record.bound_wallets if w.address != address)
        if len(wallets) == len(record.bound_wallets):
            return None
        sessions = tuple(k for k in record.session_keys if k.address != address)
        return replace(record, bound_wallets=wallets, session_keys=sessions)

    return change


def expiry_ms(value: object, *, now: float, max_lifetime: float) -> int:
    """A ``pubkey_expired_timestamp``: integer ms, after now, at most ``max_lifetime`` ahead."""
    if type(value) is not int or value <= now * 1000:
        raise InvalidRequest("pubkey_expired_timestamp must be a future time in milliseconds")
    if value > (now + max_lifetime) * 1000:
        raise InvalidRequest("pubkey_expired_timestamp is further ahead than this service allows")
    return value


__all__ = [
    "Web3MQV2Settings",
    "add_session_key",
    "bind_nonce",
    "bind_wallet",
    "did_type_of",
    "expiry_ms",
    "given",
    "login_content",
    "main_key_of",
    "set_main_key",
    "sha3_hex",
    "unbind_wallet",
]
