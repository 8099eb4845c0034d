"""Strict SIWS (Sign In With Solana) messages: parse, render and validate.

The message is the one the ``solana:signIn`` wallet-standard feature has wallets build (Phantom's
sign-in-with-solana ABNF, ``createSignInMessageText`` of ``@solana/wallet-standard-util``): the
``<domain> wants you to sign in with your Solana account:`` line, the base58 address, an optional
statement, then the optional fields URI, Version, Chain ID, Nonce, Issued At, Expiration Time, Not
Before, Request ID and Resources (docs/solana.md shows one). A wallet writes only the fields the
app asked for; ``SiwsMessage.validate`` then requires the ones a login needs. The fields may come
in any order, because wallets do not all write the ABNF's, each at most once. Everything else is as
strict as ``siwe``, whose RFC 3339 and RFC 3986 checks this module uses: LF line endings, printable
ASCII, no trailing line break, no unknown line, an address that is the base58 text of 32 bytes, a
statement that cannot be mistaken for a field, at most ``MAX_MESSAGE_LENGTH`` characters.
``str(message)`` renders the message back byte for byte, field order included.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from . import signin
from .base58 import decode_fixed
from .errors import InvalidMessage, MessageRejected
from .grammar import (
    BAD_PERCENT_RE,
    FORBIDDEN_CHAR_RE,
    NONCE_RE,
    REQUEST_ID_RE,
    STATEMENT_RE,
    check_seconds,
    epoch,
    is_authority,
    is_uri,
)
from .siwe import MAX_MESSAGE_LENGTH

#: Solana clusters a message's ``Chain ID`` may name, in the order a default is chosen from.
CLUSTERS = ("mainnet", "devnet", "testnet", "localnet")
#: Every accepted ``Chain ID`` text and the cluster it names (the bare and ``solana:`` forms).
CHAIN_IDS = {**{c: c for c in CLUSTERS}, **{f"solana:{c}": c for c in CLUSTERS}}

_HEADER = " wants you to sign in with your Solana account:"
_RESOURCES_LINE = "Resources:"
_RESOURCE_TAG = "- "
#: The advanced fields in the ABNF's order, with the name each goes by in the text.
_FIELDS = (
    ("uri", "URI"),
    ("version", "Version"),
    ("chain_id", "Chain ID"),
    ("nonce", "Nonce"),
    ("issued_at", "Issued At"),
    ("expiration_time", "Expiration Time"),
    ("not_before", "Not Before"),
    ("request_id", "Request ID"),
    ("resources", "Resources"),
)
_ORDER = tuple(name for name, _ in _FIELDS)
_LABELS = dict(_FIELDS)
#: ``Tag`` of a ``Tag: value`` line -> attribute ("Resources:" has no value and is apart).
_BY_TAG = {label: name for name, label in _FIELDS if name != "resources"}
#: What a login needs besides domain and address (EIP-4361's required set).
REQUIRED_FOR_LOGIN = ("uri", "version", "chain_id", "nonce", "issued_at")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


#: ``from_fields`` keys: every attribute in snake_case and in ``SolanaSignInInput``'s camelCase.
_KEYS = {
    key: name
    for name in ("domain", "address", "statement", *_ORDER)
    for key in (name, _camel(name))
}


class SiwsError(InvalidMessage, ValueError):
    """A sign-in message (text or fields) that does not conform to SIWS; HTTP 400, code 40004."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(None if detail is None else f"invalid sign-in message: {detail}")


def _time(text: str, label: str) -> float:
    """Epoch seconds of an RFC 3339 field, refused as a ``SiwsError`` naming ``label``."""
    return epoch(text, label, SiwsError)


def _is_field_line(line: str) -> bool:
    """True for a line that starts an advanced field (so it can never be a statement)."""
    if line == _RESOURCES_LINE:
        return True
    tag, colon, _ = line.partition(": ")
    return bool(colon) and tag in _BY_TAG


