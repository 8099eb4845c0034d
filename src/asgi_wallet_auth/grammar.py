"""RFC 3339 date-times and RFC 3986 URIs and authorities, as sign-in messages use them.

Shared by every chain's sign-in message (EIP-4361, SIWS): strict readings, no I/O.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from datetime import date, datetime, timezone

# RFC 3986 character classes (inside [...]): unreserved and sub-delims.
UNRESERVED_SUB = r"A-Za-z0-9\-._~!$&'()*+,;="
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ]; the authority is checked apart.
_URI_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:"
    r"(?://([^/?#]*))?"
    rf"[{UNRESERVED_SUB}:@/%]*"
    rf"(?:\?[{UNRESERVED_SUB}:@/?%]*)?"
    rf"(?:#[{UNRESERVED_SUB}:@/?%]*)?"
)
# authority = [ userinfo "@" ] host [ ":" port ]; an IP-literal's inside is checked apart.
_AUTHORITY_RE = re.compile(
    rf"(?:[{UNRESERVED_SUB}:%]*@)?(\[[^\]]*\]|[{UNRESERVED_SUB}%]*)(?::[0-9]*)?"
)
_IPV_FUTURE_RE = re.compile(rf"[vV][0-9A-Fa-f]+\.[{UNRESERVED_SUB}:]+")
BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


# -- RFC 3339 -------------------------------------------------------------------------------
# The sign-in messages' shared field grammars (EIP-4361 ABNF; SIWS uses the same).
# statement = *( reserved / unreserved / " " ); the empty statement is refused (see above).
STATEMENT_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+")
NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}")
REQUEST_ID_RE = re.compile(rf"[{UNRESERVED_SUB}:@%]*")
# Anything but LF and printable ASCII: no field of the ABNF admits it.
FORBIDDEN_CHAR_RE = re.compile(r"[^\n\x20-\x7e]")


def epoch(text: object, label: str, error: Callable[[str], Exception]) -> float:
    """UTC epoch seconds of the RFC 3339 date-time ``text``; else ``error(detail)`` is raised,
    the detail naming ``label``."""
    match = _RFC3339_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise error(f"{label} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise error(f"{label} has an impossible time of day")
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise error(f"{label} is an impossible calendar date") from None
    stamp = days * 86_400 + hours * 3_600 + minutes * 60 + seconds
    if sign is not None:
        offset_hours, offset_minutes = int(off_h), int(off_m)
        if offset_hours > 23 or offset_minutes > 59:
            raise error(f"{label} has an impossible UTC offset")
        offset = offset_hours * 3_600 + offset_minutes * 60
        stamp = stamp - offset if sign == "+" else stamp + offset
    if fraction is not None:
        return stamp + float("0" + fraction)
    return float(stamp)


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 date-time (``Z`` or offset, optional fraction) to UTC epoch seconds.

    ``ValueError`` for anything else.
    """
    return epoch(text, "date-time", ValueError)


def format_rfc3339(timestamp: float) -> str:
    """Render UTC epoch seconds as RFC 3339 with milliseconds, as wallets write it (``...Z``)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TypeError("timestamp must be a number of seconds")
    if not math.isfinite(timestamp):
        raise ValueError("timestamp must be finite")
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- RFC 3986 -------------------------------------------------------------------------------


def is_authority(text: str, *, require_host: bool) -> bool:
    """Whether ``text`` is an RFC 3986 authority (with a host, where ``require_host``)."""
    match = _AUTHORITY_RE.fullmatch(text)
    if match is None:
        return False
    host = match.group(1)
    if require_host and not host:
        return False
    if host.startswith("["):
        inner = host[1:-1]
        if inner[:1] in ("v", "V"):
            return _IPV_FUTURE_RE.fullmatch(inner) is not None
        if "%" in inner:  # ipaddress accepts a zone id; RFC 3986 does not
            return False
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            return False
    return "%" not in text or BAD_PERCENT_RE.search(text) is None


def is_uri(text: str) -> bool:
    """Whether ``text`` is an RFC 3986 URI."""
    match = _URI_RE.fullmatch(text)
    if match is None:
        return False
    authority = match.group(1)
    if authority is None:
        # Defensive: "//" right after the scheme always starts an authority.
        if text.partition(":")[2].startswith("//"):
            return False
    elif not is_authority(authority, require_host=False):
        return False
    return "%" not in text or BAD_PERCENT_RE.search(text) is None


def check_seconds(name: str, value: object, *, allow_negative: bool) -> None:
    """``TypeError`` unless a number of seconds; ``ValueError`` unless finite (and >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or (not allow_negative and value < 0):
        raise ValueError(
            f"{name} must be a finite{'' if allow_negative else ', non-negative'} number"
        )


__all__ = [
    "BAD_PERCENT_RE",
    "FORBIDDEN_CHAR_RE",
    "NONCE_RE",
    "REQUEST_ID_RE",
    "SCHEME_RE",
    "STATEMENT_RE",
    "UNRESERVED_SUB",
    "check_seconds",
    "epoch",
    "format_rfc3339",
    "is_authority",
    "is_uri",
    "parse_rfc3339",
]
