"""The ``{"code", "msg", "data"}`` envelope and strict request-body reading, in plain ASGI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import orjson
from starlette.types import Receive, Scope, Send

from .errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType, WalletAuthError

# Responses carry secrets and tokens: they must never be stored by a browser or a proxy.
_BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
)


# Built once: json.dumps/json.loads with options build a new encoder/decoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``: the envelopes and the access tokens' claims.

    Callers pass no NaN or Infinity (hook claims carrying them are refused before they get
    here): orjson would write them as ``null``.
    """
    try:
        # orjson writes a token envelope in about 1 us, the stdlib encoder in about 9.
        return orjson.dumps(value)
    except TypeError:
        # An integer wider than 64 bits is refused by orjson but is valid JSON: that rare
        # value takes the stdlib path, with the same output (what neither takes still raises).
        return _ENCODER.encode(value).encode("utf-8")


def render(code: int, msg: str, data: Any) -> bytes:
    """Serialise one envelope (compact JSON, UTF-8)."""
    return json_bytes({"code": code, "msg": msg, "data": data})


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *_BASE_HEADERS,
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_ok(send: Send, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Send a success envelope (``code`` 0)."""
    await send_json(send, 200, render(0, "ok", data), headers)


async def send_error(
    send: Send, error: WalletAuthError, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Send the envelope of a refusal with its status and headers (and ``extra`` ones)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    headers.extend(extra)
    await send_json(send, error.status, render(error.code, error.msg, None), headers)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The single value of header ``name`` (lowercase); refuses a repeated header as ambiguous."""
    found: bytes | None = None
    for key, value in scope["headers"]:
        if key.lower() == name:
            if found is not None:
                raise InvalidRequest(f"repeated {name.decode()} header")
            found = value
    return found


# What clients send nearly always: accepted without taking the header apart.
_PLAIN_JSON = frozenset({b"application/json", b"application/json; charset=utf-8"})


def _check_content_type(scope: Scope) -> None:
    raw = header(scope, b"content-type")
    if raw in _PLAIN_JSON:
        return
    if raw is None:
        raise UnsupportedMediaType()
    media, _, params = raw.decode("latin-1").partition(";")
    if media.strip().lower() != "application/json":
        raise UnsupportedMediaType()
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType("request body must be UTF-8 JSON")


_CONTENT_LENGTH_RE = re.compile(rb"[0-9]+")
#: Any declared length past this is "too large" (and needs no arithmetic on thousands of digits).
_HUGE = 10**15


def content_length(scope: Scope) -> int | None:
    """The declared ``Content-Length`` (None when absent); ``InvalidRequest`` unless digits.

    Strict: ASCII digits only (``int()`` would take signs, blanks and underscores), and leading
    zeros cost nothing: a value of thousands of digits is simply huge, never an exception.
    """
    declared = header(scope, b"content-length")
    if declared is None:
        return None
    if _CONTENT_LENGTH_RE.fullmatch(declared) is None:
        raise InvalidRequest("invalid content-length header")
    digits = declared.lstrip(b"0")
    return _HUGE if len(digits) > 15 else int(digits or b"0")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """Read the whole body, refusing with 413 as soon as it would pass ``limit`` bytes."""
    length = content_length(scope)
    if length is not None and length > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_unique_object)
#: Deepest nesting accepted in a request body; the login bodies are flat objects.
MAX_JSON_DEPTH = 64
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep(text: str) -> bool:
    # Counting brackets is C-speed; only a body with many of them gets the exact walk, which
    # skips over strings. The decoder's own recursion limit is not relied on: an application
    # may raise it, and a bomb in an ignored field would then be parsed in full.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a strict JSON object: UTF-8 only, no duplicate keys, no NaN or Infinity.

    Deep nesting ends in the decoder's ``RecursionError``, which is a refusal like any other.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    if _too_deep(text):
        raise InvalidRequest("request body is nested too deeply")
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    return value


async def read_json(scope: Scope, receive: Receive, limit: int) -> dict[str, Any]:
    """Content type, size cap and strict decoding, cheapest refusal first."""
    _check_content_type(scope)
    return parse_json_object(await read_body(scope, receive, limit))


@overload
def string_field(
    body: Mapping[str, Any], name: str, *, max_length: int, required: Literal[True] = True
) -> str: ...


@overload
def string_field(
    body: Mapping[str, Any], name: str, *, max_length: int, required: bool
) -> str | None: ...


def string_field(
    body: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    required: bool = True,
) -> str | None:
    """A string field of at most ``max_length`` characters, with no lone surrogates."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"missing field: {name}")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"field must be a string: {name}")
    if len(value) > max_length:
        raise InvalidRequest(f"field is too long: {name}")
    if value.isascii():  # no surrogates possible: skip the encoding check
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"field is not valid Unicode text: {name}") from None
    return value


__all__ = [
    "header",
    "json_bytes",
    "parse_json_object",
    "read_body",
    "read_json",
    "render",
    "send_error",
    "send_json",
    "send_ok",
    "string_field",
]
