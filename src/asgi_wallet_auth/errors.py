"""The exception tree: every refusal knows its envelope ``code`` and its HTTP status.

Codes are stable and documented (``docs/errors.md``); they read as the HTTP status followed by two
digits, so ``40102`` is the second kind of 401. Messages are fixed strings chosen here: they never
echo a secret, a token, a signature or any other client input.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar


class WalletAuthError(Exception):
    """Base of every refusal; rendered as ``{"code", "msg", "data": null}`` with ``status``."""

    code: int = 50001
    status: int = 500
    msg: str = "internal error"
    #: Headers every instance carries (a caller's ``headers`` are added over them).
    default_headers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, msg: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.msg = msg if msg is not None else type(self).msg
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}
        super().__init__(self.msg)


# 400: the request itself is malformed.
class InvalidRequest(WalletAuthError):
    """Malformed JSON, a missing field, a wrong type or an out-of-range value."""

    code, status, msg = 40001, 400, "invalid request"


class InvalidAddress(InvalidRequest):
    """A wallet address that is not ``0x`` + 40 hex with a valid EIP-55 checksum when mixed-case."""

    code, msg = 40002, "invalid wallet address"


class InvalidSignatureFormat(InvalidRequest):
    """A signature that is not ``0x`` + 130 hex with v in {0, 1, 27, 28} and a low s."""

    code, msg = 40003, "invalid signature format"


class InvalidMessage(InvalidRequest):
    """A ``signature_content`` that is not a well-formed EIP-4361 message."""

    code, msg = 40004, "invalid sign-in message"


class UnsupportedLoginMethod(InvalidRequest):
    """A login form that this deployment has switched off (for example raw-secret signing)."""

    code, msg = 40005, "login method not enabled"


class InvalidCapabilities(InvalidRequest):
    """A ReCap (ERC-5573) in a sign-in message that is malformed or not what its statement says."""

    code, msg = 40006, "invalid ReCap capabilities"


# 401: authentication failed.
class AuthenticationFailed(WalletAuthError):
    """The request is well formed but does not prove control of the wallet."""

    code, status, msg = 40101, 401, "authentication failed"


class SignatureMismatch(AuthenticationFailed):
    """The signature is well formed but does not recover to the wallet address."""

    code, msg = 40101, "signature does not match the wallet address"


class SecretRejected(AuthenticationFailed):
    """The login secret is unknown, expired, already used or bound to another address."""

    code, msg = 40102, "login secret is invalid, expired or already used"


class MessageRejected(AuthenticationFailed):
    """The EIP-4361 message does not match this service (domain, URI, nonce, address, chain)."""

    code, msg = 40103, "sign-in message does not match this service"


class MessageExpired(AuthenticationFailed):
    """The EIP-4361 message is outside its validity window (Expiration Time, Not Before)."""

    code, msg = 40104, "sign-in message is expired or not yet valid"


class ReplayRejected(AuthenticationFailed):
    """A signed login or signed request that was already used."""

    code, msg = 40105, "this signature was already used"


class TimestampRejected(AuthenticationFailed):
    """A signed timestamp outside the accepted window around the server's clock."""

    code, msg = 40106, "timestamp is outside the accepted window"


class SignedRequestRejected(AuthenticationFailed):
    """A Web3MQ signed request whose user, key or signature does not check out."""

    code, msg = 40107, "request signature is invalid"


class TokenInvalid(AuthenticationFailed):
    """A bearer token that is missing where required, malformed, forged, expired or revoked."""

    code, msg = 40111, "access token is invalid or expired"
    default_headers: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"www-authenticate": 'Bearer error="invalid_token"'}
    )


class TokenMissing(AuthenticationFailed):
    """A route that needs a bearer token was called without one."""

    code, msg = 40112, "access token required"
    default_headers: ClassVar[Mapping[str, str]] = MappingProxyType({"www-authenticate": "Bearer"})


class SessionExpired(TokenInvalid):
    """Refresh refused: the session has reached its absolute lifetime; log in again."""

    code, msg = 40113, "session has reached its absolute lifetime; log in again"


