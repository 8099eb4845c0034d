"""Assertions shared by the attack suite."""

from __future__ import annotations

from typing import Any

import httpx


def assert_refused(response: httpx.Response, status: int, code: int) -> None:
    """The documented refusal: ``status``, the envelope with ``code``, and no data."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "msg", "data"}
    assert body["code"] == code, body
    assert body["data"] is None


def assert_token(response: httpx.Response) -> dict[str, Any]:
    """A success envelope carrying a non-empty access token; returns its data."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    data: dict[str, Any] = body["data"]
    assert isinstance(data["access_token"], str) and data["access_token"]
    return data
