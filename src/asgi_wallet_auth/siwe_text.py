"""The EIP-4361 message as text: its fixed wording, its line grammar, and reading its fields.

``SiweMessage.parse`` reads a message with ``read_message`` and checks every field's value in
``SiweMessage.__post_init__``; the renderer (``str(message)``) writes the same wording back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidMessage
from .grammar import FORBIDDEN_CHAR_RE

#: The longest sign-in message ``SiweMessage.parse`` accepts, in characters (8 KiB).
MAX_MESSAGE_LENGTH = 8192
#: The largest accepted ``Chain ID`` (EIP-155 chain ids fit in an unsigned 64-bit integer).
MAX_CHAIN_ID = 2**64 - 1

_HEADER = " wants you to sign in with your Ethereum account:"
_URI_TAG = "URI: "
_VERSION_TAG = "Version: "
_CHAIN_ID_TAG = "Chain ID: "
_NONCE_TAG = "Nonce: "
_ISSUED_AT_TAG = "Issued At: "
_EXPIRATION_TAG = "Expiration Time: "
_NOT_BEFORE_TAG = "Not Before: "
_REQUEST_ID_TAG = "Request ID: "
_RESOURCES_LINE = "Resources:"
_RESOURCE_TAG = "- "

_CHAIN_ID_RE = re.compile(r"[1-9][0-9]{0,19}")


class SiweError(InvalidMessage, ValueError):
    """A sign-in message (text or fields) that does not conform to EIP-4361; HTTP 400."""

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(
            None if detail is None else f"invalid sign-in message: {detail}", headers=headers
        )


def read_message(text: object) -> dict[str, Any]:
    """The fields of an EIP-4361 message text, each in its place (``SiweError`` otherwise)."""
    if not isinstance(text, str):
        raise SiweError("the message must be a string")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise SiweError(f"the message is longer than {MAX_MESSAGE_LENGTH} characters")
    bad = None
    if not text.isascii() or not text.replace("\n", "").isprintable():
        bad = FORBIDDEN_CHAR_RE.search(text)
    if bad is not None:
        where = text.count("\n", 0, bad.start()) + 1
        if bad.group() == "\r":
            raise SiweError(f"line {where} ends with CR: lines must end with LF only")
        raise SiweError(f"line {where} contains a control or non-ASCII character")

    lines = text.split("\n")
    count = len(lines)
    header = lines[0]
    if not header.endswith(_HEADER):
        raise SiweError(f"line 1 must be '<domain>{_HEADER}'")
    origin = header[: -len(_HEADER)]
    scheme: str | None = None
    cut = origin.find("://")
    if cut >= 0:  # an authority has no "/", so the first "://" ends the scheme
        scheme, domain = origin[:cut], origin[cut + 3 :]
    else:
        domain = origin
    if count < 2:
        raise SiweError("line 2 must be the address")
    address = lines[1]
    if count < 3 or lines[2]:
        raise SiweError("line 3 must be empty")
    if count < 4:
        raise SiweError("the message ends after line 3")
    statement: str | None = None
    index = 3
    if lines[3]:
        statement = lines[3]
        index = 4
    if index >= count or lines[index]:
        raise SiweError(f"line {index + 1} must be empty (before URI; a statement is one line)")
    index += 1
    uri = _tagged(lines, index, _URI_TAG)
    version = _tagged(lines, index + 1, _VERSION_TAG)
    chain_text = _tagged(lines, index + 2, _CHAIN_ID_TAG)
    nonce = _tagged(lines, index + 3, _NONCE_TAG)
    issued_at = _tagged(lines, index + 4, _ISSUED_AT_TAG)
    index += 5
    if _CHAIN_ID_RE.fullmatch(chain_text) is None:
        raise SiweError("Chain ID must be decimal digits without sign or leading zeros")

    expiration_time = not_before = request_id = None
    resources: list[str] | None = None
    if index < count and lines[index].startswith(_EXPIRATION_TAG):
        expiration_time = lines[index][len(_EXPIRATION_TAG) :]
        index += 1
    if index < count and lines[index].startswith(_NOT_BEFORE_TAG):
        not_before = lines[index][len(_NOT_BEFORE_TAG) :]
        index += 1
    if index < count and lines[index].startswith(_REQUEST_ID_TAG):
        request_id = lines[index][len(_REQUEST_ID_TAG) :]
        index += 1
    if index < count and lines[index] == _RESOURCES_LINE:
        index += 1
        resources = []
        while index < count and lines[index].startswith(_RESOURCE_TAG):
            resources.append(lines[index][len(_RESOURCE_TAG) :])
            index += 1
    if index < count:
        if index == count - 1 and not lines[index]:
            raise SiweError("the message must not end with a line break")
        raise SiweError(
            f"line {index + 1} is not expected here (a field out of order, repeated or unknown)"
        )
    return dict(
        scheme=scheme,
        domain=domain,
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain_text),
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=None if resources is None else tuple(resources),
    )


def _tagged(lines: list[str], index: int, tag: str) -> str:
    """The value of the line ``index`` that must start with ``tag``."""
    if index >= len(lines) or not lines[index].startswith(tag):
        raise SiweError(f"line {index + 1} must start with '{tag}'")
    return lines[index][len(tag) :]


__all__ = ["MAX_CHAIN_ID", "MAX_MESSAGE_LENGTH", "SiweError", "read_message"]
