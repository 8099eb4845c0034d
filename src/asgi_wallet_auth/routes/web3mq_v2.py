"""Web3MQ's v2 login routes, as the published JavaScript SDK calls them (docs/web3mq.md).

- ``POST /api/get_user_info/``: a wallet's userid and main key (404 for a wallet nobody has);
- ``POST /api/user_register_v2/`` and ``POST /api/user_reset_password_v2/``: a wallet signature
  registers (or replaces) the wallet's main ed25519 key;
- ``POST /api/user_login_v2/``: the main key proves a temporary session key; answered with an
  access token as every login is.

Each handler reads top to bottom: grammar -> timestamp -> signed text -> proof -> identity ->
single use -> one atomic change of the stored user -> answer. A refusal stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from ..chains.base import ChainRegistry
from ..core import Route, guarded, logger
from ..envelope import read_json, send_ok, string_field
from ..errors import (
    IdentityConflict,
    InvalidRequest,
    MainKeyExists,
    MainKeyMismatch,
    MessageRejected,
    ReplayRejected,
    SignatureMismatch,
    UserNotFound,
)
from ..sessions import SessionLayer
from ..settings import Web3MQSettings
from ..siwe import MAX_MESSAGE_LENGTH
from ..stores.base import NonceStore
from ..users import KeyedUserStore, SessionKey, UserRecord
from ..web3mq import (
    MAX_TIMESTAMP_MS,
    check_avatar_url,
    check_nickname,
    check_signature_content,
    check_timestamp,
    check_userid,
    decode_avatar,
    decode_request_signature,
    encoded_avatar_limit,
    nonce_content,
    parse_ed25519_public_key,
    verify_request_signature,
)
from ..web3mq_v2 import (
    Web3MQV2Settings,
    add_session_key,
    did_type_of,
    expiry_ms,
    given,
    login_content,
    main_key_of,
    set_main_key,
)
from .web3mq import _names_another_wallet


class Web3MQV2Routes:
    """The SDK's register, reset, login and user-info routes on one ``WalletAuth``."""

    def __init__(
        self,
        settings: Web3MQV2Settings,
        web3mq: Web3MQSettings,
        *,
        uri: str,
        max_body_size: int,
        chains: ChainRegistry,
        replay_store: NonceStore,
        user_store: KeyedUserStore,
        sessions: SessionLayer,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.web3mq = web3mq
        self.uris: frozenset[str] = frozenset(web3mq.uris or (uri,))
        self.body_cap = max_body_size + encoded_avatar_limit(web3mq.max_avatar_size)
        self.max_body_size = max_body_size
        self.chains = chains
        self.replay_store = replay_store
        self.user_store = user_store
        self.sessions = sessions
        self.clock = clock

    def routes(self) -> list[Route]:
        """The four routes; the lookup counts as a secret request, the rest as attempts."""
        return [
            Route("/api/get_user_info/", ("POST",), self.get_user_info, limit="secret"),
            Route("/api/user_register_v2/", ("POST",), self.register, limit="attempt"),
            Route("/api/user_reset_password_v2/", ("POST",), self.reset, limit="attempt"),
            Route("/api/user_login_v2/", ("POST",), self.login, limit="attempt"),
        ]

    async def get_user_info(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The userid and main key of a wallet (its own user's or the one it is bound to).

        An unknown wallet is a 404, which the SDK reads as "new user": the answer says no more
        than whether the wallet has a user, its userid and its (public) main key.
        """
        body = await read_json(scope, receive, self.max_body_size)
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.chains.for_did_type(did_type)
        address = verifier.normalize(string_field(body, "did_value", max_length=128))
        timestamp = body.get("timestamp")
        if type(timestamp) is not int or not 0 < timestamp <= MAX_TIMESTAMP_MS:
            raise InvalidRequest("timestamp must be an integer of milliseconds")
        record = await guarded(self.user_store.get_by_wallet(address))
        if record is None:
            raise UserNotFound()
        _, main = main_key_of(record, address)
        await send_ok(
            send,
            {
                "userid": record.userid,
                "did_type": did_type,
                "did_value": address,
                "main_pubkey": main or "",
                "pubkey_type": "ed25519",
            },
        )

    async def register(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Register the wallet's main key (409 where it has one: reset it instead)."""
        await self._main_key(scope, receive, send, reset=False)

    async def reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Replace the wallet's main key, with a fresh wallet signature; its sessions end."""
        await self._main_key(scope, receive, send, reset=True)

    async def _main_key(self, scope: Scope, receive: Receive, send: Send, *, reset: bool) -> None:
        web3mq = self.web3mq
        body = await read_json(scope, receive, self.body_cap)
        userid = check_userid(body.get("userid"))
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.chains.for_did_type(did_type)
        did_value = string_field(body, "did_value", max_length=128)
        address = verifier.normalize(did_value)
        if body.get("pubkey_type") != "ed25519":
            raise InvalidRequest("unsupported pubkey_type; supported: ed25519")
        main_pubkey = string_field(body, "pubkey_value", max_length=64)
        parse_ed25519_public_key(main_pubkey)
        content = string_field(body, "signature_content", max_length=MAX_MESSAGE_LENGTH)
        # A reset carries no profile; a register's empty strings mean "not given".
        nickname = check_nickname(
            None if reset else given(body, "nickname"), max_length=web3mq.max_nickname_length
        )
        avatar_url = check_avatar_url(None if reset else given(body, "avatar_url"), max_length=2048)
        avatar = decode_avatar(
            None if reset else given(body, "avatar_base64"), max_bytes=web3mq.max_avatar_size
        )
        now = self.clock()
        back, ahead = web3mq.timestamp_window
        timestamp = check_timestamp(body.get("timestamp"), now=now, back=back, ahead=ahead)

        nonce = nonce_content(userid, "ed25519", main_pubkey, did_type, did_value, timestamp)
        check_signature_content(content, nonce=nonce, did_value=did_value, uris=self.uris)
        signature = verifier.parse_signature(body.get("did_signature"))
        await verifier.verify(content.encode("utf-8"), signature, address)

        # Identity before anything is written: the userid is this wallet's (its own, the
        # default one a legacy login gave it, or the one it is bound to) or nobody's.
        if _names_another_wallet(userid, address, self.chains):
            raise IdentityConflict("a userid that is an address belongs to that wallet")
        record = await guarded(self.user_store.get(userid))
        owner = await guarded(self.user_store.get_by_wallet(address))
        if owner is not None and owner.userid not in (userid, address):
            raise IdentityConflict("this wallet is registered under another userid")
        if record is not None and not main_key_of(record, address)[0]:
            raise IdentityConflict()
        current = None if record is None else main_key_of(record, address)[1]
        if reset and current is None:
            raise UserNotFound("this wallet has no main key to reset; register it")
        if not reset and current is not None:
            raise MainKeyExists()
        ttl = timestamp / 1000 + back - now + 1
        if not await guarded(self.replay_store.put(f"web3mq-v2:{nonce}", "1", ttl)):
            raise ReplayRejected()

        if record is None or record.address == address:
            # The wallet's own user: created (or a legacy default record renamed) as v1 does.
            login = UserRecord(
                userid,
                address,
                did_type,
                now,
                now,
                nickname=nickname,
                avatar_url=avatar_url,
                avatar=None if avatar is None else avatar.data,
                avatar_type=None if avatar is None else avatar.media_type,
            )
            if await guarded(self.user_store.merge(login, max_devices=web3mq.max_devices)) is None:
                raise IdentityConflict()
        change = set_main_key(address, main_pubkey, reset=reset)
        if await guarded(self.user_store.update(userid, change)) is None:
            raise IdentityConflict() if reset else MainKeyExists()  # lost a race
        logger.info("web3mq %s ok: %s", "reset" if reset else "register", address)
        await send_ok(send, {"userid": userid, "did_type": did_type, "did_value": address})

    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Keep a session key proved by the wallet's main key; answer with an access token."""
        web3mq = self.web3mq
        body = await read_json(scope, receive, self.max_body_size)
        userid = check_userid(body.get("userid"))
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.chains.for_did_type(did_type)
        address = verifier.normalize(string_field(body, "did_value", max_length=128))
        if body.get("pubkey_type") != "ed25519":
            raise InvalidRequest("unsupported pubkey_type; supported: ed25519")
        main_pubkey = string_field(body, "main_pubkey", max_length=64)
        parse_ed25519_public_key(main_pubkey)
        session_pubkey = string_field(body, "pubkey_value", max_length=64)
        parse_ed25519_public_key(session_pubkey)
        content = string_field(body, "signature_content", max_length=64)
        signature = decode_request_signature(body.get("login_signature"))
        if signature is None:
            raise InvalidRequest("login_signature must be the base64 of a 64-byte signature")
        now = self.clock()
        back, ahead = web3mq.timestamp_window
        timestamp = check_timestamp(body.get("timestamp"), now=now, back=back, ahead=ahead)
        expires = expiry_ms(
            body.get("pubkey_expired_timestamp"),
            now=now,
            max_lifetime=self.settings.max_session_lifetime,
        )
        if content != login_content(userid, session_pubkey, expires, timestamp):
            raise MessageRejected("signature_content is not this login's")

        record = await guarded(self.user_store.get(userid))
        if record is None or main_key_of(record, address) != (True, main_pubkey):
            raise MainKeyMismatch()
        if not verify_request_signature((main_pubkey,), content.encode("ascii"), signature):
            raise SignatureMismatch("login_signature is not the main key's")
        ttl = timestamp / 1000 + back - now + 1
        if not await guarded(self.replay_store.put(f"web3mq-v2-login:{content}", "1", ttl)):
            raise ReplayRejected()

        # The token names the wallet that logged in (a bound wallet is itself, as that userid).
        wallet_type = did_type_of(record, address)
        seen = UserRecord(record.userid, address, wallet_type, record.first_login, now)
        issued = await self.sessions.start(
            scope, seen, now, account_id=verifier.account_id(address)
        )
        key = SessionKey(session_pubkey, expires / 1000, address)
        change = add_session_key(
            address, main_pubkey, key, now=now, cap=self.settings.max_session_keys
        )
        if await guarded(self.user_store.update(userid, change)) is None:
            raise MainKeyMismatch()  # the main key was reset meanwhile
        logger.info("web3mq v2 login ok: %s", address)
        await self.sessions.send_token(
            send,
            issued,
            main_pubkey=main_pubkey,
            pubkey_type="ed25519",
            pubkey_value=session_pubkey,
            pubkey_expired_timestamp=expires,
        )


__all__ = ["Web3MQV2Routes"]
