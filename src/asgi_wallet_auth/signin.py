"""The rules every chain's sign-in message (EIP-4361, SIWS) is held to, written once.

A message is bound to this service (domain, URI), to this login (nonce, address) and to the
clock; the comparisons are exact, and the time rules are EIP-4361's. Each message format parses
its own grammar and calls these with the values it read.
"""

from __future__ import annotations

import hmac

from .errors import MessageExpired, MessageRejected
from .grammar import check_seconds


def check_arguments(*, domain: object, uri: object, nonce: object, address: object) -> None:
    """``TypeError`` unless every binding is a string (a programming error, not a client's)."""
    for name, value in (("domain", domain), ("uri", uri), ("nonce", nonce), ("address", address)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string")


def check_binding(
    *,
    domain: str | None,
    uri: str | None,
    nonce: str,
    address: str,
    expected_domain: str,
    expected_uri: str,
    expected_nonce: str,
    expected_address: str,
    scheme: str | None = None,
) -> None:
    """``MessageRejected`` unless the message names this service, this wallet and this nonce.

    Exact comparisons: no case folding, trailing dots, default ports or look-alike characters;
    the nonce in constant time. ``scheme``: EIP-4361's optional scheme, which must be the URI's.
    """
    if domain != expected_domain:
        raise MessageRejected("sign-in message domain does not match this service")
    if scheme is not None and scheme != expected_uri.partition(":")[0]:
        raise MessageRejected("sign-in message scheme does not match this service")
    if uri != expected_uri:
        raise MessageRejected("sign-in message URI does not match this service")
    if not hmac.compare_digest(
        nonce.encode("ascii"), expected_nonce.encode("utf-8", "surrogatepass")
    ):
        raise MessageRejected("sign-in message nonce does not match")
    if address != expected_address:
        raise MessageRejected("sign-in message address does not match the wallet")


def check_window(
    *, expires: float | None, not_before: float | None, now: float, skew: float
) -> None:
    """``MessageExpired`` once ``now - skew >= expires`` and while ``now + skew < not_before``."""
    check_seconds("now", now, allow_negative=True)
    check_seconds("skew", skew, allow_negative=False)
    if expires is not None and now - skew >= expires:
        raise MessageExpired("sign-in message has expired (Expiration Time)")
    if not_before is not None and now + skew < not_before:
        raise MessageExpired("sign-in message is not yet valid (Not Before)")


def check_issuance(
    *,
    issued_at: float | None,
    expires: float | None,
    not_before: float | None,
    now: float,
    skew: float,
) -> None:
    """``MessageExpired`` for a message issued more than ``skew`` ahead, or an empty window.

    A wallet signs a message when it is issued: one dated in the future is forged or made on a
    broken clock, and one whose Expiration Time is not after its Issued At (or whose Not Before
    is not before its Expiration Time) was never valid, whatever the skew.
    """
    check_seconds("now", now, allow_negative=True)
    check_seconds("skew", skew, allow_negative=False)
    if issued_at is not None and issued_at - now > skew:
        raise MessageExpired("sign-in message Issued At is in the future")
    if expires is not None:
        if issued_at is not None and expires <= issued_at:
            raise MessageExpired("sign-in message Expiration Time is not after its Issued At")
        if not_before is not None and not_before >= expires:
            raise MessageExpired("sign-in message Not Before is not before its Expiration Time")


__all__ = ["check_arguments", "check_binding", "check_issuance", "check_window"]
