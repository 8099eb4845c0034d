"""Web3MQ's user login and signed requests: NonceContent, content checks, device keys, profiles.

What Web3MQ clients send is fixed by their SDKs (DESIGN.md §2.2); this module checks each part
strictly and without rebuilding the client's message template, whose wording, blank lines and date
format differ between SDKs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import nacl.bindings
import nacl.exceptions
import nacl.signing

from .errors import BodyTooLarge, InvalidRequest, MessageRejected, TimestampRejected
from .signatures import parse_address, parse_signature, verify_wallet_signature

#: Largest accepted timestamp (ms): JavaScript's safe-integer limit, far beyond any real clock.
MAX_TIMESTAMP_MS = 2**53 - 1
_USERID_RE = re.compile(r"[A-Za-z0-9:_\-.@]{1,128}")
_PUBKEY_RE = re.compile(r"[0-9a-f]{64}")
_BASE64_SIGNATURE_RE = re.compile(r"[A-Za-z0-9+/]{86}==")
_DATA_URL_RE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,")


def nonce_content(
    userid: str,
    pubkey_type: str,
    pubkey_value: str,
    did_type: str,
    did_value: str,
    timestamp: int,
) -> str:
    """Web3MQ's NonceContent: FIPS SHA3-224 (not Keccak) over the concatenated fields, hex."""
    text = userid + pubkey_type + pubkey_value + did_type + did_value + str(timestamp)
    return hashlib.sha3_224(text.encode("utf-8")).hexdigest()


def _lines(content: str) -> list[str]:
    # Templates indent their lines and some clients send CRLF: compare each line stripped.
    return [line.strip() for line in content.split("\n")]


def check_signature_content(
    content: str, *, nonce: str, did_value: str, uris: Collection[str] | None
) -> None:
    """Refuse unless ``content`` names exactly this nonce, this address and an allowed URI.

    Exactly one ``Nonce:`` line, equal to ``nonce``; a line that is the ``did_value`` address
    (case-insensitive); and, where ``uris`` is given, exactly one ``URI:`` line whose value is one
    of them. The rest of the template is not rebuilt: its wording belongs to the client.
    """
    lines = _lines(content)
    nonces = [line[6:].strip() for line in lines if line.startswith("Nonce:")]
    if len(nonces) != 1 or nonces[0] != nonce:
        raise MessageRejected(
            "signature_content must hold exactly one Nonce line with NonceContent"
        )
    address = did_value.lower()
    if not any(line.lower() == address for line in lines):
        raise MessageRejected("signature_content does not name the did_value address")
    if uris is not None:
        found = [line[4:].strip() for line in lines if line.startswith("URI:")]
        if len(found) != 1 or found[0] not in uris:
            raise MessageRejected("signature_content URI is not this service")


def check_timestamp(timestamp: object, *, now: float, back: float, ahead: float) -> int:
    """An integer of milliseconds within ``back`` seconds before and ``ahead`` after ``now``."""
    if type(timestamp) is not int or not 0 < timestamp <= MAX_TIMESTAMP_MS:
        raise InvalidRequest("timestamp must be an integer of milliseconds")
    age = now - timestamp / 1000
    if age > back or -age > ahead:
        raise TimestampRejected()
    return timestamp


def parse_ed25519_public_key(value: object) -> bytes:
    """64 lowercase hex characters that decode to a usable ed25519 public key.

    libsodium's conversion to X25519 refuses points that are not on the curve, of small order or
    outside the main subgroup, which are the keys that could make a forged signature verify.
    """
    if not isinstance(value, str) or _PUBKEY_RE.fullmatch(value) is None:
        raise InvalidRequest("pubkey_value must be 64 lowercase hex characters")
    key = bytes.fromhex(value)
    try:
        nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(key)
    except Exception:  # libsodium reports any refusal as a generic error
        raise InvalidRequest("pubkey_value is not a valid ed25519 public key") from None
    return key


def decode_request_signature(signature: object) -> bytes | None:
    """The 64 raw bytes of a standard-base64 ed25519 signature, or None if malformed.

    Replay markers are keyed by these bytes, never by the text: base64 has several spellings of
    one value (the unused low bits of the last character), and each would otherwise pass anew.
    """
    if not isinstance(signature, str) or _BASE64_SIGNATURE_RE.fullmatch(signature) is None:
        return None
    return base64.b64decode(signature)


