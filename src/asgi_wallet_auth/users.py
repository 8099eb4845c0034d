"""Who is logged in: ``request.user``, the stored user records and the ``UserStore`` protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """

    userid: str
    address: str
    did_type: str
    first_login: float
    last_login: float


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
        """Insert or replace the record with ``record.userid``."""
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
        """Insert or replace the record with ``record.userid``."""
        previous = self._by_userid.get(record.userid)
        if previous is not None and previous.address != record.address:
            self._userid_by_address.pop(previous.address, None)
        self._by_userid[record.userid] = record
        self._userid_by_address[record.address] = record.userid

    def __len__(self) -> int:
        return len(self._by_userid)


__all__ = ["MemoryUserStore", "UserRecord", "UserStore", "WalletUser"]
