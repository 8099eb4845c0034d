"""The Web3MQ v2 fields of a user record as JSON text: how the SQL stores keep them.

Session keys and bound wallets live in the user's own row (one row lock guards them with the
rest of the record); a separate index of bound addresses keeps each wallet unique store-wide.
"""

from __future__ import annotations

import json
from typing import Any

from ..users import BoundWallet, SessionKey, UserRecord


def session_keys_json(record: UserRecord) -> str:
    """The record's session keys as a JSON array."""
    return json.dumps(
        [[k.pubkey, k.expires_at, k.address] for k in record.session_keys], separators=(",", ":")
    )


def bound_wallets_json(record: UserRecord) -> str:
    """The record's bound wallets as a JSON array."""
    return json.dumps(
        [
            [w.did_type, w.address, w.provider_id, w.bound_at, w.main_pubkey]
            for w in record.bound_wallets
        ],
        separators=(",", ":"),
    )


def session_keys_from(text: Any) -> tuple[SessionKey, ...]:
    """The session keys of a stored JSON array."""
    return tuple(SessionKey(str(p), float(e), str(a)) for p, e, a in json.loads(text or "[]"))


def bound_wallets_from(text: Any) -> tuple[BoundWallet, ...]:
    """The bound wallets of a stored JSON array."""
    return tuple(
        BoundWallet(str(t), str(a), str(p), float(b), None if m is None else str(m))
        for t, a, p, b, m in json.loads(text or "[]")
    )


__all__ = ["bound_wallets_from", "bound_wallets_json", "session_keys_from", "session_keys_json"]
