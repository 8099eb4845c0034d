"""A real headless Chromium (Debian's) driven by Playwright, a stand-in wallet, a dapp's server.

Where Chromium or Playwright is missing the browser tests skip with that reason, unless
``WALLET_AUTH_REQUIRE_BROWSER=1`` (set by CI, which installs both), which makes it a failure.
Playwright drives the machine's own ``chromium`` (``executable_path``): its browser download is
never used.

The wallet is an EIP-1193 provider injected before any page script runs: it announces itself
with EIP-6963 (or sits at ``window.ethereum``), answers ``eth_requestAccounts`` and
``eth_chainId`` from its configuration, and forwards ``personal_sign`` to Python, which signs
with a fixed test key (``expose_function``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from tests.processes import end

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_BROWSER"
#: Set to a folder to keep the screenshots there too (docs/ keeps the README's).
SCREENSHOTS_ENV = "WALLET_AUTH_SCREENSHOTS"


def chromium_binary() -> str:
    """The path of Debian's chromium, or skip (fail under CI) when it or Playwright is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    if path is None:
        reason = "chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[test]')"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run")
        pytest.skip(reason)
    assert path is not None
    return path


WALLET_SHIM = """
(() => {
  const config = window.__walletConfig || {};
  if (config.mode === "none") return;
  const calls = (window.__walletCalls = []);
  const fail = (code, message) => Object.assign(new Error(message), { code });
  const provider = {
    async request({ method, params }) {
      calls.push(method);
      if (method === "eth_requestAccounts" || method === "eth_accounts") {
        return [config.address.toLowerCase()];  // as many wallets give it: not EIP-55
      }
      if (method === "eth_chainId") return config.chainId;
      if (method === "personal_sign") {
        if (config.reject) throw fail(4001, "User rejected the request.");
        return await window.__testWalletSign(params[0], params[1]);
      }
      throw fail(4200, "unsupported method");
    },
    on() {},
    removeListener() {},
  };
  if (config.mode === "legacy") {
    window.ethereum = provider;
    return;
  }
  const info = Object.freeze({
    uuid: "6c4a7c3e-2f1d-4b8e-9a0f-3d2b1c0e9f8a",
    name: "Test Wallet",
    icon:
      "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E" +
      "%3Ccircle cx='4' cy='4' r='4' fill='%23f59f00'/%3E%3C/svg%3E",
    rdns: "org.example.testwallet",
  });
  const announce = () =>
    window.dispatchEvent(
      new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }),
    );
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
"""


@dataclass
class StandInWallet:
    """What the stand-in wallet is and did: its key, its chain, and every message it signed."""

    account: LocalAccount
    chain_id: int = 1
    mode: str = "eip6963"  # or "legacy" (window.ethereum only) or "none"
    reject: bool = False
    #: A broken wallet: signs with this other key instead of the account's.
    signer: LocalAccount | None = None
    signed: list[str] = field(default_factory=list)

    def sign(self, data_hex: str, address: str) -> str:
        """``personal_sign``: EIP-191 over the bytes the page sent, by the fixed test key."""
        assert address.lower() == self.account.address.lower(), "asked to sign for another address"
        message = bytes.fromhex(data_hex.removeprefix("0x"))
        self.signed.append(message.decode("utf-8"))
        key = self.signer or self.account
        signature = key.sign_message(encode_defunct(primitive=message)).signature.hex()
        return signature if signature.startswith("0x") else "0x" + signature

    def install(self, context: Any) -> None:
        """Inject the wallet into every page of a Playwright ``BrowserContext``."""
        config = {
            "mode": self.mode,
            "reject": self.reject,
            "address": self.account.address,
            "chainId": hex(self.chain_id),
        }
        context.add_init_script(f"window.__walletConfig = {json.dumps(config)};")
        context.add_init_script(WALLET_SHIM)
        context.expose_function("__testWalletSign", self.sign)


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to ``$WALLET_AUTH_SCREENSHOTS`` where that is set."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        shutil.copy(path, Path(folder) / path.name)


@contextlib.contextmanager
def static_server(directory: Path, port: int) -> Iterator[str]:
    """A dapp's own web server (Python's http.server) on a loopback port, until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:  # a real server: poll until it answers, bounded
            if process.poll() is not None:
                raise AssertionError("the dapp's server exited early")
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("the dapp's server did not start within 15 s") from None
                time.sleep(0.05)
        yield base
    finally:
        end(process, 10)


def dapp_page(service: str) -> str:
    """A dapp's page that imports the JS client from the service, as any page may."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A dapp</title>
<script type="module">
import * as client from "{service}/wallet-auth.js";
window.client = client;
window.auth = new client.WalletAuthClient("{service}");
document.body.dataset.ready = "yes";
</script></head><body><h1>A dapp on another origin</h1></body></html>
"""
