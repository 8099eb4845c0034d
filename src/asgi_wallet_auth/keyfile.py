"""The signing-key file of ``serve --signing-key``: PEM blocks, each after its ``state:`` line.

::

    # asgi-wallet-auth signing keys (docs/keys.md)
    state: current
    -----BEGIN PRIVATE KEY-----
    ...
    -----END PRIVATE KEY-----
    state: next
    kid: 2026-07
    -----BEGIN PRIVATE KEY-----
    ...

Each block is an unencrypted PKCS#8 private key (ES256 on P-256, or Ed25519) or, for a key that
only verifies (previous, retired), a public key. ``kid:`` is optional (default: the key's RFC 7638
thumbprint). ``python -m asgi_wallet_auth.keyfile new --state next`` prints a new block to append.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from .keys import KEY_STATES, KeySet, KeyState, SigningKey

HEADER = "# asgi-wallet-auth signing keys: see docs/keys.md for the rotation procedure\n"
MAX_KEY_FILE_SIZE = 64 * 1024


def parse_key_file(text: str, *, max_age: int = 300) -> KeySet:
    """The ``KeySet`` a key file describes; ``ValueError`` naming the line at fault."""
    keys: list[SigningKey] = []
    fields: dict[str, str] = {}
    block: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if block is not None:
            block.append(stripped)
            if stripped.startswith("-----END "):
                state = fields.pop("state", None)
                if state not in KEY_STATES:
                    raise ValueError(
                        f"line {number}: the key ending here needs a 'state:' line before it "
                        f"({', '.join(KEY_STATES)})"
                    )
                try:
                    key = SigningKey.from_pem(
                        "\n".join(block) + "\n", state=state, kid=fields.pop("kid", None)
                    )
                except ValueError as exc:
                    raise ValueError(f"line {number}: {exc}") from None
                keys.append(key)
                fields, block = {}, None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("-----BEGIN "):
            block = [stripped]
            continue
        name, colon, value = stripped.partition(":")
        if not colon or name.strip() not in ("state", "kid") or name.strip() in fields:
            raise ValueError(
                f"line {number}: expected 'state: <{'|'.join(KEY_STATES)}>', 'kid: <id>' or a "
                "PEM block"
            )
        fields[name.strip()] = value.strip()
    if block is not None or fields:
        raise ValueError("the key file ends inside a key: every 'state:' line needs its PEM block")
    if not keys:
        raise ValueError("the key file holds no key")
    return KeySet(tuple(keys), max_age=max_age)


def key_block(key: SigningKey) -> str:
    """One key as the file writes it: its state, its kid, and its private (else public) PEM."""
    pem = key.private_pem() if key.private_key is not None else key.public_pem()
    return f"state: {key.state}\nkid: {key.kid}\n{pem.decode('ascii')}"


def key_file_text(keys: Iterable[SigningKey]) -> str:
    """A whole key file holding ``keys``."""
    return HEADER + "".join(key_block(k) for k in keys)


def main(argv: Sequence[str] | None = None) -> int:
    """``new``: print a new key block; ``show PATH``: list a file's kids and states (public)."""
    parser = argparse.ArgumentParser(prog="python -m asgi_wallet_auth.keyfile")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a new key block to append to a key file")
    new.add_argument("--algorithm", choices=["ES256", "Ed25519"], default="ES256")
    new.add_argument("--state", choices=list(KEY_STATES), default="next")
    show = commands.add_parser("show", help="list the keys of a key file (never their secrets)")
    show.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "new":
        state: KeyState = args.state
        sys.stdout.write(key_block(SigningKey.generate(args.algorithm, state=state)))
        return 0
    from pathlib import Path

    try:
        keys = parse_key_file(Path(args.path).read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"cannot use {args.path}: {exc}", file=sys.stderr)
        return 2
    for key in keys.keys:
        kind = "private" if key.can_sign else "public"
        print(f"{key.state:<9} {key.algorithm:<8} {kind:<8} {key.kid}")
    return 0


__all__ = ["MAX_KEY_FILE_SIZE", "key_block", "key_file_text", "main", "parse_key_file"]

if __name__ == "__main__":
    sys.exit(main())
