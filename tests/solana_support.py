"""Fixed Solana keys, SIWS texts and the Node cross-check runner shared by the Solana tests.

The Node tests run ``tests/js/solana/siws.mjs`` (``@solana/wallet-standard-util``). Where ``node``
or the installed npm packages are missing they skip with that reason, unless
``WALLET_AUTH_REQUIRE_NODE=1`` (set by CI after ``scripts/ci-solana.sh``), which turns the skip
into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from asgi_wallet_auth.base58 import b58encode
from tests.conftest import DOMAIN, T0, URI

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_NODE"
JS_DIR = Path(__file__).resolve().parent / "js" / "solana"

# RFC 8032 section 7.1, tests 1 and 2: published ed25519 seeds, public keys and signatures.
RFC8032_SEED_1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC_1 = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
RFC8032_SIGNATURE_1 = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
RFC8032_SEED_2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PUBLIC_2 = bytes.fromhex(
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
)
RFC8032_MESSAGE_2 = bytes.fromhex("72")
RFC8032_SIGNATURE_2 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)

WALLET = nacl.signing.SigningKey(RFC8032_SEED_1)
OTHER = nacl.signing.SigningKey(RFC8032_SEED_2)
ADDRESS = b58encode(bytes(WALLET.verify_key))
OTHER_ADDRESS = b58encode(bytes(OTHER.verify_key))
NONCE = "Qx7sKf2mP9dLw4Rt8vBn3cYh"
ISSUED = "2026-01-01T00:00:00.000Z"  # T0
T0_PLUS_HOUR = "2026-01-01T01:00:00.000Z"
assert T0 == 1_767_225_600.0

FIELDS: dict[str, Any] = {
    "domain": DOMAIN,
    "address": ADDRESS,
    "statement": "Sign in to Example",
    "uri": URI,
    "version": "1",
    "chainId": "mainnet",
    "nonce": NONCE,
    "issuedAt": ISSUED,
}


def siws_text(
    *,
    domain: str = DOMAIN,
    address: str = ADDRESS,
    statement: str | None = "Sign in to Example",
    fields: list[tuple[str, str]] | None = None,
    resources: list[str] | None = None,
) -> str:
    """A SIWS text written out by hand (not by the module under test)."""
    if fields is None:
        fields = [
            ("URI", URI),
            ("Version", "1"),
            ("Chain ID", "mainnet"),
            ("Nonce", NONCE),
            ("Issued At", ISSUED),
        ]
    text = f"{domain} wants you to sign in with your Solana account:\n{address}"
    if statement is not None:
        text += f"\n\n{statement}"
    lines = [f"{tag}: {value}" for tag, value in fields]
    if resources is not None:
        lines.append("Resources:")
        lines.extend(f"- {resource}" for resource in resources)
    if lines:
        text += "\n\n" + "\n".join(lines)
    return text


def sign(text: str | bytes, key: nacl.signing.SigningKey = WALLET) -> bytes:
    """The 64-byte ed25519 signature of ``text`` (UTF-8) by ``key``."""
    data = text.encode() if isinstance(text, str) else text
    return bytes(key.sign(data).signature)


def node_siws(request: dict[str, Any]) -> dict[str, Any]:
    """Run the Node SIWS renderer/parser on ``request``; skip (fail under CI) if unavailable."""
    node = shutil.which("node")
    package = JS_DIR / "node_modules" / "@solana" / "wallet-standard-util" / "package.json"
    reason = None
    if node is None:
        reason = "node is not installed (apt-get install nodejs npm)"
    elif not package.is_file():
        reason = "the Node packages are not installed (bash scripts/ci-solana.sh)"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the Node cross-check to run")
        pytest.skip(reason)
    assert node is not None
    completed = subprocess.run(
        [node, "siws.mjs"],
        cwd=JS_DIR,
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result
