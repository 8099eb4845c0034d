"""Base58 (the Bitcoin alphabet, as Solana uses it) with one spelling per value.

Each leading ``1`` stands for one leading zero byte and the rest is the big-endian number in base
58, so every string over the alphabet decodes to exactly one byte string and encodes back to
itself: there is no padding, case folding or whitespace to normalise. ``decode_fixed`` adds the
length rule that addresses and signatures need, so that a 31-byte value is never silently
left-padded into a 32-byte key (which would give one key two spellings).
"""

from __future__ import annotations

import re

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(ALPHABET)}
_TEXT_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]*")
_POWERS = [58**n for n in range(11)]


def b58encode(data: bytes) -> str:
    """The base58 text of ``data`` (``""`` for no bytes)."""
    body = data.lstrip(b"\0")
    number = int.from_bytes(body, "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(ALPHABET[digit])
    return "1" * (len(data) - len(body)) + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """The bytes of base58 ``text``; ``ValueError`` for a character outside the alphabet."""
    if _TEXT_RE.fullmatch(text) is None:
        raise ValueError("not base58 text")
    body = text.lstrip("1")
    number = 0
    # Ten digits at a time in machine-sized integers, then one big multiply per group: the
    # per-digit work stays small-int arithmetic, about 5x fewer big-number steps.
    for start in range(0, len(body), 10):
        group = body[start : start + 10]
        value = 0
        for char in group:
            value = value * 58 + _INDEX[char]
        number = number * _POWERS[len(group)] + value
    return b"\0" * (len(text) - len(body)) + number.to_bytes((number.bit_length() + 7) // 8, "big")


def max_length(size: int) -> int:
    """The longest base58 text of ``size`` bytes (44 for 32 bytes, 88 for 64)."""
    known = _MAX_LENGTHS.get(size)
    return known if known is not None else len(b58encode(b"\xff" * size))


_MAX_LENGTHS = {size: len(b58encode(b"\xff" * size)) for size in (32, 64)}


def decode_fixed(text: object, size: int) -> bytes | None:
    """The ``size`` bytes that ``text`` spells in base58, or None for anything else.

    The length is checked on the text before any arithmetic, so an over-long input costs nothing.
    """
    if not isinstance(text, str) or len(text) > max_length(size) or not text:
        return None
    try:
        data = b58decode(text)
    except ValueError:
        return None
    return data if len(data) == size else None


__all__ = ["ALPHABET", "b58decode", "b58encode", "decode_fixed", "max_length"]
