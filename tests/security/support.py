"""Assertions shared by the attack suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import nacl.signing
from Crypto.Hash import SHA3_224
from eth_account.signers.local import LocalAccount

from tests.conftest import T0, URI, sign_text

NOW_MS = int(T0 * 1000)


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


def web3mq_login_body(
    account: LocalAccount,
    *,
    device: nacl.signing.SigningKey,
    userid: str,
    timestamp: int = NOW_MS,
    signer: LocalAccount | None = None,
    indented: bool = False,
    edit: Callable[[str, str], str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A genuine Web3MQ login body, with NonceContent computed independently (pycryptodome).

    ``indented`` uses the SDK's indented template with blank lines, else the compact one;
    ``edit(content, nonce)`` may rewrite the text before the wallet (or ``signer``) signs it;
    ``extra`` fields are set last (profile fields, or overrides).
    """
    pubkey = device.verify_key.encode().hex()
    text = userid + "ed25519" + pubkey + "eth" + account.address + str(timestamp)
    nonce = SHA3_224.new(text.encode("utf-8")).hexdigest()
    lines = [
        "Web3MQ wants you to sign in with your Ethereum account:",
        account.address,
        *([""] if indented else []),
        "For Web3MQ register",
        f"URI: {URI}",
        "Version: 1",
        *([""] if indented else []),
        f"Nonce: {nonce}",
        "Issued At: 01/01/2026 00:00",
    ]
    if indented:
        lines = [lines[0], *("    " + line if line else line for line in lines[1:])]
    content = "\n".join(lines)
    if edit is not None:
        content = edit(content, nonce)
    body: dict[str, Any] = {
        "userid": userid,
        "did_type": "eth",
        "did_value": account.address,
        "timestamp": timestamp,
        "pubkey_type": "ed25519",
        "pubkey_value": pubkey,
        "signature_content": content,
        "did_signature": sign_text(signer or account, content),
    }
    body.update(extra)
    return body
