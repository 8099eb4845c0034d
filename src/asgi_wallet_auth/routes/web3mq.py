"""Web3MQ's ``POST /api/user_login/``: a wallet signature that registers an ed25519 device key.

The path of one login, top to bottom in ``user_login``: body -> every field's grammar -> the
timestamp window -> NonceContent and the signed text -> the chain's signature proof -> identity
checks -> single use -> ``on_login`` -> one atomic merge into the stored user -> token.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from ..chains.base import ChainRegistry
from ..core import Route, guarded, logger
from ..envelope import read_json, string_field
from ..errors import IdentityConflict, InvalidRequest, ReplayRejected, WalletAuthError
from ..events import KEY_REGISTERED, LOGIN, USERID_BOUND, note_claimed_address
from ..sessions import SessionLayer
from ..settings import Web3MQSettings
from ..siwe import MAX_MESSAGE_LENGTH
from ..stores.base import NonceStore
from ..users import UserRecord, UserStore, merge_login
from ..web3mq import (
    check_avatar_url,
    check_nickname,
    check_signature_content,
    check_timestamp,
    check_userid,
    decode_avatar,
    encoded_avatar_limit,
    nonce_content,
    parse_ed25519_public_key,
)

# Any spelling of an Ethereum address, checksum or not, either case of the prefix.
_ADDRESS_LIKE = re.compile(r"0[xX][0-9a-fA-F]{40}")


def _names_another_wallet(userid: str, address: str, chains: ChainRegistry) -> bool:
    """Whether ``userid`` spells a wallet address other than ``address``.

    ``userid == address`` is every wallet's default userid, so an address-shaped userid belongs
    to that address: nobody may register another wallet's (in any spelling, on any chain).
    """
    if _ADDRESS_LIKE.fullmatch(userid):
        return userid.lower() != address.lower()
    for verifier in chains.values():
        try:
            named = verifier.normalize(userid)
        except WalletAuthError:
            continue
        if named != address:
            return True
    return False



class Web3MQLogin:
    """``/api/user_login/`` on one ``WalletAuth``."""

    def __init__(
        self,
        settings: Web3MQSettings,
        *,
        uri: str,
        max_body_size: int,
        chains: ChainRegistry,
        replay_store: NonceStore,
        user_store: UserStore,
        sessions: SessionLayer,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.uris: frozenset[str] = frozenset(settings.uris or (uri,))
        # The avatar travels base64-encoded inside the JSON: the body may be that much larger.
        self.body_cap = max_body_size + encoded_avatar_limit(settings.max_avatar_size)
        self.chains = chains
        self.replay_store = replay_store
        self.user_store = user_store
        self.sessions = sessions
        self.clock = clock

    def routes(self) -> list[Route]:
        """The one route, counted against the failed-attempt limit."""
        return [Route("/api/user_login/", ("POST",), self.user_login, limit="attempt")]

    async def user_login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Register (or refresh) a device key for the wallet; answer with an access token."""
        settings = self.settings
        body = await read_json(scope, receive, self.body_cap)
        # Grammar of every field first: each refusal here costs microseconds.
        userid = check_userid(body.get("userid"))
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.chains.for_did_type(did_type)
        did_value = string_field(body, "did_value", max_length=128)
        address = verifier.normalize(did_value)
        note_claimed_address(scope, address)
        if body.get("pubkey_type") != "ed25519":
            raise InvalidRequest("unsupported pubkey_type; supported: ed25519")
        pubkey_value = string_field(body, "pubkey_value", max_length=64)
        parse_ed25519_public_key(pubkey_value)
        content = string_field(body, "signature_content", max_length=MAX_MESSAGE_LENGTH)
        nickname = check_nickname(body.get("nickname"), max_length=settings.max_nickname_length)
        avatar_url = check_avatar_url(body.get("avatar_url"), max_length=2048)
        avatar = decode_avatar(body.get("avatar_base64"), max_bytes=settings.max_avatar_size)
        now = self.clock()
        back, ahead = settings.timestamp_window
        timestamp = check_timestamp(body.get("timestamp"), now=now, back=back, ahead=ahead)

        nonce = nonce_content(userid, "ed25519", pubkey_value, did_type, did_value, timestamp)
        check_signature_content(content, nonce=nonce, did_value=did_value, uris=self.uris)
        signature = verifier.parse_signature(body.get("did_signature"))
        await verifier.verify(content.encode("utf-8"), signature, address)

        # Identity checks before anything is written: a refusal changes nothing.
        if _names_another_wallet(userid, address, self.chains):
            raise IdentityConflict("a userid that is an address belongs to that wallet")
        existing = await guarded(self.user_store.get(userid))
        if existing is not None and existing.address != address:
            raise IdentityConflict()
        by_wallet = existing or await guarded(self.user_store.get_by_address(address))
        if by_wallet is not None and by_wallet.userid not in (userid, address):
            raise IdentityConflict("this wallet is registered under another userid")
        # Single use: the NonceContent is remembered until its timestamp window closes.
        ttl = timestamp / 1000 + back - now + 1
        if not await guarded(self.replay_store.put(f"web3mq:{nonce}", "1", ttl)):
            raise ReplayRejected()

        login = UserRecord(
            userid,
            address,
            did_type,
            now,
            now,
            device_keys=(pubkey_value,),
            nickname=nickname,
            avatar_url=avatar_url,
            avatar=None if avatar is None else avatar.data,
            avatar_type=None if avatar is None else avatar.media_type,
        )
        # The hook sees the user as the login will leave it; a refusal stores nothing.
        after = merge_login(by_wallet, login, settings.max_devices)
        issued = await self.sessions.start(
            scope, after, now, account_id=verifier.account_id(address)
        )
        # One atomic merge: a userid taken a moment ago by another wallet is refused, and two
        # devices of one wallet logging in at once both keep their key.
        merged = await guarded(self.user_store.merge(login, max_devices=settings.max_devices))
        if merged is None:
            raise IdentityConflict()
        logger.info("web3mq login ok: %s", address)
        sessions = self.sessions
        await sessions.record(LOGIN, scope, issued.claims)
        if by_wallet is None or pubkey_value not in by_wallet.device_keys:
            await sessions.record(KEY_REGISTERED, scope, issued.claims)
        if by_wallet is None or by_wallet.userid != userid:
            await sessions.record(USERID_BOUND, scope, issued.claims)  # first sight of the pair
        await self.sessions.send_token(
            send, issued, pubkey_type="ed25519", pubkey_value=pubkey_value
        )


__all__ = ["Web3MQLogin"]
