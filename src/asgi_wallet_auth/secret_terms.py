"""Terms bound to a login secret: the ``Resources``, ``Request ID`` and ``Not Before`` its
EIP-4361 message must carry, fixed when the secret is issued; and what a message grants (ReCaps).

``POST /login_random_secret`` may name them; the secret is then stored under a key that includes
a digest of them, so only a message carrying exactly those values finds it. A message without
them (or with others) looks under another key, finds nothing, burns nothing and is refused
(40102), as if the secret were unknown. No store needs to learn anything new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .grammar import BAD_PERCENT_RE, REQUEST_ID_RE, epoch, is_uri
from .recap import recap_claim, recap_of
from .siwe import SiweMessage

#: At most this many bound resources, each at most this long: a message holds 8 KiB.
MAX_RESOURCES = 32
MAX_RESOURCE_LENGTH = 2048
_MARKERS = ("\nResources:", "\nRequest ID: ", "\nNot Before: ")


@dataclass(frozen=True, slots=True)
class SecretTerms:
    """The optional fields a message must carry exactly (None: that field is not bound)."""

    resources: tuple[str, ...] | None = None
    request_id: str | None = None
    not_before: str | None = None

    def digest(self) -> str:
        """A digest of the terms: part of the secret's key in the nonce store."""
        text = json.dumps([self.resources, self.request_id, self.not_before], separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    @property
    def empty(self) -> bool:
        """Whether no field is bound."""
        return self.resources is None and self.request_id is None and self.not_before is None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SecretTerms | None:
        """The terms a ``/login_random_secret`` body names (None for none); 400 if malformed."""
        resources = body.get("resources")
        request_id = body.get("request_id")
        not_before = body.get("not_before")
        if resources is not None:
            if (
                not isinstance(resources, list)
                or not 1 <= len(resources) <= MAX_RESOURCES
                or any(
                    not isinstance(r, str) or len(r) > MAX_RESOURCE_LENGTH or not is_uri(r)
                    for r in resources
                )
            ):
                raise InvalidRequest(
                    f"resources must be a list of 1 to {MAX_RESOURCES} URIs (RFC 3986)"
                )
            resources = tuple(resources)
        if request_id is not None and (
            not isinstance(request_id, str)
            or len(request_id) > 256
            or REQUEST_ID_RE.fullmatch(request_id) is None
            or BAD_PERCENT_RE.search(request_id) is not None
        ):
            raise InvalidRequest("request_id must be RFC 3986 path characters, at most 256")
        if not_before is not None:
            if not isinstance(not_before, str) or len(not_before) > 64:
                raise InvalidRequest("not_before must be an RFC 3339 date-time")
            epoch(not_before, "not_before", InvalidRequest)
        terms = cls(resources, request_id, not_before)
        return None if terms.empty else terms


@dataclass(frozen=True, slots=True)
class SignedTerms:
    """What an EIP-4361 message adds to its login: its bindable fields and the claims it grants."""

    terms: SecretTerms | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


NO_TERMS = SignedTerms()


def signed_terms(content: str) -> SignedTerms:
    """The terms of a message that its chain has already parsed and validated.

    A message with none of the optional fields (most of them) is not parsed again. A ReCap it
    carries is checked (400 if malformed or not what the statement says) and becomes the
    ``recap`` claim.
    """
    if not any(marker in content for marker in _MARKERS):
        return NO_TERMS
    message = SiweMessage.parse(content)
    terms = SecretTerms(message.resources, message.request_id, message.not_before)
    recap = recap_of(message.statement, message.resources)
    return SignedTerms(
        None if terms.empty else terms, {} if recap is None else {"recap": recap_claim(recap)}
    )


def secret_keys(base: str, terms: SecretTerms | None) -> tuple[str, ...]:
    """The nonce-store keys a message's secret may be under: bound to its terms, then plain."""
    return (base,) if terms is None else (f"{base}:{terms.digest()}", base)


def bound_key(base: str, terms: SecretTerms | None) -> str:
    """The key a secret issued with ``terms`` is stored under."""
    return base if terms is None else f"{base}:{terms.digest()}"


__all__ = [
    "MAX_RESOURCES",
    "NO_TERMS",
    "SecretTerms",
    "SignedTerms",
    "bound_key",
    "secret_keys",
    "signed_terms",
]
