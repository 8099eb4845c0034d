"""Who is logged in: ``request.user``, the stored user records and the ``UserStore`` protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
class SessionKey:
    """A temporary ed25519 key a main key proved at ``/api/user_login_v2/``, until ``expires_at``.

    ``address`` is the wallet whose main key signed it (the user's own or a bound one).
    """

    pubkey: str
    expires_at: float
    address: str


@dataclass(frozen=True, slots=True)
class BoundWallet:
    """Another wallet bound to a userid with both wallets' consent; it may hold a main key."""

    did_type: str
    address: str
    provider_id: str
    bound_at: float
    main_pubkey: str | None = None


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
    #: Web3MQ v2 (docs/web3mq.md): the wallet's main ed25519 key, the session keys it proved,
    #: and the other wallets bound to this userid.
    main_pubkey: str | None = None
    session_keys: tuple[SessionKey, ...] = ()
    bound_wallets: tuple[BoundWallet, ...] = ()

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
            self.main_pubkey,
            self.session_keys,
            self.bound_wallets,
        )


def merge_login(current: UserRecord | None, login: UserRecord, max_devices: int) -> UserRecord:
    """The user after ``login`` (one device login) is folded into ``current``.

    Identity fields come from the login; first and last login are widened; the login's device
    keys move to the end (newest), keeping at most ``max_devices``; profile fields are not
    covered by the wallet signature, so the login's values fill empty fields and never overwrite
    existing ones.
    """
    # Built positionally: dataclasses.replace costs several times a plain constructor call,
    # and every login (the secret flow too) folds through here.
    if current is None:
        keys = login.device_keys[-max_devices:]
        if keys == login.device_keys:
            return login
        return UserRecord(
            login.userid,
            login.address,
            login.did_type,
            login.first_login,
            login.last_login,
            keys,
            login.nickname,
            login.avatar_url,
            login.avatar,
            login.avatar_type,
            login.main_pubkey,
            login.session_keys,
            login.bound_wallets,
        )
    if login.device_keys:
        fresh = [k for k in current.device_keys if k not in login.device_keys]
        fresh += login.device_keys
        device_keys = tuple(fresh[-max_devices:])
    else:
        device_keys = current.device_keys[-max_devices:]
    has_avatar = current.avatar is not None
    return UserRecord(
        login.userid,
        login.address,
        login.did_type,
        min(current.first_login, login.first_login),
        max(current.last_login, login.last_login),
        device_keys,
        current.nickname if current.nickname is not None else login.nickname,
        current.avatar_url if current.avatar_url is not None else login.avatar_url,
        current.avatar if has_avatar else login.avatar,
        current.avatar_type if has_avatar else login.avatar_type,
        # A login carries no keys of Web3MQ v2 (those change only through their own routes).
        current.main_pubkey,
        current.session_keys,
        current.bound_wallets,
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


#: What ``KeyedUserStore.update`` applies: the new record, or None to change nothing.
UserChange = Callable[["UserRecord"], "UserRecord | None"]


class WalletBound(ValueError):
    """``save`` of a wallet that is bound to another userid (unbind it first)."""


def check_change(before: UserRecord, after: UserRecord) -> None:
    """Refuse (``ValueError``) a change that moves identity fields or repeats a bound wallet."""
    if (after.userid, after.address, after.did_type) != (
        before.userid,
        before.address,
        before.did_type,
    ):
        raise ValueError("update may not change userid, address or did_type")
    addresses = [w.address for w in after.bound_wallets]
    if len(set(addresses)) != len(addresses) or after.address in addresses:
        raise ValueError("a wallet is bound at most once, and never to its own user")


@runtime_checkable
class KeyedUserStore(UserStore, Protocol):
    """A ``UserStore`` that also keeps Web3MQ v2 state: main keys, session keys, bound wallets.

    Bound wallets are unique across the store: a wallet is one user's own wallet or bound to
    one user, never both, never twice. Every built-in store implements this.
    """

    async def get_by_wallet(self, address: str) -> UserRecord | None:
        """The record whose own or bound wallet is ``address``, or None."""
        ...

    async def update(self, userid: str, change: UserChange) -> UserRecord | None:
        """Atomically replace the record of ``userid`` with ``change(record)``; return it.

        None, and nothing changed, when there is no such record, when ``change`` returns None,
        or when the new record binds a wallet that is already another user's (own or bound).
        ``change`` is pure and may run more than once; it may not change the identity fields.
        """
        ...


class MemoryUserStore:
    """A user store in a dict: for tests and single-process demos (lost on restart)."""

    def __init__(self) -> None:
        self._by_userid: dict[str, UserRecord] = {}
        self._userid_by_address: dict[str, str] = {}
        self._userid_by_bound: dict[str, str] = {}

    async def get_by_wallet(self, address: str) -> UserRecord | None:
        """The record whose own or bound wallet is ``address``, or None."""
        found = await self.get_by_address(address)
        if found is None and address in self._userid_by_bound:
            found = self._by_userid.get(self._userid_by_bound[address])
        return found

    async def update(self, userid: str, change: UserChange) -> UserRecord | None:
        """Apply ``change`` to the record of ``userid`` (see ``KeyedUserStore.update``)."""
        current = self._by_userid.get(userid)
        if current is None:
            return None
        after = change(current)
        if after is None:
            return None
        check_change(current, after)
        for wallet in after.bound_wallets:
            owner = self._userid_by_address.get(wallet.address)
            bound = self._userid_by_bound.get(wallet.address)
            if owner is not None or bound not in (None, userid):
                return None
        self._unbind_all(current)
        self._by_userid[userid] = after
        self._bind_all(after)
        return after

    def _unbind_all(self, record: UserRecord) -> None:
        for wallet in record.bound_wallets:
            self._userid_by_bound.pop(wallet.address, None)

    def _bind_all(self, record: UserRecord) -> None:
        for wallet in record.bound_wallets:
            self._userid_by_bound[wallet.address] = record.userid

    async def get(self, userid: str) -> UserRecord | None:
        """The record with this userid, or None."""
        return self._by_userid.get(userid)

    async def get_by_address(self, address: str) -> UserRecord | None:
        """The record of this EIP-55 address, or None."""
        userid = self._userid_by_address.get(address)
        record = None if userid is None else self._by_userid.get(userid)
        return record if record is not None and record.address == address else None

    async def save(self, record: UserRecord) -> None:
        """Make ``record`` the one record of its userid and of its address (an upsert).

        ``WalletBound`` when its address, or a wallet it binds, is another user's bound wallet
        (or another user's own wallet).
        """
        wallets = [w.address for w in record.bound_wallets]
        if len(set(wallets)) != len(wallets) or record.address in wallets:
            raise WalletBound("a wallet is bound at most once, and never to its own user")
        if self._userid_by_bound.get(record.address, record.userid) != record.userid:
            raise WalletBound("this address is bound to another userid")
        for address in wallets:
            owner = self._userid_by_address.get(address)
            if self._userid_by_bound.get(address, record.userid) != record.userid or (
                owner is not None and owner != record.userid
            ):
                raise WalletBound("a bound wallet belongs to another userid")
        previous = self._by_userid.get(record.userid)
        if previous is not None:
            self._unbind_all(previous)
        self._put(record)
        self._bind_all(record)

    async def merge(self, login: UserRecord, *, max_devices: int) -> UserRecord | None:
        """Fold one device login into the stored user (see ``UserStore.merge``)."""
        if login.address in self._userid_by_bound:
            return None  # a bound wallet logs in through its user's keys, never on its own
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
        self._bind_all(merged)  # a renamed record's bound wallets follow it
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
            self._unbind_all(self._by_userid.pop(other))
        self._by_userid[record.userid] = record
        self._userid_by_address[record.address] = record.userid

    def __len__(self) -> int:
        return len(self._by_userid)


__all__ = [
    "KEEP_ALL_DEVICES",
    "BoundWallet",
    "KeyedUserStore",
    "MemoryUserStore",
    "SessionKey",
    "UserChange",
    "UserRecord",
    "UserStore",
    "WalletBound",
    "WalletUser",
    "check_change",
    "merge_login",
    "merge_target",
]
