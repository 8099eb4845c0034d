"""examples/verify_only_app.py: keys from a real loopback JWKS, http and websocket requests."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from asgi_wallet_auth import KeySet, SigningKey
from tests.conftest import URI
from tests.jwks_server import JwksServer, jwks_reply
from tests.key_kit import ED_KEY, ES_KEY, bearer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIGNER = SigningKey.from_key(ES_KEY)


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with JwksServer(jwks_reply(KeySet((SIGNER,)).jwks())) as endpoint:
        monkeypatch.setenv("WALLET_AUTH_JWKS_URL", endpoint.url)
        monkeypatch.setenv("WALLET_AUTH_ISSUER", URI)
        monkeypatch.syspath_prepend(str(EXAMPLES))
        sys.modules.pop("verify_only_app", None)
        yield importlib.import_module("verify_only_app")
        sys.modules.pop("verify_only_app", None)


def token(signer: SigningKey, address: str) -> str:
    from asgi_wallet_auth.tokens import TokenService

    service = TokenService(
        secret_key=b"s" * 32,
        issuer=URI,
        audience=URI,
        lifetime=600,
        session_lifetime=3600,
        keys=KeySet((signer,)),
    )
    claims = {"did_type": "eth", "account_id": f"eip155:1:{address}"}
    return service.issue(subject=address, auth_time=int(time.time()), extra=claims).token


def test_the_example_verifies_http_and_websocket_requests(
    example: ModuleType, wallet: LocalAccount
) -> None:
    good = token(SIGNER, wallet.address)
    stranger = token(SigningKey.from_key(ED_KEY), wallet.address)
    with TestClient(example.app) as client:
        assert client.get("/me", headers=bearer(good)).json() == {
            "address": wallet.address,
            "account_id": f"eip155:1:{wallet.address}",
        }
        assert client.get("/me").status_code == 401
        refused = client.get("/me", headers=bearer(stranger))
        assert refused.status_code == 401 and refused.json()["code"] == 40111
        with client.websocket_connect(f"/ws?access_token={good}") as ws:
            assert ws.receive_json() == {"hello": wallet.address}
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect(f"/ws?access_token={stranger}") as ws,
        ):
            ws.receive_json()
        assert closed.value.code == 1008
