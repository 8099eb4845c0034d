"""Web3MQ's published JavaScript SDK, driven in Node, against a real service on loopback.

``tests/js/web3mq/flow.mjs`` runs ``@web3mq/client`` itself (getUserInfo, getMainKeypair,
register, login, resetPassword, then signed calls) with a stand-in ``window.ethereum`` backed by
fixed keys: the SDK's own code computes every hash and signature. Where ``node`` or the npm
packages are missing these tests skip, unless ``WALLET_AUTH_REQUIRE_WEB3MQ_SDK=1`` (CI, after
``scripts/ci-web3mq.sh``) makes that a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from asgi_wallet_auth.stores.sqlite import SQLiteUserStore
from tests.conftest import OTHER_KEY, WALLET_KEY
from tests.processes import free_port, running_service, serving

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_WEB3MQ_SDK"
JS_DIR = Path(__file__).resolve().parent / "js" / "web3mq"
ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "https://dapp.example.org"  # the dapp's window.location.origin


def _node() -> str:
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed (apt-get install nodejs npm)"
    elif not (JS_DIR / "node_modules" / "@web3mq" / "client" / "package.json").is_file():
        reason = "the SDK is not installed (bash scripts/ci-web3mq.sh)"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the SDK tests to run")
        pytest.skip(reason)
    assert node is not None
    return node


def run_flow(base: str, *, app_routes: bool) -> dict[str, Any]:
    """Run the SDK's flow against ``base``; its report, with the steps by name."""
    node = _node()
    request = {
        "base": base,
        "origin": ORIGIN,
        "password": "correct horse battery",
        "newPassword": "staple 2026",
        "wallet": WALLET_KEY[2:],
        "second": OTHER_KEY[2:],
        "appRoutes": app_routes,
    }
    done = subprocess.run(
        [node, "flow.mjs"],
        cwd=JS_DIR,
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    report["by_name"] = {s["name"]: s for s in report["steps"]}
    return report


def ok(report: dict[str, Any], name: str) -> Any:
    """The value of a step that must have succeeded."""
    step = report["by_name"][name]
    assert step["ok"], (name, step)
    return step["value"]


def check_sdk_flow(report: dict[str, Any]) -> None:
    """What every run of the flow must show, whatever serves it."""
    wallet, second = Account.from_key(WALLET_KEY).address, Account.from_key(OTHER_KEY).address
    assert report["address"] == wallet.lower() and report["second"] == second.lower()
    # A new wallet: the SDK derives its userid itself, then registers under it.
    first = ok(report, "wallet.getUserInfo")
    assert first["userExist"] is False and first["userid"].startswith("user:")
    assert ok(report, "wallet.register")["code"] == 0
    after = ok(report, "wallet.getUserInfo.after")
    assert after == {"userid": first["userid"], "userExist": True}
    assert report["userid"] == first["userid"]
    # The session key logs in; signed calls of the service's own routes.
    assert ok(report, "wallet.login")["mainPublicKey"] == report["mainPublicKey"]
    assert ok(report, "getMyProfile")["nickname"] == ""
    assert ok(report, "updateMyProfile")["data"]["nickname"] == "alice"
    profile = ok(report, "getMyProfile.after")
    assert profile == {
        "userid": report["userid"],
        "wallet_address": wallet,
        "wallet_type": "eth",
        "nickname": "alice",
        "avatar_url": "https://example.org/a.png",
    }
    assert ok(report, "getUserBindDids.empty") == []
    # The second wallet: bound with both signatures, then its own main key, then a login.
    assert ok(report, "userBindDid")["data"]["did_value"] == second
    bound = ok(report, "getUserBindDids")
    assert [(b["did_type"], b["did_value"], b["provider_id"]) for b in bound] == [
        ("eth", second, "web3mq")
    ]
    joined = ok(report, "second.getUserInfo")
    assert joined == {"userid": report["userid"], "userExist": False}  # no main key yet
    assert ok(report, "second.register")["code"] == 0
    assert ok(report, "second.login")["tempPublicKey"]
    assert ok(report, "second.getMyProfile")["userid"] == report["userid"]
    # A new password: reset with a fresh wallet signature; the old main key is refused.
    assert ok(report, "resetPassword")["code"] == 0
    assert report["by_name"]["wallet.login.oldKey"]["ok"] is False
    assert ok(report, "wallet.login.newKey")["mainPublicKey"] == report["newMainPublicKey"]
    assert ok(report, "getMyProfile.newSession")["nickname"] == "alice"


async def stored(path: Path, userid: str) -> Any:
    store = SQLiteUserStore(path)
    try:
        return await store.get(userid)
    finally:
        store.close()


def test_the_sdk_registers_logs_in_and_signs_against_serve(tmp_path: Path) -> None:
    _node()
    port = free_port()
    args = ("--db", str(tmp_path / "users.db"), "--web3mq-uri", ORIGIN, "--signed-requests")
    env = {"WALLET_AUTH_SECRET": "sdk-serve-secret-that-is-long-enough-0123456"}
    with running_service(tmp_path, port, *args, env=env) as base:
        report = run_flow(base, app_routes=False)
    check_sdk_flow(report)
    record = asyncio.run(stored(tmp_path / "users.db", report["userid"]))
    second = Account.from_key(OTHER_KEY).address
    assert record.main_pubkey == report["newMainPublicKey"]
    assert record.nickname == "alice"
    [bound] = record.bound_wallets
    assert (bound.address, bound.did_type, bound.provider_id) == (second, "eth", "web3mq")
    assert bound.main_pubkey is not None and bound.main_pubkey != record.main_pubkey
    # The reset ended the wallet's old sessions; the bound wallet's and the new one remain.
    owners = {k.pubkey: k.address for k in record.session_keys}
    assert owners[report["sessionPublicKey"]] == record.address
    assert sorted(owners.values()) == sorted([record.address, second])
    for key in record.session_keys:  # the SDK asks for one day
        assert time.time() + 86_000 < key.expires_at <= time.time() + 86_400


@contextlib.contextmanager
def uvicorn_app(port: int) -> Iterator[str]:
    """The test dapp (tests/web3mq_sdk_app.py) under uvicorn, until the block ends."""
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WALLET_AUTH_")},
        "WEB3MQ_TEST_URI": base,
        "WEB3MQ_TEST_ORIGIN": ORIGIN,
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "tests.web3mq_sdk_app:create_app"]
    with serving(
        [*command, "--port", str(port), "--log-level", "warning"],
        base=base,
        probe="/seen",
        cwd=ROOT,
        env=env,
    ) as served:
        yield served


def test_the_sdks_signed_calls_reach_the_apps_routes_as_the_user(tmp_path: Path) -> None:
    _node()
    with uvicorn_app(free_port()) as base:
        report = run_flow(base, app_routes=True)
        seen = httpx.get(f"{base}/seen", timeout=5).json()
    check_sdk_flow(report)
    assert ok(report, "searchUsers") == [
        {"userid": report["userid"], "wallet_address": Account.from_key(WALLET_KEY).address}
    ]
    assert ok(report, "getFollowerList") == []
    assert ok(report, "getMyCreateDappList") == {"creator_id": report["userid"], "dapps": []}
    assert report["by_name"]["queryChannels"]["ok"], report["by_name"]["queryChannels"]
    # Each call was authenticated by its session-key signature, whatever it named the field
    # (web3mq_signature, web3mq_user_signature) or the user (userid, creator_id).
    paths = ["/api/users/search/", "/api/chats/", "/api/user_followers/", "/api/my_create_dapps/"]
    assert [s["path"] for s in seen] == paths
    for entry in seen:
        assert entry["userid"] == report["userid"]
        assert entry["auth_method"] == "web3mq_signature"
        assert entry["address"] == Account.from_key(WALLET_KEY).address