def verify_request_signature(keys: Iterable[str], content: bytes, signature: bytes) -> bool:
    """True if ``signature`` (64 raw bytes) is an ed25519 signature of ``content`` by a key."""
    for key in keys:
        try:
            nacl.signing.VerifyKey(bytes.fromhex(key)).verify(content, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            continue
        return True
    return False


# -- decentralised identifiers ---------------------------------------------------------------


class DidVerifier(Protocol):
    """Checks a ``did_signature`` for one ``did_type``; add one to support another chain."""

    def normalize(self, did_value: object) -> str:
        """The canonical form of ``did_value``; raise ``InvalidRequest`` for a malformed one."""
        ...

    def verify(self, content: bytes, signature: object, did_value: str) -> None:
        """Raise a ``WalletAuthError`` unless ``signature`` over ``content`` is by ``did_value``."""
        ...


class EthDidVerifier:
    """``did_type`` "eth": an EIP-55 address and an EIP-191 ``personal_sign`` signature."""

    def normalize(self, did_value: object) -> str:
        """The EIP-55 form of the address (400 for anything else)."""
        return parse_address(did_value)

    def verify(self, content: bytes, signature: object, did_value: str) -> None:
        """The same strict rules as ``/login``: format, low s, recovery to the address."""
        verify_wallet_signature(content, parse_signature(signature), did_value)


DEFAULT_DID_VERIFIERS: Mapping[str, DidVerifier] = {"eth": EthDidVerifier()}


# -- profile fields ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Avatar:
    """A decoded avatar image and its sniffed media type."""

    data: bytes
    media_type: str


def check_userid(value: object) -> str:
    """1 to 128 characters of letters, digits and ``:_-.@`` (Web3MQ's ``user:<hex>`` fits)."""
    if not isinstance(value, str) or _USERID_RE.fullmatch(value) is None:
        raise InvalidRequest("userid must be 1 to 128 characters of letters, digits and :_-.@")
    return value


def check_nickname(value: object, *, max_length: int) -> str | None:
    """At most ``max_length`` characters, no control, format or unassigned characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidRequest(f"nickname must be a string of 1 to {max_length} characters")
    # Category C covers controls, bidi overrides and other invisible format characters.
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise InvalidRequest("nickname must not contain control or format characters")
    return value


def check_avatar_url(value: object, *, max_length: int) -> str | None:
    """An absolute ``https://`` URL of printable ASCII; it is stored, never fetched."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidRequest(f"avatar_url must be a string of 1 to {max_length} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise InvalidRequest("avatar_url must be printable ASCII (percent-encode the rest)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidRequest("avatar_url is not a valid URL") from None
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise InvalidRequest("avatar_url must be an https URL with a host and no user info")
    return value


def sniff_image(data: bytes) -> str | None:
    """The media type of a PNG, JPEG, GIF or WebP image from its magic bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def encoded_avatar_limit(max_bytes: int) -> int:
    """The longest base64 text (with a data-URL prefix) that can decode to ``max_bytes``."""
    return 4 * -(-max_bytes // 3) + len("data:image/jpeg;base64,")


def decode_avatar(value: object, *, max_bytes: int) -> Avatar | None:
    """Strict standard base64 (optionally a ``data:image/...;base64,`` URL) of a known image type.

    Too large is a 413, checked on the encoded length before anything is decoded.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("avatar_base64 must be a string")
    if len(value) > encoded_avatar_limit(max_bytes):
        raise BodyTooLarge(f"avatar is larger than {max_bytes} bytes")
    declared = None
    match = _DATA_URL_RE.match(value)
    if match is not None:
        declared = "image/" + match.group(1)
        value = value[match.end() :]
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidRequest("avatar_base64 is not valid base64") from None
    if len(data) > max_bytes:
        raise BodyTooLarge(f"avatar is larger than {max_bytes} bytes")
    media_type = sniff_image(data)
    if media_type is None or (declared is not None and declared != media_type):
        raise InvalidRequest("avatar must be a PNG, JPEG, GIF or WebP image")
    return Avatar(data, media_type)


__all__ = [
    "DEFAULT_DID_VERIFIERS",
    "MAX_TIMESTAMP_MS",
    "Avatar",
    "DidVerifier",
    "EthDidVerifier",
    "check_avatar_url",
    "check_nickname",
    "check_signature_content",
    "check_timestamp",
    "check_userid",
    "decode_avatar",
    "decode_request_signature",
    "encoded_avatar_limit",
    "nonce_content",
    "parse_ed25519_public_key",
    "sniff_image",
    "verify_request_signature",
]