def _text(value: object, label: str) -> str:
    if not isinstance(value, str):
        raise SiwsError(f"{label} must be a string")
    if not value:
        raise SiwsError(f"{label} must not be empty (leave the field out instead)")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SiwsMessage:
    """A SIWS sign-in message; every field is checked on construction.

    ``field_order`` is the order the advanced fields were written in when it is not the ABNF's
    (None: the ABNF's order); it only changes how the message renders.
    """

    domain: str
    address: str
    statement: str | None = None
    uri: str | None = None
    version: str | None = None
    chain_id: str | None = None
    nonce: str | None = field(default=None, repr=False)  # the login secret: kept out of logs
    issued_at: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None
    field_order: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Check every field against the SIWS ABNF; ``SiwsError`` names the first bad one."""
        if not is_authority(_text(self.domain, "domain"), require_host=True):
            raise SiwsError("domain is not an RFC 3986 authority (host[:port])")
        if decode_fixed(_text(self.address, "address"), 32) is None:
            raise SiwsError("address is not the base58 text of a 32-byte public key")
        if self.statement is not None:
            statement = _text(self.statement, "statement")
            if "\n" in statement:
                raise SiwsError("statement must not contain a line break")
            if STATEMENT_RE.fullmatch(statement) is None:
                raise SiwsError(
                    "statement must be printable ASCII without '%', '\"' or other characters "
                    "outside RFC 3986 reserved/unreserved and space"
                )
            if _is_field_line(statement):
                raise SiwsError("statement must not start like a field ('URI: ', 'Nonce: ', ...)")
        if self.uri is not None and not is_uri(_text(self.uri, "URI")):
            raise SiwsError("URI is not an RFC 3986 URI")
        if self.version is not None and self.version != "1":
            raise SiwsError("Version must be 1")
        if self.chain_id is not None and (
            not isinstance(self.chain_id, str) or self.chain_id not in CHAIN_IDS
        ):
            raise SiwsError(
                "Chain ID must be mainnet, devnet, testnet or localnet, bare or with 'solana:'"
            )
        if self.nonce is not None and NONCE_RE.fullmatch(_text(self.nonce, "Nonce")) is None:
            raise SiwsError("Nonce must be at least 8 ASCII letters or digits")
        for name in ("issued_at", "expiration_time", "not_before"):
            value = getattr(self, name)
            if value is not None:
                _time(_text(value, _LABELS[name]), _LABELS[name])
        if self.request_id is not None:
            request_id = _text(self.request_id, "Request ID")
            if REQUEST_ID_RE.fullmatch(request_id) is None or (
                "%" in request_id and BAD_PERCENT_RE.search(request_id) is not None
            ):
                raise SiwsError("Request ID must be RFC 3986 path characters (pchar)")
        self._check_resources()
        self._check_order()
        if self._rendered_length() > MAX_MESSAGE_LENGTH:
            raise SiwsError(f"the rendered message is longer than {MAX_MESSAGE_LENGTH} characters")

    def _check_resources(self) -> None:
        resources = self.resources
        if resources is None:
            return
        if not isinstance(resources, (tuple, list)):
            raise SiwsError("resources must be a list of URIs")
        for resource in resources:
            if not isinstance(resource, str) or not is_uri(resource):
                raise SiwsError("a resource is not an RFC 3986 URI")
        if not isinstance(resources, tuple):
            object.__setattr__(self, "resources", tuple(resources))

    def _check_order(self) -> None:
        order = self.field_order
        if order is None:
            return
        if not isinstance(order, (tuple, list)) or not all(isinstance(n, str) for n in order):
            raise SiwsError("field_order must be a list of field names")
        present = [name for name in _ORDER if getattr(self, name) is not None]
        if sorted(order) != sorted(present):
            raise SiwsError("field_order must name each present field exactly once")
        # The ABNF's own order is stored as None, so equal messages compare equal.
        object.__setattr__(self, "field_order", None if list(order) == present else tuple(order))

    @property
    def cluster(self) -> str | None:
        """The cluster ``Chain ID`` names, without the ``solana:`` prefix (None if absent)."""
        return None if self.chain_id is None else CHAIN_IDS[self.chain_id]

    def fields(self) -> tuple[str, ...]:
        """The present advanced fields, in the order they are written."""
        if self.field_order is not None:
            return self.field_order
        return tuple(name for name in _ORDER if getattr(self, name) is not None)

    def _rendered_length(self) -> int:
        """``len(str(self))``, computed without rendering."""
        size = len(self.domain) + len(_HEADER) + 1 + len(self.address)
        if self.statement is not None:
            size += 2 + len(self.statement)
        names = self.fields()
        if names:
            size += 1
        for name in names:
            if name == "resources":
                assert self.resources is not None
                size += 1 + len(_RESOURCES_LINE)
                size += sum(1 + len(_RESOURCE_TAG) + len(r) for r in self.resources)
            else:
                size += 1 + len(_LABELS[name]) + 2 + len(getattr(self, name))
        return size

    def __str__(self) -> str:
        """The SIWS text of this message: exactly what the wallet signs."""
        lines = [self.domain + _HEADER, self.address]
        if self.statement is not None:
            lines += ("", self.statement)
        names = self.fields()
        if names:
            lines.append("")
        for name in names:
            if name == "resources":
                assert self.resources is not None
                lines.append(_RESOURCES_LINE)
                lines.extend(_RESOURCE_TAG + resource for resource in self.resources)
            else:
                lines.append(f"{_LABELS[name]}: {getattr(self, name)}")
        return "\n".join(lines)

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> SiwsMessage:
        """Build from a ``SolanaSignInInput``-like mapping (camelCase or snake_case keys).

        As ``createSignInMessageText`` does, an empty string or a missing key leaves the field
        out; ``domain`` and ``address`` are required.
        """
        if not isinstance(fields, Mapping):
            raise SiwsError("fields must be a mapping")
        values: dict[str, object] = {}
        for key, value in fields.items():
            name = _KEYS.get(key) if isinstance(key, str) else None
            if name is None:
                raise SiwsError("unknown field name")
            if name in values:
                raise SiwsError(f"field {name} is given twice (snake_case and camelCase)")
            values[name] = value
        for name in ("domain", "address"):
            if not values.get(name):
                raise SiwsError(f"field {name} is required")
        kept = {k: v for k, v in values.items() if v is not None and v != ""}
        return cls(**kept)  # type: ignore[arg-type]  # every value is checked in __post_init__

    @classmethod
    def parse(cls, text: str) -> SiwsMessage:
        """Parse a SIWS message, refusing anything that does not conform exactly."""
        if not isinstance(text, str):
            raise SiwsError("the message must be a string")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise SiwsError(f"the message is longer than {MAX_MESSAGE_LENGTH} characters")
        if not text.isascii() or not text.replace("\n", "").isprintable():
            bad = FORBIDDEN_CHAR_RE.search(text)
            if bad is not None:
                where = text.count("\n", 0, bad.start()) + 1
                if bad.group() == "\r":
                    raise SiwsError(f"line {where} ends with CR: lines must end with LF only")
                raise SiwsError(f"line {where} contains a control or non-ASCII character")

        lines = text.split("\n")
        count = len(lines)
        if not lines[0].endswith(_HEADER):
            raise SiwsError(f"line 1 must be '<domain>{_HEADER}'")
        if count < 2:
            raise SiwsError("line 2 must be the address")
        values: dict[str, object] = {"domain": lines[0][: -len(_HEADER)], "address": lines[1]}
        index = _blank_then_line(lines, 2)
        if index is not None and not _is_field_line(lines[index]):
            values["statement"] = lines[index]
            index = _blank_then_line(lines, index + 1)
            if index is not None and not _is_field_line(lines[index]):
                raise SiwsError(f"line {index + 1} must be a field (a statement is one line)")
        order: list[str] = []
        while index is not None and index < count:
            line = lines[index]
            index += 1
            if line == _RESOURCES_LINE:
                name = "resources"
                start = index
                while index < count and lines[index].startswith(_RESOURCE_TAG):
                    index += 1
                value: object = tuple(r[len(_RESOURCE_TAG) :] for r in lines[start:index])
            else:
                tag, colon, text_value = line.partition(": ")
                found = _BY_TAG.get(tag) if colon else None
                if found is None:
                    if not line and index == count:
                        raise SiwsError("the message must not end with a line break")
                    raise SiwsError(f"line {index} is not a SIWS field")
                name, value = found, text_value
            if name in values:
                raise SiwsError(f"field {_LABELS[name]} appears more than once")
            values[name] = value
            order.append(name)
        return cls(**values, field_order=tuple(order))  # type: ignore[arg-type]

    def validate(
        self,
        *,
        domain: str,
        uri: str,
        nonce: str,
        address: str,
        chain_ids: Collection[str] | None,
        now: float,
        skew: float = 60.0,
    ) -> None:
        """Refuse unless this message is for this service, wallet and nonce, and valid at ``now``.

        As ``SiweMessage.validate`` does, with the same exact comparisons and time rules; in
        addition a field a login needs (``REQUIRED_FOR_LOGIN``) that the message leaves out is a
        ``MessageRejected``. ``chain_ids`` are cluster names (``mainnet``, ...); None allows any.
        """
        signin.check_arguments(domain=domain, uri=uri, nonce=nonce, address=address)
        if chain_ids is not None and isinstance(chain_ids, (str, bytes)):
            raise TypeError("chain_ids must be None or a collection of cluster names")
        check_seconds("now", now, allow_negative=True)
        check_seconds("skew", skew, allow_negative=False)

        for name in REQUIRED_FOR_LOGIN:
            if getattr(self, name) is None:
                raise MessageRejected(f"sign-in message has no {_LABELS[name]} field")
        assert self.nonce is not None
        signin.check_binding(
            domain=self.domain,
            uri=self.uri,
            nonce=self.nonce,
            address=self.address,
            expected_domain=domain,
            expected_uri=uri,
            expected_nonce=nonce,
            expected_address=address,
        )
        if chain_ids is not None and self.cluster not in chain_ids:
            raise MessageRejected("sign-in message chain id is not allowed")
        signin.check_window(
            expires=self._time("expiration_time"),
            not_before=self._time("not_before"),
            now=now,
            skew=skew,
        )

    def check_issuance(self, *, now: float, skew: float = 60.0) -> None:
        """Refuse a message issued more than ``skew`` in the future or with an empty window.

        The same rule as ``SiweMessage.check_issuance``; a message without ``Issued At`` is
        refused by ``validate`` already, so here it only has its window checked.
        """
        signin.check_issuance(
            issued_at=self._time("issued_at"),
            expires=self._time("expiration_time"),
            not_before=self._time("not_before"),
            now=now,
            skew=skew,
        )

    def _time(self, name: str) -> float | None:
        """Epoch seconds of an optional time field, by its attribute name."""
        text = getattr(self, name)
        return None if text is None else _time(text, _LABELS[name])


def _blank_then_line(lines: list[str], index: int) -> int | None:
    """After the address or statement: None at the end, else the index past one blank line."""
    if index >= len(lines):
        return None
    if lines[index]:
        raise SiwsError(f"line {index + 1} must be empty")
    if index + 1 >= len(lines):
        raise SiwsError("the message must not end with a line break")
    if not lines[index + 1]:
        raise SiwsError(f"line {index + 2} must not be empty (one blank line between parts)")
    return index + 1


__all__ = [
    "CHAIN_IDS",
    "CLUSTERS",
    "MAX_MESSAGE_LENGTH",
    "REQUIRED_FOR_LOGIN",
    "SiwsError",
    "SiwsMessage",
]
