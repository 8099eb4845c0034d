"""The examples import, configure from the environment, and serve what their docstrings promise."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import SECRET_KEY, sign_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(params=["starlette_app", "fastapi_app"])
def example(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    monkeypatch.setenv("WALLET_AUTH_SECRET", SECRET_KEY)
    monkeypatch.setenv("WALLET_AUTH_DOMAIN", "testserver")
    monkeypatch.setenv("WALLET_AUTH_URI", "http://testserver")
    monkeypatch.delenv("WALLET_AUTH_REDIS_URL", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("settings", request.param):
        sys.modules.pop(name, None)  # a fresh import reads this test's environment
    module = importlib.import_module(request.param)
    yield module
    for name in ("settings", request.param):
        sys.modules.pop(name, None)


def token_for(client: TestClient, account: LocalAccount) -> str:
    secret = client.post(
        "/auth/login_random_secret", json={"wallet_address": account.address}
    ).json()["data"]
    response = client.post(
        "/auth/login",
        json={
            "login_random_secret": secret,
            "signature": sign_text(account, secret),
            "wallet_address": account.address,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["access_token"]
    return token


def test_example_is_configured_from_the_environment(example: ModuleType) -> None:
    assert example.auth.domain == "testserver"
    assert example.auth.uri == "http://testserver"


def test_example_serves_login_me_and_the_websocket(
    example: ModuleType, wallet: LocalAccount
) -> None:
    with TestClient(example.app) as client:
        anonymous = client.get("/me")
        assert anonymous.status_code == 401 and anonymous.json()["data"] is None
        token = token_for(client, wallet)
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {
            "code": 0,
            "msg": "ok",
            "data": {"address": wallet.address, "userid": wallet.address, "did_type": "eth"},
        }
        with client.websocket_connect(f"/ws?access_token={token}") as ws:
            assert ws.receive_json() == {"hello": wallet.address}
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws") as ws:
            ws.receive_json()
        assert closed.value.code == 1008


def test_example_uses_redis_when_configured(
    monkeypatch: pytest.MonkeyPatch, redis_server: object
) -> None:
    from asgi_wallet_auth.stores.redis import RedisNonceStore

    monkeypatch.setenv("WALLET_AUTH_SECRET", SECRET_KEY)
    monkeypatch.setenv("WALLET_AUTH_REDIS_URL", redis_server.url)  # type: ignore[attr-defined]
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("settings", None)
    settings = importlib.import_module("settings")
    try:
        assert isinstance(settings.auth_from_env().nonce_store, RedisNonceStore)
    finally:
        sys.modules.pop("settings", None)
