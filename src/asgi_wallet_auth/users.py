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
        """The wallet's verified ENS primary name where one was looked up at login, else the
        userid (the EIP-55 address unless the wallet registered another one)."""
        name = self.claims.get("ens_name")
        return name if isinstance(name, str) and name else self.userid

    @property
    def identity(self) -> str:
        """The stable identity of the wallet: its address (EIP-55, or base58 on Solana)."""
        return self.address

    @property
    def capabilities(self) -> Any:
        """The ReCap (``asgi_wallet_auth.recap.ReCap``) the wallet signed at login, or None."""
        from .recap import recap_from_claims  # users.py stays below every other module

        return recap_from_claims(self.claims)

    @property
    def account_id(self) -> str | None:
        """The CAIP-10 account id (``eip155:1:0x...``, ``solana:...:<base58>``), when known."""
        value = self.claims.get("account_id")
        return value if isinstance(value, str) else None


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

    def with_logins(self, first_login: float, last_login: float) -> UserRecord:
        """This record with other login times (``dataclasses.replace`` costs ~15 us a call)."""
        return UserRecord(
            self.userid,
            self.address,
            self.did_type,
            first_login,
            last_login,
            self.device_keys,
            self.nickname,
            self.avatar_url,
            self.avatar,
            self.avatar_type,
        )


def merge_login(current: UserRecord | None, login: UserRecord, max_devices: int) -> UserRecord:
    """The user after ``login`` (one device login) is folded into ``current``.

    Identity fields come from the login; first and last login are widened; the login's device
    keys move to the end (newest), keeping at most ``max_devices``; profile fields are not
    covered by the wallet signature, so the login's values fill empty fields and never overwrite
    existing ones.
    """
    if current is None:
        return replace(login, device_keys=login.device_keys[-max_devices:])
    keys = [k for k in current.device_keys if k not in login.device_keys]
    keys += login.device_keys
    has_avatar = current.avatar is not None
    return replace(
        current,
        userid=login.userid,
        address=login.address,
        did_type=login.did_type,
        first_login=min(current.first_login, login.first_login),
        last_login=max(current.last_login, login.last_login),
        device_keys=tuple(keys[-max_devices:]),
        nickname=current.nickname if current.nickname is not None else login.nickname,
        avatar_url=current.avatar_url if current.avatar_url is not None else login.avatar_url,
        avatar=current.avatar if has_avatar else login.avatar,
        avatar_type=current.avatar_type if has_avatar else login.avatar_type,
    )


#: ``max_devices`` for a login that adds no device key: every stored key is kept.
KEEP_ALL_DEVICES = 1 << 20


def merge_target(
    by_address: UserRecord | None, login: UserRecord
) -> tuple[UserRecord | None, UserRecord | None]:
    """Where a login whose userid is not stored folds in: (current record, login to fold).

    ``by_address`` is the wallet's stored record, if any. Under its default userid (the address)
    it is renamed to the login's userid. A login naming no userid of its own (its userid is the
    address: the secret flow) folds into the wallet's record and keeps that record's userid. A
    login naming another userid than the wallet's is refused: (None, None), as a wallet has one
    userid and its record is never dropped for another.
    """
    if by_address is None or by_address.userid == by_address.address:
        return by_address, login
    if login.userid == login.address:
        return by_address, replace(login, userid=by_address.userid)
    return None, None


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

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        """Atomically fold one device login into the stored user; return the result.

        The current record is the one with ``login.userid``, else the wallet's record as
        ``merge_target`` says (a login whose userid is the address folds into the wallet's
        record under whatever userid it has). ``merge_login`` says how they combine.
        If ``login.userid`` belongs to another address, return None and change nothing: that is
        how a userid is bound to its first wallet, so of two wallets racing for one new userid
        exactly one wins, and two devices of one wallet logging in at once both keep their key.
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

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        """Fold one device login into the stored user (see ``UserStore.merge``)."""
        folded = login
        current = self._by_userid.get(login.userid)
        if current is None:
            by_address = self._by_userid.get(self._userid_by_address.get(login.address, ""))
            if by_address is not None and by_address.address != login.address:
                by_address = None
            current, target = merge_target(by_address, login)
            if target is None:
                return None
            folded = target
        elif current.address != login.address:
            return None
        merged = merge_login(current, folded, max_devices)
        if current is not None and current.userid != merged.userid:
            self._userid_by_address.pop(current.address, None)
            del self._by_userid[current.userid]
        self._put(merged)
        return merged

    def _put(self, record: UserRecord) -> None:
        # No await in here: each call is atomic on the event loop.
        previous = self._by_userid.get(record.userid)
        if previous is not None:
            if previous.address != record.address:
                self._userid_by_address.pop(previous.address, None)
            first = min(previous.first_login, record.first_login)
            last = max(previous.last_login, record.last_login)
            if first != record.first_login or last != record.last_login:
                record = record.with_logins(first, last)
        other = self._userid_by_address.get(record.address)
        if other is not None and other != record.userid:
            del self._by_userid[other]
        self._by_userid[record.userid] = record
        self._userid_by_address[record.address] = record.userid

    def __len__(self) -> int:
        return len(self._by_userid)


__all__ = [
    "KEEP_ALL_DEVICES",
    "MemoryUserStore",
    "UserRecord",
    "UserStore",
    "WalletUser",
    "merge_login",
    "merge_target",
]
