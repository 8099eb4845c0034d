"""ReCaps (ERC-5573): capabilities a wallet delegates inside its EIP-4361 sign-in message.

A ReCap is the final ``Resources`` entry, ``urn:recap:`` + unpadded base64url of a JSON object
``{"att": {resource URI: {"namespace/ability": [caveat objects]}}, "prf": [CIDs]}``, and the
message's statement must end with the ERC's human-readable translation of it, so the wallet showed
the user what they grant. Everything is checked strictly (fail closed): one ReCap at most and only
last, canonical base64url, JSON without duplicate keys, every object's keys in the ERC's order,
ability strings, caveats as objects, CIDs well formed, the statement's suffix; anything else is a
400 (``InvalidCapabilities``). What passes is carried in the token (claim ``recap``) and read back
as ``request.auth.capabilities`` and ``request.user.capabilities``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .base58 import b58decode
from .errors import InvalidCapabilities
from .grammar import is_uri

RECAP_PREFIX = "urn:recap:"
PREAMBLE = "I further authorize the stated URI to perform the following actions on my behalf:"
#: The largest ReCap (as canonical JSON) a token carries: tokens must stay under 4 KiB.
MAX_CLAIM_BYTES = 2048
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_ABILITY_RE = re.compile(r"[a-zA-Z0-9.*_+-]+/[a-zA-Z0-9.*_+-]+")
_BASE32_RE = re.compile(r"b[a-z2-7]+")
_BASE58_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")
_CANONICAL = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _js_order(key: str) -> bytes:
    # JavaScript's Array.prototype.sort() compares UTF-16 code units: so does this key.
    return key.encode("utf-16-be", "surrogatepass")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidCapabilities("ReCap JSON has a duplicate key")
    if keys != sorted(keys, key=_js_order):
        raise InvalidCapabilities("ReCap JSON keys are not in lexicographic order")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise InvalidCapabilities("ReCap JSON holds NaN or Infinity")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(at, min(at + 9, len(data))):
        value |= (data[index] & 0x7F) << shift
        if not data[index] & 0x80:
            return value, index + 1
        shift += 7
    raise ValueError("bad varint")


def _check_multihash(data: bytes, at: int) -> None:
    _code, at = _varint(data, at)
    size, at = _varint(data, at)
    if size == 0 or len(data) - at != size:
        raise ValueError("multihash length")


def check_cid(text: object) -> str:
    """``text`` if it is a CID (v0 base58, or v1 in multibase base32/base58btc); else 400."""
    try:
        if not isinstance(text, str) or not 2 <= len(text) <= 256:
            raise ValueError("not a string of CID length")
        if text.startswith("Qm") and len(text) == 46 and _BASE58_RE.fullmatch(text):
            raw = b58decode(text)  # CIDv0: a bare sha2-256 multihash
            if raw[:2] != b"\x12\x20" or len(raw) != 34:
                raise ValueError("CIDv0 is not a sha2-256 multihash")
            return text
        if _BASE32_RE.fullmatch(text):
            body = text[1:].upper()
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        elif text[0] == "z" and _BASE58_RE.fullmatch(text[1:]):
            raw = b58decode(text[1:])
        else:
            raise ValueError("unknown multibase")
        if not raw or raw[0] != 1:
            raise ValueError("not CID version 1")
        _codec, at = _varint(raw, 1)
        _check_multihash(raw, at)
    except (ValueError, TypeError, IndexError):
        raise InvalidCapabilities("ReCap proof is not a CID") from None
    return text


def _decode_payload(encoded: str) -> Any:
    if _B64URL_RE.fullmatch(encoded) is None or len(encoded) % 4 == 1:
        raise InvalidCapabilities("ReCap URI is not unpadded base64url")
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    # One spelling per payload: unused trailing bits must be zero.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
        raise InvalidCapabilities("ReCap URI is not canonical base64url")
    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        # InvalidCapabilities is a ValueError too: keep its own message.
        raise InvalidCapabilities("ReCap payload is not JSON") from None


@dataclass(frozen=True, slots=True)
class ReCap:
    """A checked ReCap: ``att`` (resource -> ability -> caveats) and ``prf`` (CIDs)."""

    att: Mapping[str, Mapping[str, tuple[Mapping[str, Any], ...]]]
    prf: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: object) -> ReCap:
        """Check a decoded ReCap object (``{"att": ..., "prf": [...]}``); 400 if malformed."""
        if not isinstance(data, dict) or set(data) - {"att", "prf"} or "att" not in data:
            raise InvalidCapabilities("a ReCap is an object with att (and optionally prf)")
        att = data["att"]
        if not isinstance(att, dict) or not att:
            raise InvalidCapabilities("ReCap att must be a non-empty object")
        checked: dict[str, Mapping[str, tuple[Mapping[str, Any], ...]]] = {}
        for resource, abilities in att.items():
            if not is_uri(resource):
                raise InvalidCapabilities("a ReCap resource is not a URI")
            if not isinstance(abilities, dict) or not abilities:
                raise InvalidCapabilities("a ReCap resource needs a non-empty object of abilities")
            entry: dict[str, tuple[Mapping[str, Any], ...]] = {}
            for ability, caveats in abilities.items():
                if _ABILITY_RE.fullmatch(ability) is None:
                    raise InvalidCapabilities("a ReCap ability is not namespace/name")
                if not isinstance(caveats, list) or any(not isinstance(c, dict) for c in caveats):
                    raise InvalidCapabilities("ReCap caveats must be a list of objects")
                entry[ability] = tuple(MappingProxyType(c) for c in caveats)
            checked[resource] = MappingProxyType(entry)
        proofs = data.get("prf", [])
        if not isinstance(proofs, list):
            raise InvalidCapabilities("ReCap prf must be a list of CIDs")
        return cls(MappingProxyType(checked), tuple(check_cid(p) for p in proofs))

    @classmethod
    def decode(cls, uri: str) -> ReCap:
        """The ReCap of a ``urn:recap:`` URI; 400 if it is not one."""
        if not isinstance(uri, str) or not uri.startswith(RECAP_PREFIX):
            raise InvalidCapabilities("not a urn:recap: URI")
        return cls.from_json(_decode_payload(uri[len(RECAP_PREFIX) :]))

    def to_json(self) -> dict[str, Any]:
        """The ReCap object as plain JSON values (what the token's ``recap`` claim holds)."""
        return {
            "att": {
                r: {a: [dict(c) for c in cs] for a, cs in abilities.items()}
                for r, abilities in self.att.items()
            },
            "prf": list(self.prf),
        }

    def encode(self) -> str:
        """The ``urn:recap:`` URI of this ReCap (keys in the ERC's order)."""
        text = json.dumps(_sorted(self.to_json()), ensure_ascii=False, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")
        return RECAP_PREFIX + payload

    def statement(self) -> str:
        """ERC-5573's translation: the text the message's statement must end with."""
        parts = [PREAMBLE]
        number = 1
        for resource in sorted(self.att, key=_js_order):
            groups: dict[str, list[str]] = {}
            for ability in sorted(self.att[resource], key=_js_order):
                namespace, name = ability.split("/", 1)
                groups.setdefault(namespace, []).append(name)
            for namespace, names in groups.items():
                listed = ", ".join(f"'{n}'" for n in names)
                parts.append(f"({number}) '{namespace}': {listed} for '{resource}'.")
                number += 1
        return " ".join(parts)

    def allows(self, resource: str, ability: str) -> bool:
        """Whether ``ability`` on ``resource`` is granted with at least one caveat object (an
        empty caveat list grants nothing, as the ERC says); exact strings, no wildcards."""
        return bool(self.att.get(resource, {}).get(ability))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Every granted (resource, ability) pair."""
        for resource, abilities in self.att.items():
            for ability, caveats in abilities.items():
                if caveats:
                    yield resource, ability


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=_js_order)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def recap_of(statement: str | None, resources: tuple[str, ...] | None) -> ReCap | None:
    """The ReCap a sign-in message carries (None without one), checked against its statement.

    At most one ``urn:recap:`` resource, in the final place; the statement must be its
    translation, or end with a space and the translation. Refusals are 400.
    """
    if not resources:
        return None
    flagged = [r for r in resources if r.startswith(RECAP_PREFIX)]
    if not flagged:
        return None
    if len(flagged) > 1 or not resources[-1].startswith(RECAP_PREFIX):
        raise InvalidCapabilities("a message carries at most one ReCap, as its last resource")
    recap = ReCap.decode(resources[-1])
    translated = recap.statement()
    if statement is None or not (statement == translated or statement.endswith(" " + translated)):
        raise InvalidCapabilities("the statement does not end with the ReCap's translation")
    return recap


def recap_claim(recap: ReCap) -> dict[str, Any]:
    """The token claim of ``recap``; 400 when it is too large for a token to carry."""
    claim = recap.to_json()
    if len(_CANONICAL.encode(claim).encode("utf-8")) > MAX_CLAIM_BYTES:
        raise InvalidCapabilities(
            f"the ReCap is larger than the {MAX_CLAIM_BYTES} bytes a token carries"
        )
    return claim


def recap_from_claims(claims: Mapping[str, Any]) -> ReCap | None:
    """The ReCap of a verified token's claims (None without one, or if it does not check)."""
    value = claims.get("recap")
    if value is None:
        return None
    try:
        return ReCap.from_json(value)
    except InvalidCapabilities:
        return None


__all__ = [
    "MAX_CLAIM_BYTES",
    "PREAMBLE",
    "RECAP_PREFIX",
    "ReCap",
    "check_cid",
    "recap_claim",
    "recap_from_claims",
    "recap_of",
]
