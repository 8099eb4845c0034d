"""Web3MQ's signed user routes: the profile and bound wallets, as the JavaScript SDK calls them.

- ``GET``/``POST /api/my_profile/``: read and change nickname and avatar;
- ``POST /api/get_user_binddids/``: the wallets bound to the user;
- ``POST /api/user_binddid/``: bind a second wallet (with that wallet's own signature in
  ``did_content``) or unbind one (``did_action: "unbind"``).

Every one is a Web3MQ signed request (``web3mq_signature`` by a session or device key of the
user); behind ``WalletAuthMiddleware`` the middleware has checked it already, else the route does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from ..chains.base import ChainRegistry
from ..core import Route, guarded, logger
from ..envelope import read_json, send_ok, string_field
from ..errors import (
    InvalidRequest,
    ReplayRejected,
    SignedRequestRejected,
    UserNotFound,
    WalletAlreadyBound,
)
from ..settings import Web3MQSettings
from ..signed_requests import SIGNED_USER_KEY, SignedRequests
from ..siwe import MAX_MESSAGE_LENGTH
from ..stores.base import NonceStore
from ..users import BoundWallet, KeyedUserStore, UserRecord, WalletUser
from ..web3mq import (
    check_avatar_url,
    check_nickname,
    check_signature_content,
    check_timestamp,
    decode_avatar,
    encoded_avatar_limit,
)
from ..web3mq_v2 import Web3MQV2Settings, bind_nonce, bind_wallet, given, unbind_wallet

_MAX_QUERY = 4096


def _profile(record: UserRecord) -> dict[str, Any]:
    return {
        "userid": record.userid,
        "wallet_address": record.address,
        "wallet_type": record.did_type,
        "nickname": record.nickname or "",
        "avatar_url": record.avatar_url or "",
    }


class Web3MQProfileRoutes:
    """The signed profile and bound-wallet routes on one ``WalletAuth``."""

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
        signed: SignedRequests,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.web3mq = web3mq
        self.uris: frozenset[str] = frozenset(web3mq.uris or (uri,))
        self.body_cap = max_body_size + encoded_avatar_limit(web3mq.max_avatar_size)
        self.chains = chains
        self.replay_store = replay_store
        self.user_store = user_store
        self.signed = signed
        self.clock = clock

    def routes(self) -> list[Route]:
        """The three routes, counted against the failed-attempt limit."""
        return [
            Route("/api/my_profile/", ("GET", "POST"), self.my_profile, limit="attempt"),
            Route("/api/get_user_binddids/", ("POST",), self.bound_wallets, limit="attempt"),
            Route("/api/user_binddid/", ("POST",), self.bind, limit="attempt"),
        ]

    async def _signed_user(self, scope: Scope, params: Mapping[str, Any]) -> WalletUser:
        """The request's user: as the middleware verified it, else verified here."""
        user = scope.get(SIGNED_USER_KEY)
        if isinstance(user, WalletUser):
            return user
        if not any(k in params for k in ("web3mq_signature", "web3mq_user_signature")):
            raise SignedRequestRejected("this route needs a Web3MQ request signature")
        return await self.signed.authenticate(scope, params)

    async def _record(self, user: WalletUser) -> UserRecord:
        record = await guarded(self.user_store.get(user.userid))
        if record is None:
            raise UserNotFound()
        return record

    async def my_profile(self, scope: Scope, receive: Receive, send: Send) -> None:
        """GET: the profile. POST: change nickname and avatar (empty strings: unchanged)."""
        if scope["method"] == "GET":
            raw: bytes = scope.get("query_string", b"")
            if len(raw) > _MAX_QUERY:
                raise InvalidRequest("query string too long")
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
            params = dict(pairs)
            if len(params) != len(pairs):
                raise SignedRequestRejected()  # which of two values was signed is ambiguous
            user = await self._signed_user(scope, params)
            await send_ok(send, _profile(await self._record(user)))
            return
        body = await read_json(scope, receive, self.body_cap)
        web3mq = self.web3mq
        nickname = check_nickname(given(body, "nickname"), max_length=web3mq.max_nickname_length)
        avatar_url = check_avatar_url(given(body, "avatar_url"), max_length=2048)
        avatar = decode_avatar(given(body, "avatar_base64"), max_bytes=web3mq.max_avatar_size)
        user = await self._signed_user(scope, body)

        def change(record: UserRecord) -> UserRecord:
            # Signed by the user: these overwrite, unlike a login's unsigned profile fields.
            return replace(
                record,
                nickname=record.nickname if nickname is None else nickname,
                avatar_url=record.avatar_url if avatar_url is None else avatar_url,
                avatar=record.avatar if avatar is None else avatar.data,
                avatar_type=record.avatar_type if avatar is None else avatar.media_type,
            )

        updated = await guarded(self.user_store.update(user.userid, change))
        if updated is None:
            raise UserNotFound()
        await send_ok(send, _profile(updated))

    async def bound_wallets(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The wallets bound to the signed request's user."""
        body = await read_json(scope, receive, self.body_cap)
        record = await self._record(await self._signed_user(scope, body))
        await send_ok(
            send,
            [
                {
                    "did_type": w.did_type,
                    "did_value": w.address,
                    "provider_id": w.provider_id,
                    "metadata": {"bound_at": int(w.bound_at), "has_main_key": bool(w.main_pubkey)},
                }
                for w in record.bound_wallets
            ],
        )

    async def bind(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind a wallet (both wallets consent) or unbind one (the user's signature alone)."""
        body = await read_json(scope, receive, self.body_cap)
        action = given(body, "did_action") or "bind"
        if action not in ("bind", "unbind"):
            raise InvalidRequest("did_action must be bind or unbind")
        did_type = string_field(body, "did_type", max_length=32)
        verifier = self.chains.for_did_type(did_type)
        did_value = string_field(body, "did_value", max_length=128)
        address = verifier.normalize(did_value)
        provider = given(body, "provider_id") or "web3mq"
        if not isinstance(provider, str) or len(provider) > 128:
            raise InvalidRequest("provider_id must be a string of at most 128 characters")
        if action == "unbind":
            user = await self._signed_user(scope, body)
            if await guarded(self.user_store.update(user.userid, unbind_wallet(address))) is None:
                raise UserNotFound("this wallet is not bound to this user")
            logger.info("web3mq unbind ok")
            await send_ok(send, {"did_type": did_type, "did_value": address, "action": action})
            return
        content, signature_text, consent_ts = self._consent(body.get("did_content"))
        # The wallet to bind consents first, with its own signature over this binding's nonce
        # (a refused consent leaves the user's request signature unspent).
        claimed = body.get("userid", body.get("creator_id"))
        if not isinstance(claimed, str):
            raise SignedRequestRejected()
        now = self.clock()
        back, ahead = self.web3mq.timestamp_window
        timestamp = check_timestamp(consent_ts, now=now, back=back, ahead=ahead)
        nonce = bind_nonce(claimed, did_type, did_value, timestamp)
        check_signature_content(content, nonce=nonce, did_value=did_value, uris=self.uris)
        signature = verifier.parse_signature(signature_text)
        await verifier.verify(content.encode("utf-8"), signature, address)
        user = await self._signed_user(scope, body)
        if user.userid != claimed:
            raise SignedRequestRejected()
        owner = await guarded(self.user_store.get_by_wallet(address))
        if owner is not None:
            raise WalletAlreadyBound()
        ttl = timestamp / 1000 + back - now + 1
        if not await guarded(self.replay_store.put(f"web3mq-bind:{nonce}", "1", ttl)):
            raise ReplayRejected()
        wallet = BoundWallet(did_type, address, provider, now)
        change = bind_wallet(wallet, cap=self.settings.max_bound_wallets)
        if await guarded(self.user_store.update(user.userid, change)) is None:
            raise WalletAlreadyBound()  # taken meanwhile, or the user is at its cap
        logger.info("web3mq bind ok: %s", address)
        await send_ok(send, {"did_type": did_type, "did_value": address, "action": action})

    @staticmethod
    def _consent(value: object) -> tuple[str, object, object]:
        """``did_content``: JSON text of the bound wallet's ``signature_content``,
        ``did_signature`` and the ``timestamp`` its nonce covers."""
        if not isinstance(value, str) or not value or len(value) > 2 * MAX_MESSAGE_LENGTH:
            raise InvalidRequest("did_content must carry the wallet's signed consent")
        try:
            consent = json.loads(value)
        except ValueError:
            raise InvalidRequest("did_content must be JSON text") from None
        if not isinstance(consent, dict):
            raise InvalidRequest("did_content must be a JSON object")
        content = string_field(consent, "signature_content", max_length=MAX_MESSAGE_LENGTH)
        return content, consent.get("did_signature"), consent.get("timestamp")


__all__ = ["Web3MQProfileRoutes"]
