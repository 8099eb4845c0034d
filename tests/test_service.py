"""The standalone service: the secret file, and ``asgi-wallet-auth serve`` under a real uvicorn."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from asgi_wallet_auth import SQLiteUserStore
from asgi_wallet_auth.cli import build_parser
from asgi_wallet_auth.service import SECRET_ENV, SECRET_FILE_NAME, load_or_create_secret
from tests.conftest import client_for, sign_text
from tests.processes import free_port, running_service


def test_secret_comes_from_the_environment_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-the-environment-" + "x" * 20)
    assert load_or_create_secret(tmp_path) == "from-the-environment-" + "x" * 20
    assert not (tmp_path / SECRET_FILE_NAME).exists()


def test_generated_secret_is_kept_in_a_0600_file_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    first = load_or_create_secret(tmp_path)
    path = tmp_path / SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 43
    assert load_or_create_secret(tmp_path) == first


def test_a_secret_file_readable_by_others_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    load_or_create_secret(tmp_path)
    path = tmp_path / SECRET_FILE_NAME
    path.chmod(0o644)
    with pytest.raises(SystemExit, match="chmod 600"):
        load_or_create_secret(tmp_path)


def test_serve_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.db, args.domain, args.uri) == (
        "127.0.0.1",
        8000,
        "asgi-wallet-auth.db",
        None,
        None,
    )


async def test_service_app_me_route(tmp_path: Path, wallet: LocalAccount) -> None:
    from asgi_wallet_auth import WalletAuth
    from asgi_wallet_auth.service import create_service_app

    auth = WalletAuth(
        secret_key="k" * 32,
        domain="127.0.0.1:8000",
        uri="http://127.0.0.1:8000",
        user_store=SQLiteUserStore(tmp_path / "u.db"),
    )
    async with client_for(create_service_app(auth)) as client:
        anonymous = await client.get("/me")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == 40112
        secret = (
            await client.post("/login_random_secret", json={"wallet_address": wallet.address})
        ).json()["data"]
        token = (
            await client.post(
                "/login",
                json={
                    "login_random_secret": secret,
                    "signature": sign_text(wallet, secret),
                    "wallet_address": wallet.address,
                },
            )
        ).json()["data"]["access_token"]
        me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["data"]["address"] == wallet.address
        assert me.json()["code"] == 0


# -- end to end: the console script under a real server -------------------------------------


def test_serve_runs_a_real_service_whose_tokens_survive_a_restart(
    tmp_path: Path, wallet: LocalAccount
) -> None:
    port = free_port()
    with running_service(tmp_path, port) as base:
        secret = httpx.post(
            f"{base}/login_random_secret", json={"wallet_address": wallet.address}
        ).json()["data"]
        response = httpx.post(
            f"{base}/login",
            json={
                "login_random_secret": secret,
                "signature": sign_text(wallet, secret),
                "wallet_address": wallet.address,
            },
        )
        assert response.status_code == 200, response.text
        token = response.json()["data"]["access_token"]
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["data"]["address"] == wallet.address
        replay = httpx.post(
            f"{base}/login",
            json={
                "login_random_secret": secret,
                "signature": sign_text(wallet, secret),
                "wallet_address": wallet.address,
            },
        )
        assert replay.status_code == 401
    secret_file = tmp_path / SECRET_FILE_NAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    with running_service(tmp_path, port) as base:
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["data"]["address"] == wallet.address
    store = SQLiteUserStore(tmp_path / "asgi-wallet-auth.db")
    try:
        import anyio

        record = anyio.run(store.get_by_address, wallet.address)
        assert record is not None and record.address == wallet.address
    finally:
        store.close()
