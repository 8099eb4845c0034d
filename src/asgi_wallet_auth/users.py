"""Who is logged in: ``request.user``, the stored user records and the ``UserStore`` protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from starlette.authentication import BaseUser


@dataclass(frozen=True, slots=True)
class WalletUser(BaseUser):
    """An authenticated wallet, as ``request.user`` sees it.

    ``address`` is the EIP-55 address (the token's ``sub``); ``claims`` holds every verified
    claim of the credential that authenticated the request.
    """

    address: str
    userid: str
    did_type: str = "eth"
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        """Always true: a ``WalletUser`` exists only for a verified credential."""
        return True

    @property
    def display_name(self) -> str:
        """The userid, which is the EIP-55 address unless the wallet registered another one."""
        return self.userid

    @property
    def identity(self) -> str:
        """The stable identity of the wallet: its EIP-55 address."""
        return self.address


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What the user store keeps about a wallet.

    ``first_login`` and ``last_login`` are Unix times in seconds taken from the service clock.
    ``device_keys`` are the ed25519 public keys (64 lowercase hex) registered through Web3MQ's
    user login, oldest first. The profile fields come from that route too; ``avatar`` holds the
    decoded image and ``avatar_type`` its sniffed media type.
    """

    userid: str
    address: str
    did_type: str
    first_login: float
    last_login: float
    device_keys: tuple[str, ...] = ()
    nickname: str | None = None
    avatar_url: str | None = None
    avatar: bytes | None = field(default=None, repr=False)
    avatar_type: str | None = None


@runtime_checkable
class UserStore(Protocol):
    """Persistence for user records; implement it to keep users in your own database.

    Every method may raise to signal that the store is unreachable: the login then fails with a
    503 envelope and no token is issued.
    """

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        ...

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        ...

    async def save(self, record: UserRecord) -> None:
        """Make ``record`` the one record of its userid and of its address (an upsert).

        A stored record of the same address under another userid is removed: a wallet has one
        userid. The earliest ``first_login`` of the userid is kept.
        """
        ...

    async def create(self, record: UserRecord) -> bool:
        """``save`` only if no record has ``record.userid`` yet; else False and no change.

        This is how a userid is bound to its first wallet; it must be atomic, so that of two
        wallets racing for one new userid exactly one wins.
        """
        ...


class MemoryUserStore:
    """A user store in a dict: for tests and single-process demos (lost on restart)."""

    def __init__(self) -> None:
        self._by_userid: dict[str, UserRecord] = {}
        self._userid_by_address: dict[str, str] = {}

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        return self._by_userid.get(userid)

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        userid = self._userid_by_address.get(address)
        record = None if userid is None else self._by_userid.get(userid)
        return record if record is not None and record.address == address else None

    async def save(self, record: UserRecord) -> None:
        """Make ``record`` the one record of its userid and of its address (an upsert)."""
        self._put(record)

    async def create(self, record: UserRecord) -> bool:
        """Save ``record`` only if its userid is free; False and no change otherwise."""
        if record.userid in self._by_userid:
            return False
        self._put(record)
        return True

    def _put(self, record: UserRecord) -> None:
        # No await in here: each call is atomic on the event loop.
        previous = self._by_userid.get(record.userid)
        if previous is not None:
            if previous.address != record.address:
                self._userid_by_address.pop(previous.address, None)
            record = replace(
                record,
                first_login=min(previous.first_login, record.first_login),
                last_login=max(previous.last_login, record.last_login),
            )
        other = self._userid_by_address.get(record.address)
        if other is not None and other != record.userid:
            del self._by_userid[other]
        self._by_userid[record.userid] = record
        self._userid_by_address[record.address] = record.userid

    def __len__(self) -> int:
        return len(self._by_userid)


__all__ = ["MemoryUserStore", "UserRecord", "UserStore", "WalletUser"]
