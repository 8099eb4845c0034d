"""The first hour of a new user: the examples' domain follows the port, the FastAPI example answers
in the envelope everywhere and its OpenAPI names the mounted login route, ``serve --help`` lists
every route and option, and the database's side files are ignored by git."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from starlette.testclient import TestClient

from asgi_wallet_auth.cli import build_parser
from tests.conftest import SECRET_KEY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WALLET_AUTH_SECRET", SECRET_KEY)
    monkeypatch.delenv("WALLET_AUTH_REDIS_URL", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("settings", "fastapi_app"):
        sys.modules.pop(name, None)
    yield
    for name in ("settings", "fastapi_app"):
        sys.modules.pop(name, None)


def _settings() -> ModuleType:
    return importlib.import_module("settings")


@pytest.mark.parametrize(
    ("argv", "domain"),
    [
        (["uvicorn", "starlette_app:app"], "127.0.0.1:8000"),
        (["uvicorn", "starlette_app:app", "--port", "9000"], "127.0.0.1:9000"),
        (["uvicorn", "fastapi_app:app", "--port=9001", "--host", "localhost"], "localhost:9001"),
        (["uvicorn", "fastapi_app:app", "--host=0.0.0.0", "--port", "8080"], "localhost:8080"),
    ],
)
def test_the_examples_domain_follows_uvicorns_port(
    examples: None, argv: list[str], domain: str
) -> None:
    assert _settings().default_domain(argv) == domain


def test_an_example_without_a_domain_says_which_it_uses(
    examples: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WALLET_AUTH_DOMAIN", raising=False)
    monkeypatch.delenv("WALLET_AUTH_URI", raising=False)
    monkeypatch.setattr(sys, "argv", ["uvicorn", "starlette_app:app", "--port", "9123"])
    auth = _settings().auth_from_env()
    assert (auth.domain, auth.uri) == ("127.0.0.1:9123", "http://127.0.0.1:9123")
    assert "signing in as 127.0.0.1:9123" in capsys.readouterr().err


def test_the_fastapi_example_answers_unknown_routes_in_the_envelope(
    examples: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WALLET_AUTH_DOMAIN", "testserver")
    module = importlib.import_module("fastapi_app")
    with TestClient(module.app) as client:
        missing = client.get("/nowhere")
        wrong = client.post("/me")
        under_auth = client.get("/auth/nowhere")
        schema = client.get("/openapi.json").json()
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": 40401, "msg": "not found", "data": None},
    )
    assert (wrong.status_code, wrong.json()["code"]) == (405, 40501)
    assert under_auth.json()["code"] == 40401
    description = schema["components"]["securitySchemes"]["WalletAuth"]["description"]
    assert "POST /auth/login" in description


def test_serve_help_lists_every_route_and_explains_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for route in ("POST /logout", "GET /siwe", "GET /me", "/wallet-auth.js"):
        assert route in text
    assert "--log-level {debug,info,warning,error} the least important messages" in text
    assert "--cors-origin ORIGIN" in text and "--cookies" in text


def test_the_databases_side_files_are_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "*.db-wal" in ignored and "*.db-shm" in ignored