class MainKeyMismatch(AuthenticationFailed):
    """A Web3MQ v2 login whose main key is not the one registered for the wallet."""

    code, msg = 40108, "main key does not match the registered one"


class SessionKeyExpired(AuthenticationFailed):
    """A Web3MQ signed request by a session key past its expiry: log in again."""

    code, msg = 40109, "session key has expired; log in again"


class ReauthenticationRequired(AuthenticationFailed):
    """A step-up route: the session's last wallet signature is older than the route allows."""

    code, msg = 40114, "a recent wallet signature is required; re-authenticate"
    default_headers: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"www-authenticate": 'Bearer error="insufficient_user_authentication"'}
    )


# 403 / 409: identity and policy.
class LoginRefused(WalletAuthError):
    """An application hook refused this login."""

    code, status, msg = 40301, 403, "login refused"


class InsufficientScope(WalletAuthError):
    """The wallet is authenticated but its credentials lack a required scope."""

    code, status, msg = 40302, 403, "insufficient scope"


class CsrfRejected(WalletAuthError):
    """A cookie-authenticated unsafe request without a valid CSRF token (or a cross-origin
    websocket authenticated by the cookie)."""

    code, status, msg = 40303, 403, "CSRF token missing or invalid"


class ReauthenticationMismatch(WalletAuthError):
    """A re-authentication signed by another wallet than the session's."""

    code, status, msg = 40305, 403, "re-authentication must come from the session's wallet"


class IdentityConflict(WalletAuthError):
    """The identity is already bound to a different wallet."""

    code, status, msg = 40901, 409, "identity is bound to another wallet"


class MainKeyExists(IdentityConflict):
    """A Web3MQ v2 register for a wallet that has a main key: reset it instead."""

    code, msg = 40902, "a main key is registered already; reset it with a wallet signature"


class WalletAlreadyBound(IdentityConflict):
    """A wallet to bind that is another user's own wallet or bound to another user."""

    code, msg = 40903, "this wallet belongs to another user"


class CorsRejected(WalletAuthError):
    """A CORS preflight from an origin, or asking for a method or header, that is not allowed."""

    code, status, msg = 40304, 403, "origin, method or header not allowed by CORS"


# Transport-level refusals.
class NotFound(WalletAuthError):
    """No such route in the login application."""

    code, status, msg = 40401, 404, "not found"


class UserNotFound(NotFound):
    """No user (or no bound wallet) for this wallet or userid."""

    code, msg = 40402, "no user for this wallet"


class MethodNotAllowed(WalletAuthError):
    """The route exists but not for this HTTP method."""

    code, status, msg = 40501, 405, "method not allowed"


class BodyTooLarge(WalletAuthError):
    """The request body is larger than the configured cap."""

    code, status, msg = 41301, 413, "request body too large"


class UnsupportedMediaType(WalletAuthError):
    """The request body is not declared as JSON."""

    code, status, msg = 41501, 415, "request body must be application/json"


class RateLimited(WalletAuthError):
    """Too many requests from this client."""

    code, status, msg = 42901, 429, "too many requests"


class StoreUnavailable(WalletAuthError):
    """A backing store (nonces, users, revocations) could not be reached; nothing was changed."""

    code, status, msg = 50301, 503, "service temporarily unavailable"


__all__ = [
    "AuthenticationFailed",
    "BodyTooLarge",
    "CorsRejected",
    "CsrfRejected",
    "IdentityConflict",
    "InsufficientScope",
    "InvalidAddress",
    "InvalidCapabilities",
    "InvalidMessage",
    "InvalidRequest",
    "InvalidSignatureFormat",
    "LoginRefused",
    "MainKeyExists",
    "MainKeyMismatch",
    "MessageExpired",
    "MessageRejected",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "ReauthenticationMismatch",
    "ReauthenticationRequired",
    "ReplayRejected",
    "SecretRejected",
    "SessionExpired",
    "SessionKeyExpired",
    "SignatureMismatch",
    "SignedRequestRejected",
    "StoreUnavailable",
    "TimestampRejected",
    "TokenInvalid",
    "TokenMissing",
    "UnsupportedLoginMethod",
    "UnsupportedMediaType",
    "UserNotFound",
    "WalletAlreadyBound",
    "WalletAuthError",
]
