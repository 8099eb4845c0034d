"""The files only the service's user may read: the signing secret and the signing-key file.

Each is created with ``O_EXCL`` and never through a symlink, and an existing one is used only if,
on the open descriptor, it is a regular file owned by this user that no one else can access: a
file planted by someone else stops the service rather than signing its tokens.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .keys import KeySet, SigningKey

SECRET_ENV = "WALLET_AUTH_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_FILE_NAME = ".asgi-wallet-auth.secret"  # noqa: S105 - a file name


# The secret file is opened without following a symlink and without blocking on a FIFO (both
# POSIX only; Windows has neither in this form, nor modes or owners that say who can read).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SECRET_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW
_SECRET_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
_MIN_SECRET_LENGTH = 32
# A concurrent `serve` that has just created the file writes it at once; wait that long for it.
_CONCURRENT_WRITE_WAIT = 2.0


def _refuse(path: Path, problem: str, fix: str, what: str = "secret file") -> NoReturn:
    raise SystemExit(f"refusing the {what} {path}: {problem}; {fix}")


def _read_private(path: Path, fd: int, remove: str, what: str, limit: int) -> bytes:
    """The bytes of the open file ``fd`` (at most ``limit``), after checking what it really is."""
    info = os.fstat(fd)  # the opened file itself: nothing can be swapped in after this check
    if not stat.S_ISREG(info.st_mode):
        _refuse(path, "it is not a regular file", remove, what)
    if os.name != "nt":
        uid = os.geteuid()
        if info.st_uid != uid:
            # A 0600 file another user planted (in a shared or world-writable directory) would
            # otherwise give them the key that signs every token.
            owner = f"it is owned by uid {info.st_uid}, not by this user (uid {uid})"
            _refuse(path, owner, remove, what)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _refuse(
                path,
                f"other users can access it (mode {stat.S_IMODE(info.st_mode):04o})",
                f"run `chmod 600 {path}` if you created it, else {remove}",
                what,
            )
    raw = b""
    waited_until = time.monotonic() + _CONCURRENT_WRITE_WAIT
    while True:  # bounded: an empty file is waited for at most _CONCURRENT_WRITE_WAIT
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, limit)
        if raw or time.monotonic() > waited_until:
            break
        time.sleep(0.05)  # another process created the file and is about to write it
    return raw


def _checked_secret(path: Path, fd: int) -> str:
    """The secret in the open file ``fd``, after checking what the descriptor really is."""
    remove = f"delete it (rm {path}) to have a new one generated, or set {SECRET_ENV}"
    raw = _read_private(path, fd, remove, "secret file", 4096)
    try:
        secret = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        secret = ""
    if len(secret) < _MIN_SECRET_LENGTH:
        _refuse(path, f"it holds no secret of at least {_MIN_SECRET_LENGTH} characters", remove)
    return secret


def _read_secret_file(path: Path) -> str | None:
    """The checked secret in ``path``; ``None`` if there is no such file."""
    try:
        fd = os.open(path, _SECRET_READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            _refuse(path, "it is a symbolic link", f"delete it (rm {path}) or set {SECRET_ENV}")
        raise SystemExit(f"cannot read the secret file {path}: {exc.strerror}") from None
    try:
        return _checked_secret(path, fd)
    finally:
        os.close(fd)


def load_or_create_secret(directory: Path) -> str:
    """The service secret: ``$WALLET_AUTH_SECRET``, else a 0600 file created once in ``directory``.

    Keeping the generated secret on disk means a restart does not invalidate every token. The
    file is created with ``O_EXCL`` (never through a symlink or over a planted file), and an
    existing one is used only if it is a regular file (not a symlink, FIFO or directory) owned
    by this user that no one else can access; otherwise the command stops and says how to fix it.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env
    path = directory / SECRET_FILE_NAME
    for _ in range(3):  # bounded: a file deleted between our create and read attempts
        try:
            fd = os.open(path, _SECRET_CREATE_FLAGS, 0o600)
        except FileExistsError:
            # Ours from an earlier run, a concurrent creator's, or planted: checked all the same.
            secret = _read_secret_file(path)
            if secret is not None:
                return secret
            continue
        except OSError as exc:
            raise SystemExit(f"cannot create the secret file {path}: {exc.strerror}") from None
        secret = secrets.token_urlsafe(48)
        try:
            os.write(fd, (secret + "\n").encode("ascii"))  # one write: readers see all or none
            os.fsync(fd)
        finally:
            os.close(fd)
        return secret
    raise SystemExit(f"the secret file {path} keeps disappearing; set {SECRET_ENV} instead")


