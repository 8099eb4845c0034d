"""A real local Ethereum node (anvil) on a free loopback port, and the Solidity compiler (solc).

Both come from the npm project in ``tests/js/chain`` (``scripts/ci-chain.sh`` installs it).
Where either is missing the chain tests skip with that reason, unless
``WALLET_AUTH_REQUIRE_ANVIL=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import end, free_port

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_ANVIL"
CHAIN_DIR = Path(__file__).resolve().parent / "js" / "chain"
CONTRACTS = Path(__file__).resolve().parent / "contracts"
CHAIN_ID = 31337
INSTALL_HINT = "run scripts/ci-chain.sh (npm ci in tests/js/chain)"


def _missing(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the chain tests to run")
    pytest.skip(reason)


def anvil_binary() -> str:
    """The anvil that the npm platform package carries (else one on PATH), or skip/fail."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    name = "anvil.exe" if sys.platform == "win32" else "anvil"
    packaged = CHAIN_DIR / "node_modules" / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin"
    if (packaged / name).is_file():
        return str(packaged / name)
    on_path = shutil.which("anvil")
    if on_path is None:
        _missing(f"anvil is not installed ({INSTALL_HINT})")
    assert on_path is not None
    return on_path


class AnvilNode:
    """One anvil process on 127.0.0.1 with the Prague hardfork (EIP-7702), mining on demand."""

    def __init__(self, chain_id: int = CHAIN_ID, port: int | None = None) -> None:
        self.binary = anvil_binary()
        self.chain_id = chain_id
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--chain-id",
                str(self.chain_id),
                "--hardfork",
                "prague",
                "--accounts",
                "0",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        with httpx.Client(verify=False, timeout=0.5) as client:  # noqa: S501 - plain http
            while True:  # a real server: poll until it answers, bounded
                try:
                    if client.post(self.url, json=body).json().get("result"):
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("anvil did not start")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            end(self.process, 5)
        self.process = None


def compile_contracts(path: Path = CONTRACTS / "MockWallets.sol") -> dict[str, bytes]:
    """Creation code of every contract in ``path``, by name, compiled with the npm ``solc``."""
    solc = CHAIN_DIR / "node_modules" / "solc" / "solc.js"
    node = shutil.which("node")
    if node is None or not solc.is_file():
        _missing(f"node or the solc npm package is missing ({INSTALL_HINT})")
    assert node is not None
    request = {
        "language": "Solidity",
        "sources": {path.name: {"content": path.read_text("utf-8")}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": "prague",
            "outputSelection": {"*": {"*": ["evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        [node, str(solc), "--standard-json"],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=120,
        check=True,
    )
    text = done.stdout.decode()
    # solcjs may print a note line before the JSON document.
    output: dict[str, Any] = json.loads(text[text.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    assert not errors, [e.get("formattedMessage") for e in errors]
    return {
        name: bytes.fromhex(contract["evm"]["bytecode"]["object"])
        for name, contract in output["contracts"][path.name].items()
        if contract["evm"]["bytecode"]["object"]
    }
