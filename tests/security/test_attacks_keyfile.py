"""Attacks on ``serve --signing-key``: the key file gets the secret file's care.

A key file someone else could have written or read (another owner, a symlink, a FIFO, a directory,
a mode others can use), or one too large to be a key file, stops ``serve`` instead of being used;
no refusal ever prints the key's text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_wallet_auth import SigningKey
from asgi_wallet_auth.keyfile import key_file_text
from asgi_wallet_auth.service import load_or_create_signing_keys
from tests.key_kit import ES_KEY
from tests.processes import free_port

NOBODY = 65534
KEY = SigningKey.from_key(ES_KEY)
TEXT = key_file_text((KEY,))
PEM_LINE = TEXT.splitlines()[4]  # a line of the private key's base64


def write(path: Path, text: str = TEXT, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(SystemExit) as refused:
        load_or_create_signing_keys(path)
    message = str(refused.value)
    assert PEM_LINE not in message
    return message


def test_control_a_0600_file_of_ours_is_used(tmp_path: Path) -> None:
    keys = load_or_create_signing_keys(write(tmp_path / "k.pem"))
    assert [k.kid for k in keys.keys] == [KEY.kid]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "k.pem", mode=mode)
    message = refusal(path)
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message


def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("planting a file owned by another user needs root (chown)")
    path = write(tmp_path / "k.pem")
    os.chown(path, NOBODY, NOBODY)
    assert f"owned by uid {NOBODY}" in refusal(path)


def test_a_symlink_is_refused_and_its_target_neither_read_nor_created(tmp_path: Path) -> None:
    target = write(tmp_path / "real.pem")
    link = tmp_path / "k.pem"
    link.symlink_to(target)
    assert "symbolic link" in refusal(link)
    dangling = tmp_path / "dangling.pem"
    dangling.symlink_to(tmp_path / "missing.pem")
    assert "symbolic link" in refusal(dangling)
    assert not (tmp_path / "missing.pem").exists()


def test_a_directory_or_fifo_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir.pem"
    directory.mkdir(mode=0o700)
    assert "not a regular file" in refusal(directory)
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo, 0o600)
    assert "not a regular file" in refusal(fifo)  # and no hang: opened non-blocking


def test_an_oversized_or_malformed_key_file_is_refused(tmp_path: Path) -> None:
    assert "larger than" in refusal(write(tmp_path / "big.pem", "#" * 70_000 + "\n" + TEXT))
    broken = TEXT.replace("state: current", "state: live")
    assert "needs a 'state:' line" in refusal(write(tmp_path / "bad.pem", broken))
    assert "ASCII" in refusal(write(tmp_path / "utf.pem", "# é\n" + TEXT))


def test_serve_does_not_start_with_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = write(tmp_path / "k.pem", mode=0o644)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_AUTH_")}
    result = subprocess.run(
        [sys.executable, "-m", "asgi_wallet_auth.cli", "serve", "--port", str(free_port()),
         "--signing-key", str(path)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refusing the signing-key file" in result.stderr and "mode 0644" in result.stderr
    assert "serving on" not in result.stdout
    assert PEM_LINE not in result.stdout + result.stderr