SIGNING_KEY_ENV = "WALLET_AUTH_SIGNING_KEY"


PREVIOUS_SECRETS_ENV = "WALLET_AUTH_PREVIOUS_SECRETS"


def with_secret(
    keys: KeySet | None, secret: str, previous: Sequence[str] = ()
) -> KeySet | None:
    """The service's token keys: ``keys`` plus its secrets' HS256 keys, which only verify.

    Without ``keys`` the service secret signs (None: ``secret_key`` alone, as in 0.1) and the
    ``previous`` secrets verify, so a secret rotates like a key. With ``keys`` the service secret
    and the ``previous`` ones verify the tokens they signed before; none is ever published.
    """
    if keys is None:
        return None if not previous else KeySet.hmac([secret, *previous])
    known = {k.kid for k in keys.keys}
    older = []
    for value in (secret, *previous):
        key = SigningKey.hmac(value, state="previous")
        if key.kid not in known:
            known.add(key.kid)
            older.append(key)
    return KeySet((*keys.keys, *older), max_age=keys.max_age) if older else keys


def previous_secrets_from_env() -> tuple[str, ...]:
    """``$WALLET_AUTH_PREVIOUS_SECRETS``: earlier service secrets, blank-separated, that verify.

    An environment variable rather than an option: a command line is readable by every user of
    the machine. Each must be as long as a service secret.
    """
    values = tuple(os.environ.get(PREVIOUS_SECRETS_ENV, "").split())
    for value in values:
        if len(value) < _MIN_SECRET_LENGTH:
            raise SystemExit(
                f"{PREVIOUS_SECRETS_ENV} holds a value shorter than {_MIN_SECRET_LENGTH} "
                "characters: list only earlier values of WALLET_AUTH_SECRET, separated by blanks"
            )
    return values


def signing_keys_from_env() -> KeySet | None:
    """The key set of ``$WALLET_AUTH_SIGNING_KEY`` (a key file path), if set; checked as created."""
    path = os.environ.get(SIGNING_KEY_ENV)
    return load_or_create_signing_keys(Path(path)) if path else None


def load_or_create_signing_keys(path: Path) -> KeySet:
    """The signing keys in ``path``; a file with one new ES256 key, 0600, if there is none.

    The file gets the secret file's care: created with ``O_EXCL`` and never through a symlink,
    and used only if it is a regular file owned by this user that no one else can access.
    """
    from .keyfile import MAX_KEY_FILE_SIZE, key_file_text, parse_key_file

    what = "signing-key file"
    remove = f"fix it, or move it away (mv {path} {path}.old) to have a new key generated"
    for _ in range(3):  # bounded: a file deleted between our create and read attempts
        try:
            fd = os.open(path, _SECRET_CREATE_FLAGS, 0o600)
        except FileExistsError:
            try:
                fd = os.open(path, _SECRET_READ_FLAGS)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                    _refuse(path, "it is a symbolic link", remove, what)
                raise SystemExit(f"cannot read the {what} {path}: {exc.strerror}") from None
            try:
                raw = _read_private(path, fd, remove, what, MAX_KEY_FILE_SIZE + 1)
            finally:
                os.close(fd)
            if len(raw) > MAX_KEY_FILE_SIZE:
                _refuse(path, f"it is larger than {MAX_KEY_FILE_SIZE} bytes", remove, what)
            try:
                return parse_key_file(raw.decode("ascii"))
            except (UnicodeDecodeError, ValueError) as exc:
                problem = "it is not ASCII text" if isinstance(exc, UnicodeError) else str(exc)
                _refuse(path, problem, "see docs/keys.md for the format", what)
        except OSError as exc:
            raise SystemExit(f"cannot create the {what} {path}: {exc.strerror}") from None
        keys = KeySet((SigningKey.generate("ES256"),))
        try:
            os.write(fd, key_file_text(keys.keys).encode("ascii"))  # one write: all or none
            os.fsync(fd)
        finally:
            os.close(fd)
        return keys
    raise SystemExit(f"the {what} {path} keeps disappearing")


__all__ = [
    "PREVIOUS_SECRETS_ENV",
    "SECRET_ENV",
    "SECRET_FILE_NAME",
    "SIGNING_KEY_ENV",
    "load_or_create_secret",
    "load_or_create_signing_keys",
    "previous_secrets_from_env",
    "signing_keys_from_env",
    "with_secret",
]
