"""The envelope renderer: the fast encoder and the stdlib fallback give the same JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_wallet_auth.envelope import render


def stdlib(code: int, msg: str, data: Any) -> bytes:
    return json.dumps(
        {"code": code, "msg": msg, "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "c0ffee" * 6,
        {"access_token": "a.b.c", "expires_in": 604800, "userid": "zoë@example"},
        ["x", 1, True, None, {"k": "ü"}],
        {"quote": 'a"b\\c\n\t\u2028', "emoji": "🦊"},
        {"wide": 2**70},  # orjson refuses integers wider than 64 bits
        {"mixed": [2**64, -(2**63) - 1, 2**63 - 1]},
    ],
    ids=["null", "secret", "token", "list", "escapes", "wide-int", "int-edges"],
)
def test_render_is_the_compact_utf8_json_of_the_envelope(data: Any) -> None:
    rendered = render(0, "ok", data)
    expected = stdlib(0, "ok", data)
    assert json.loads(rendered) == json.loads(expected)
    assert rendered == expected


def test_render_of_an_error_envelope() -> None:
    assert render(40101, "signature does not match", None) == (
        b'{"code":40101,"msg":"signature does not match","data":null}'
    )


def test_render_refuses_what_json_cannot_express() -> None:
    # Both encoders refuse these: the caller's bug surfaces as a TypeError, never odd output.
    with pytest.raises(TypeError):
        render(0, "ok", {"value": object()})
