"""Web3MQ's ed25519-signed requests as a credential: where the fields travel, and their check.

A Web3MQ client signs each request with a device key it registered at ``/api/user_login/``:
``userid``, ``timestamp`` (ms) and ``web3mq_user_signature`` travel in ``web3mq-*`` headers, the
query string, or a JSON body. The middleware asks ``SignedRequests.user`` for the request's user.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope

from .core import guarded, logger
from .envelope import content_length, header, parse_json_object
from .errors import (
    InvalidRequest,
    ReplayRejected,
    SessionKeyExpired,
    SignedRequestRejected,
    WalletAuthError,
)
from .settings import Web3MQSettings
from .stores.base import NonceStore
from .users import UserRecord, UserStore, WalletUser
from .web3mq import (
    check_timestamp,
    check_userid,
    decode_request_signature,
    verify_request_signature,
)
from .web3mq_signed import sdk_signed_content

# ASCII digits only: str.isdigit() also accepts superscripts, which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,16}")


_SIGNATURE_PARAM = "web3mq_user_signature"
#: The SDK names the field either way, call by call (docs/web3mq.md).
_SIGNATURE_PARAMS = (_SIGNATURE_PARAM, "web3mq_signature")
#: Where a verified signed request's user is kept in the scope, for the routes behind the
#: middleware that need it (a signature is single use: it cannot be checked twice).
SIGNED_USER_KEY = "asgi_wallet_auth.signed_user"
_SIGNATURE_HEADERS = {
    b"web3mq-userid": "userid",
    b"web3mq-timestamp": "timestamp",
    b"web3mq-user-signature": _SIGNATURE_PARAM,
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _signed_params_from_headers(scope: Scope) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    for key, value in scope["headers"]:
        name = _SIGNATURE_HEADERS.get(key.lower())
        if name is not None:
            if name in found:
                raise SignedRequestRejected()
            found[name] = value.decode("latin-1")
    if not found:
        return None
    if len(found) != len(_SIGNATURE_HEADERS):
        raise SignedRequestRejected()
    return found


def _signed_params_from_query(scope: Scope) -> dict[str, Any] | None:
    raw: bytes = scope.get("query_string", b"")
    if b"web3mq_" not in raw or b"signature" not in raw:
        return None
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in params:
            raise SignedRequestRejected()  # which of two values was signed is ambiguous
        params[key] = value
    return params if _has_signature(params) else None


def _has_signature(params: Mapping[str, Any]) -> bool:
    return any(name in params for name in _SIGNATURE_PARAMS)


async def _signed_params_from_body(
    scope: Scope, receive: Receive, limit: int
) -> tuple[dict[str, Any] | None, Receive]:
    """Buffer a JSON body (up to ``limit``) to read its fields; the app still gets every byte."""
    if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
        return None, receive
    content_type = header(scope, b"content-type") or b""
    if content_type.split(b";")[0].strip().lower() != b"application/json":
        return None, receive
    try:
        declared = content_length(scope)
    except InvalidRequest:
        return None, receive  # unreadable: not read here; the app's own reader refuses it
    if declared is not None and declared > limit:
        return None, receive  # too large to inspect: not read at all here
    messages: list[Message] = []
    size = 0
    complete = False
    while not complete and size <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        complete = not message.get("more_body", False)
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    if not complete or size > limit:
        return None, replay  # too large to inspect: the app sees it untouched, unauthenticated
    try:
        body = parse_json_object(b"".join(m.get("body", b"") for m in messages))
    except WalletAuthError:
        return None, replay
    return (body if _has_signature(body) else None), replay



def _signed_userid(params: Mapping[str, Any]) -> str:
    # Some SDK calls name the user ``creator_id``; both present must agree.
    userid, creator = params.get("userid"), params.get("creator_id")
    if userid is None or userid == creator:
        userid = creator
    elif creator is not None:
        raise SignedRequestRejected()
    if not isinstance(userid, str):
        raise SignedRequestRejected()
    try:
        return check_userid(userid)
    except WalletAuthError:
        raise SignedRequestRejected() from None


def _signature_text(params: Mapping[str, Any]) -> object:
    present = [params[name] for name in _SIGNATURE_PARAMS if name in params]
    if len(present) != 1:
        raise SignedRequestRejected()  # none, or two: which one was meant is ambiguous
    return present[0]


def _request_header(scope: Scope, name: bytes) -> str | None:
    try:
        raw = header(scope, name)
    except InvalidRequest:  # sent twice
        raise SignedRequestRejected() from None
    return raw.decode("latin-1").strip() or None if raw is not None else None


def _wallets(record: UserRecord) -> dict[str, str]:
    """Every wallet of the user, lower-case address -> did_type, its own first."""
    wallets = {w.address.lower(): w.did_type for w in record.bound_wallets}
    wallets[record.address.lower()] = record.did_type
    return wallets


def signing_keys(scope: Scope, record: UserRecord, now: float) -> list[tuple[str, str]]:
    """The keys a signed request of ``record``'s user may be checked against, with their wallet.

    The ``web3mq-request-pubkey`` header picks one among the device keys and unexpired session
    keys (a session key past its expiry: 401 ``SessionKeyExpired``); without it each of them is
    tried. A ``didkey: <did_type>:<did_value>`` header must name the wallet of the key.
    """
    picked = _request_header(scope, b"web3mq-request-pubkey")
    keys = [(key, record.address) for key in record.device_keys]
    for session in record.session_keys:
        if picked is not None and session.pubkey == picked and session.expires_at <= now:
            raise SessionKeyExpired()
        if session.expires_at > now:
            keys.append((session.pubkey, session.address))
    if picked is not None:
        keys = [entry for entry in keys if entry[0] == picked]
    didkey = _request_header(scope, b"didkey")
    if didkey is not None:
        did_type, _, did_value = didkey.partition(":")
        wallet = did_value.lower()
        if _wallets(record).get(wallet) != did_type:
            raise SignedRequestRejected()
        keys = [entry for entry in keys if entry[1].lower() == wallet]
    return keys


class SignedRequests:
    """Checks Web3MQ request signatures against the users' registered device keys.

    Each signature is single use (a marker in ``replay_store`` until its timestamp window
    closes); ``max_body_size`` bounds the JSON body buffered to read the fields.
    """

    def __init__(
        self,
        settings: Web3MQSettings,
        *,
        user_store: UserStore,
        replay_store: NonceStore,
        max_body_size: int,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.user_store = user_store
        self.replay_store = replay_store
        self.max_body_size = max_body_size
        self.clock = clock

    async def user(self, scope: Scope, receive: Receive) -> tuple[WalletUser | None, Receive]:
        """The signed request's user (None: the request carries no signature), and the receive
        the app must read the body from (a buffered body is replayed to it byte for byte)."""
        params = _signed_params_from_headers(scope) or _signed_params_from_query(scope)
        if params is None:
            params, receive = await _signed_params_from_body(scope, receive, self.max_body_size)
        if params is None:
            return None, receive
        return await self.authenticate(scope, params), receive

    async def authenticate(
        self, scope: Scope, params: Mapping[str, Any]
    ) -> WalletUser:
        """The ``WalletUser`` of a valid Web3MQ signed request; a ``WalletAuthError`` otherwise.

        ``params`` holds ``userid``, ``timestamp`` (ms) and ``web3mq_user_signature`` (standard
        base64 of an ed25519 signature by one of the user's registered device keys) plus the
        request's other parameters, which a ``signed_content`` hook may fold into the content.
        """
        userid = _signed_userid(params)
        raw_ts = params.get("timestamp")
        if isinstance(raw_ts, str) and _DIGITS.fullmatch(raw_ts):
            raw_ts = int(raw_ts)
        back, ahead = self.settings.timestamp_window
        now = self.clock()
        try:
            timestamp = check_timestamp(raw_ts, now=now, back=back, ahead=ahead)
        except InvalidRequest:
            raise SignedRequestRejected() from None
        if self.settings.signed_content is None:
            content = sdk_signed_content(scope, params)
        else:
            try:
                content = self.settings.signed_content(scope, params)
            except Exception:
                logger.exception("signed_content hook raised; refusing the request")
                raise SignedRequestRejected() from None
            if not isinstance(content, str):
                raise SignedRequestRejected()
        try:
            # A lone surrogate (from a JSON "\ud800" the hook folded in) has no UTF-8 form.
            signed = content.encode("utf-8")
        except UnicodeEncodeError:
            raise SignedRequestRejected() from None
        signature = decode_request_signature(_signature_text(params))
        if signature is None:
            raise SignedRequestRejected()
        record = await guarded(self.user_store.get(userid))
        if record is None:
            raise SignedRequestRejected()
        address = None
        for key, wallet in signing_keys(scope, record, now):
            if verify_request_signature((key,), signed, signature):
                address = wallet
                break
        if address is None:
            raise SignedRequestRejected()
        marker = "web3mq-request:" + hashlib.sha256(signature).hexdigest()
        if not await guarded(
            self.replay_store.put(marker, "1", timestamp / 1000 + back - now + 1)
        ):
            raise ReplayRejected()
        did_type = _wallets(record)[address.lower()]
        claims = {
            "sub": address,
            "userid": record.userid,
            "did_type": did_type,
            "did_value": address,
            "auth_method": "web3mq_signature",
            "timestamp": timestamp,
        }
        user = WalletUser(address=address, userid=record.userid, did_type=did_type, claims=claims)
        scope[SIGNED_USER_KEY] = user
        return user


__all__ = ["SIGNED_USER_KEY", "SignedRequests", "signing_keys"]
