"""Strict EIP-4361 (Sign-In with Ethereum) messages: parse, render and validate.

The parser is hand-written over precompiled regular expressions and follows the ABNF of
EIP-4361 (with RFC 3986 for the domain and the URIs and RFC 3339 for the timestamps) exactly:
LF line endings only, every field in its place, no trailing newline, no control or non-ASCII
character, and an address in its EIP-55 checksummed form. ``str(message)`` renders the message
back byte for byte, so a signature is always checked over exactly the text the wallet showed.

Where the ABNF leaves room, this module chooses the stricter reading (each choice is refused
with a ``SiweError`` that names the field):

* an all-lowercase or all-uppercase address is refused: the message must carry the EIP-55 form;
* ``Chain ID`` must be a positive integer below 2**64 without leading zeros, so that it
  renders back to the same digits;
* an empty statement (a blank line where the statement goes) is refused: common libraries
  render an empty statement as if there were none, so its signed text would be ambiguous;
* RFC 3339 leap seconds (``:60``) are refused, as are impossible dates such as February 30;
* a sign-in message is capped at ``MAX_MESSAGE_LENGTH`` characters.

Validation (``SiweMessage.validate``) takes every binding check as a required keyword argument
so that none can be skipped by omission; ``SiweMessage.verify`` adds the EIP-191 signature check.
Error messages name the field or check that failed and never echo client input.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from . import signin
from .errors import (
    InvalidSignatureFormat,
    MessageRejected,
    SignatureMismatch,
    WalletAuthError,
)
from .grammar import (
    BAD_PERCENT_RE,
    NONCE_RE,
    REQUEST_ID_RE,
    SCHEME_RE,
    STATEMENT_RE,
    check_seconds,
    epoch,
    format_rfc3339,
    is_authority,
    is_uri,
)
from .signatures import recover_address, to_checksum_address
from .siwe_text import (
    _CHAIN_ID_TAG,
    _EXPIRATION_TAG,
    _HEADER,
    _ISSUED_AT_TAG,
    _NONCE_TAG,
    _NOT_BEFORE_TAG,
    _REQUEST_ID_TAG,
    _RESOURCE_TAG,
    _RESOURCES_LINE,
    _URI_TAG,
    _VERSION_TAG,
    MAX_CHAIN_ID,
    MAX_MESSAGE_LENGTH,
    SiweError,
    read_message,
)


def _message_epoch(text: object, label: str) -> float:
    return epoch(text, label, SiweError)


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 date-time (``Z`` or offset, optional fraction) to UTC epoch seconds."""
    return _message_epoch(text, "date-time")


_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")


# -- the message ----------------------------------------------------------------------------

_FIELD_NAMES = {
    "scheme": "scheme",
    "domain": "domain",
    "address": "address",
    "statement": "statement",
    "uri": "uri",
    "version": "version",
    "chain_id": "chain_id",
    "chainId": "chain_id",
    "nonce": "nonce",
    "issued_at": "issued_at",
    "issuedAt": "issued_at",
    "expiration_time": "expiration_time",
    "expirationTime": "expiration_time",
    "not_before": "not_before",
    "notBefore": "not_before",
    "request_id": "request_id",
    "requestId": "request_id",
    "resources": "resources",
}
_REQUIRED = ("domain", "address", "uri", "version", "chain_id", "nonce", "issued_at")
# Characters of the fixed text around the fields, for the length cap on constructed messages.
_FIXED_LENGTH = (
    len(_HEADER)
    + 3
    + len(_URI_TAG)
    + len(_VERSION_TAG)
    + len(_CHAIN_ID_TAG)
    + len(_NONCE_TAG)
    + len(_ISSUED_AT_TAG)
    + 5
)


