"""The login client's wallet key: where it is read from and how it is checked, and its errors.

``asgi-wallet-auth login`` reads the wallet's private key from a file or an environment variable,
never from the command line, and never writes it to an error message, a log record or the output:
errors about the key say what is wrong with it without quoting it. ``asgi_wallet_auth.client``
re-exports every public name here.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: The environment variable ``login`` reads the key from unless ``--key-env`` names another.
DEFAULT_KEY_ENV = "WALLET_PRIVATE_KEY"
#: The most bytes read from a key file: a key is 66 characters, with some whitespace.
MAX_KEY_FILE_SIZE = 4096

_KEY_RE = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
# Anything that looks like a private key (64 hex digits): cut out of every message we print.
_KEY_LIKE_RE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
# Opening flags that cannot block or be redirected: O_NONBLOCK so that a FIFO swapped in after the
# lstat check does not hang open(), O_NOFOLLOW so that a symlink swapped in is refused. Both are
# POSIX only; Windows has neither FIFOs in the file system nor this race.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class ClientError(Exception):
    """A login that could not be completed; ``exit_code`` is what the command exits with."""

    exit_code = 1


class UsageError(ClientError):
    """A bad argument or key source, found before anything is sent (exit status 2)."""

    exit_code = 2


class KeySourceError(UsageError):
    """The private key is missing, unreadable, too widely readable or malformed.

    The message never contains the key, nor any part of the file or variable that held it.
    """


def redact(text: str) -> str:
    """``text`` with anything shaped like a private key (64 hex digits) replaced by a marker."""
    return _KEY_LIKE_RE.sub("<redacted>", text)


def parse_private_key(text: str, *, source: str) -> bytes:
    """The 32 bytes of a hex private key (``0x`` optional, surrounding whitespace ignored).

    ``source`` names where the text came from, for the error message; the text itself is never
    quoted. Raises ``KeySourceError``.
    """
    match = _KEY_RE.fullmatch(text.strip())
    if match is None:
        raise KeySourceError(
            f"{source} does not hold a private key: expected 64 hex digits, with or without 0x"
        )
    key = bytes.fromhex(match.group(1))
    account(key, source=source)
    return key


def account(key: bytes, *, source: str) -> LocalAccount:
    """The eth-account signer of ``key``; ``KeySourceError`` for a key outside the curve order.

    eth-account is imported here, not with this module, so that ``asgi-wallet-auth serve``
    does not pay for its import.
    """
    from eth_account import Account

    try:
        signer: LocalAccount = Account.from_key(key)
    except Exception:  # zero or not below the curve order; the library's text is not reused
        raise KeySourceError(f"{source} does not hold a valid secp256k1 private key") from None
    return signer


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fd``, reading until end of file (short reads are normal)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_key_file(path: str | os.PathLike[str], *, solana: bool = False) -> bytes:
    """Read a private key from a regular file that only its owner can read.

    The key is hex text (``parse_private_key``), or with ``solana`` a Solana CLI keypair
    (``parse_solana_keypair``).

    A symlink, a FIFO, a device or a directory is refused before it is opened (so a FIFO cannot
    hang the command), the file is opened without following links and without blocking, and
    its identity and mode are checked again on the open descriptor. A file that its group or
    other users can read or write is refused (``chmod 600``), like ssh refuses such a key; on
    Windows, where modes do not say this, that check is skipped.
    """
    where = Path(path)
    label = f"--key-file {redact(str(where))}"
    try:
        before = os.lstat(where)
        if stat.S_ISLNK(before.st_mode):
            raise KeySourceError(
                f"{label} is a symbolic link; pass the path of the key file itself"
            )
        if not stat.S_ISREG(before.st_mode):
            raise KeySourceError(f"{label} is not a regular file")
        fd = os.open(where, _OPEN_FLAGS)
        try:
            opened = os.fstat(fd)
            # Another file put in its place between the lstat and the open: refuse, never guess.
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
                before.st_dev,
                before.st_ino,
            ):
                raise KeySourceError(f"{label} was replaced while it was being opened")
            if os.name != "nt" and opened.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeySourceError(
                    f"{label} is accessible by other users "
                    f"(mode {stat.S_IMODE(opened.st_mode):04o}); "
                    f"run `chmod 600 {redact(str(where))}`"
                )
            raw = _read_fd(fd, MAX_KEY_FILE_SIZE)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KeySourceError(f"cannot read {label}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""  # refused below, with the same message as any other non-key content
    return (parse_solana_keypair if solana else parse_private_key)(text, source=label)


def parse_solana_keypair(text: str, *, source: str) -> bytes:
    """The 32-byte ed25519 seed of a Solana keypair as Solana's CLI writes it.

    That is a JSON array of 64 integers in [0, 255]: the seed, then the public key, which must
    be the seed's. ``source`` names where the text came from; the text is never quoted.
    """
    import nacl.signing

    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != 64
        or any(type(v) is not int or not 0 <= v <= 255 for v in values)
    ):
        raise KeySourceError(
            f"{source} does not hold a Solana keypair: expected a JSON array of 64 bytes, "
            "as `solana-keygen new` writes it"
        )
    keypair = bytes(values)
    if bytes(nacl.signing.SigningKey(keypair[:32]).verify_key) != keypair[32:]:
        raise KeySourceError(f"{source} holds a Solana keypair whose public half is not its own")
    return keypair[:32]


def load_private_key(
    *,
    key_file: str | os.PathLike[str] | None,
    key_env: str = DEFAULT_KEY_ENV,
    environ: Mapping[str, str] | None = None,
    solana: bool = False,
) -> bytes:
    """The private key from ``key_file`` if given, else from the environment variable ``key_env``.

    An empty variable counts as unset. With neither source, ``KeySourceError`` names both options.
    """
    if key_file is not None:
        return read_key_file(key_file, solana=solana)
    env = os.environ if environ is None else environ
    value = env.get(key_env, "")
    if value.strip():
        parse = parse_solana_keypair if solana else parse_private_key
        return parse(value, source=f"${redact(key_env)}")
    raise KeySourceError(
        "no wallet private key: pass --key-file PATH (a file only you can read, chmod 600) "
        f"or set the environment variable {redact(key_env)} (choose another one with "
        "--key-env NAME); the key is never taken from the command line"
    )


__all__ = [
    "DEFAULT_KEY_ENV",
    "MAX_KEY_FILE_SIZE",
    "ClientError",
    "KeySourceError",
    "UsageError",
    "account",
    "load_private_key",
    "parse_private_key",
    "parse_solana_keypair",
    "read_key_file",
    "redact",
]