def _need_str(value: object, label: str) -> str:
    if not isinstance(value, str):
        raise SiweError(f"{label} must be a string")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SiweMessage:
    """An EIP-4361 sign-in message; every field is checked on construction."""

    scheme: str | None = None
    domain: str
    address: str
    statement: str | None = None
    uri: str
    version: str
    chain_id: int
    nonce: str = field(repr=False)  # often the login secret: kept out of logs
    issued_at: str
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Check every field against the EIP-4361 ABNF; ``SiweError`` names the first bad one."""
        if self.scheme is not None and (
            not isinstance(self.scheme, str) or SCHEME_RE.fullmatch(self.scheme) is None
        ):
            raise SiweError("scheme is not an RFC 3986 URI scheme")
        if not _need_str(self.domain, "domain"):
            raise SiweError("domain is empty")
        if not is_authority(self.domain, require_host=True):
            raise SiweError("domain is not an RFC 3986 authority (host[:port])")
        address = _need_str(self.address, "address")
        if _ADDRESS_RE.fullmatch(address) is None:
            raise SiweError("address is not 0x followed by 40 hex digits")
        if to_checksum_address(address[2:]) != address:
            raise SiweError("address is not in its EIP-55 checksummed form")
        if self.statement is not None:
            if not isinstance(self.statement, str):
                raise SiweError("statement must be a string")
            if STATEMENT_RE.fullmatch(self.statement) is None:
                if "\n" in self.statement:
                    raise SiweError("statement must not contain a line break")
                raise SiweError(
                    "statement must be non-empty printable ASCII without '%', '\"' or "
                    "other characters outside RFC 3986 reserved/unreserved and space"
                )
        if not is_uri(_need_str(self.uri, "uri")):
            raise SiweError("URI is not an RFC 3986 URI")
        if self.version != "1":
            raise SiweError("Version must be 1")
        chain_id = self.chain_id
        if isinstance(chain_id, bool) or not isinstance(chain_id, int):
            raise SiweError("Chain ID must be an integer")
        if not 0 < chain_id <= MAX_CHAIN_ID:
            raise SiweError("Chain ID must be between 1 and 2**64 - 1")
        if NONCE_RE.fullmatch(_need_str(self.nonce, "nonce")) is None:
            raise SiweError("Nonce must be at least 8 ASCII letters or digits")
        _message_epoch(self.issued_at, "Issued At")
        if self.expiration_time is not None:
            _message_epoch(self.expiration_time, "Expiration Time")
        if self.not_before is not None:
            _message_epoch(self.not_before, "Not Before")
        if self.request_id is not None and (
            not isinstance(self.request_id, str)
            or REQUEST_ID_RE.fullmatch(self.request_id) is None
            or ("%" in self.request_id and BAD_PERCENT_RE.search(self.request_id) is not None)
        ):
            raise SiweError("Request ID must be RFC 3986 path characters (pchar)")
        resources = self.resources
        if resources is not None:
            if not isinstance(resources, (tuple, list)):
                raise SiweError("resources must be a list of URIs")
            for resource in resources:
                if not isinstance(resource, str) or not is_uri(resource):
                    raise SiweError("a resource is not an RFC 3986 URI")
            if not isinstance(resources, tuple):
                object.__setattr__(self, "resources", tuple(resources))
        if self._rendered_length() > MAX_MESSAGE_LENGTH:
            raise SiweError(f"the rendered message is longer than {MAX_MESSAGE_LENGTH} characters")

    def _rendered_length(self) -> int:
        """``len(str(self))``, computed without rendering."""
        size = (
            _FIXED_LENGTH
            + len(self.domain)
            + len(self.address)
            + len(self.uri)
            + len(self.version)
            + len(str(self.chain_id))
            + len(self.nonce)
            + len(self.issued_at)
        )
        if self.scheme is not None:
            size += len(self.scheme) + 3
        if self.statement is not None:
            size += len(self.statement) + 1
        if self.expiration_time is not None:
            size += 1 + len(_EXPIRATION_TAG) + len(self.expiration_time)
        if self.not_before is not None:
            size += 1 + len(_NOT_BEFORE_TAG) + len(self.not_before)
        if self.request_id is not None:
            size += 1 + len(_REQUEST_ID_TAG) + len(self.request_id)
        if self.resources is not None:
            size += 1 + len(_RESOURCES_LINE)
            size += sum(1 + len(_RESOURCE_TAG) + len(r) for r in self.resources)
        return size

    def __str__(self) -> str:
        """The EIP-4361 text of this message: exactly what the wallet signs."""
        origin = self.domain if self.scheme is None else f"{self.scheme}://{self.domain}"
        lines = [origin + _HEADER, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines.append("")
        lines.append(_URI_TAG + self.uri)
        lines.append(_VERSION_TAG + self.version)
        lines.append(_CHAIN_ID_TAG + str(self.chain_id))
        lines.append(_NONCE_TAG + self.nonce)
        lines.append(_ISSUED_AT_TAG + self.issued_at)
        if self.expiration_time is not None:
            lines.append(_EXPIRATION_TAG + self.expiration_time)
        if self.not_before is not None:
            lines.append(_NOT_BEFORE_TAG + self.not_before)
        if self.request_id is not None:
            lines.append(_REQUEST_ID_TAG + self.request_id)
        if self.resources is not None:
            lines.append(_RESOURCES_LINE)
            lines.extend(_RESOURCE_TAG + resource for resource in self.resources)
        return "\n".join(lines)

    @classmethod
    def from_fields(cls, fields: Mapping[str, object]) -> SiweMessage:
        """Build from a mapping with snake_case or camelCase keys (``chainId``, ``issuedAt``...)."""
        if not isinstance(fields, Mapping):
            raise SiweError("fields must be a mapping")
        values: dict[str, object] = {}
        for key, value in fields.items():
            name = _FIELD_NAMES.get(key) if isinstance(key, str) else None
            if name is None:
                raise SiweError("unknown field name")
            if name in values:
                raise SiweError(f"field {name} is given twice (snake_case and camelCase)")
            values[name] = value
        for name in _REQUIRED:
            if values.get(name) is None:
                raise SiweError(f"field {name} is required")
        return cls(**values)  # type: ignore[arg-type]  # every value is checked in __post_init__

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse an EIP-4361 message, refusing anything that does not conform exactly."""
        return cls(**read_message(text))

    def validate(
        self,
        *,
        domain: str,
        uri: str,
        nonce: str,
        address: str,
        chain_ids: Collection[int] | None,
        now: float,
        skew: float = 60.0,
    ) -> None:
        """Refuse unless this message is for this service, wallet and nonce, and valid at ``now``.

        Every comparison is exact (no case folding): ``domain`` is the authority the message must
        name (``example.com``, ``localhost:8000``), ``uri`` the exact URI string, ``address`` the
        EIP-55 wallet address; when the message carries a scheme it must be the scheme of ``uri``.
        ``chain_ids=None`` explicitly allows any chain. Times are checked against ``now`` (Unix
        seconds) with ``skew`` seconds of tolerance, as EIP-4361 verification defines them: the
        message is refused once ``now - skew >= Expiration Time`` and while
        ``now + skew < Not Before``. Mismatches raise ``MessageRejected``, time failures
        ``MessageExpired``; a malformed argument (a programming error, not a client one) raises
        ``TypeError`` or ``ValueError``. A login service should also call ``check_issuance``,
        which ``WalletAuth`` always does.
        """
        signin.check_arguments(domain=domain, uri=uri, nonce=nonce, address=address)
        if chain_ids is not None and isinstance(chain_ids, (str, bytes)):
            raise TypeError("chain_ids must be None or a collection of integers")
        check_seconds("now", now, allow_negative=True)
        check_seconds("skew", skew, allow_negative=False)

        signin.check_binding(
            domain=self.domain,
            uri=self.uri,
            nonce=self.nonce,
            address=self.address,
            scheme=self.scheme,
            expected_domain=domain,
            expected_uri=uri,
            expected_nonce=nonce,
            expected_address=address,
        )
        if chain_ids is not None and self.chain_id not in chain_ids:
            raise MessageRejected("sign-in message chain id is not allowed")
        signin.check_window(
            expires=self._time("expiration_time"),
            not_before=self._time("not_before"),
            now=now,
            skew=skew,
        )

    def check_issuance(self, *, now: float, skew: float = 60.0) -> None:
        """Refuse a message issued more than ``skew`` in the future or with an empty window.

        EIP-4361 verification does not look at ``Issued At`` (the public conformance vectors
        accept a message verified two years before it was issued), so this is a separate, stricter
        rule for login services: a wallet signs a message when it is issued, so one dated in the
        future is forged or made on a broken clock, and one whose ``Expiration Time`` is not after
        its ``Issued At`` (or whose ``Not Before`` is not before its ``Expiration Time``) was never
        valid, whatever the skew.
        """
        signin.check_issuance(
            issued_at=_message_epoch(self.issued_at, "Issued At"),
            expires=self._time("expiration_time"),
            not_before=self._time("not_before"),
            now=now,
            skew=skew,
        )

    def _time(self, name: str) -> float | None:
        """Epoch seconds of an optional time field (``expiration_time``, ``not_before``)."""
        text = getattr(self, name)
        label = "Expiration Time" if name == "expiration_time" else "Not Before"
        return None if text is None else _message_epoch(text, label)

    def verify(
        self,
        signature: str,
        *,
        domain: str,
        uri: str,
        nonce: str,
        chain_ids: Collection[int] | None,
        now: float,
        skew: float = 60.0,
    ) -> None:
        """Check the EIP-191 signature over ``str(self)`` is by ``self.address``, then ``validate``.

        Only externally owned accounts are supported: an EIP-1271 contract-wallet signature is
        refused like any other signature that does not recover to the address. Every failure
        is a ``WalletAuthError``: ``InvalidSignatureFormat`` for a malformed signature,
        ``SignatureMismatch`` when it does not recover to ``self.address``, then the refusals of
        ``validate``.
        """
        if not isinstance(signature, str):
            raise InvalidSignatureFormat()
        try:
            recovered = recover_address(str(self).encode("utf-8"), signature)
        except WalletAuthError:
            raise
        except Exception as exc:  # whatever the curve code raises, it is a refusal
            raise SignatureMismatch() from exc
        if recovered != self.address:
            raise SignatureMismatch()
        self.validate(
            domain=domain,
            uri=uri,
            nonce=nonce,
            address=self.address,
            chain_ids=chain_ids,
            now=now,
            skew=skew,
        )


__all__ = [
    "MAX_CHAIN_ID",
    "MAX_MESSAGE_LENGTH",
    "SiweError",
    "SiweMessage",
    "format_rfc3339",
    "parse_rfc3339",
]
