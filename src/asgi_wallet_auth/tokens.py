"""Access tokens: JWTs issued and verified on a direct path, under the keys of a ``KeySet``.

Each token carries the ``kid`` of the key that signed it under one fixed header (jws.py); the
claims are checked here, against the injectable service clock, so tests move time instead of
sleeping and the checks cannot be switched off by an option left out. PyJWT is the reference the
tests hold every token to.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .envelope import json_bytes
from .errors import SessionExpired, TokenInvalid
from .jws import MAX_TOKEN_LENGTH, Signer, decode, verify_table
from .keys import HMAC_KEY_SIZES, KeySet, SigningKey

#: Claims that every access token carries and that verification requires.
REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti", "iss", "aud", "auth_time")
#: Claims the service computes itself; hooks cannot set them.
RESERVED_CLAIMS = frozenset(
    {
        *REQUIRED_CLAIMS,
        "nbf",
        "access_expired_at",
        "userid",
        "did_type",
        "did_value",
        "sid",
        "account_id",
        "ens_name",
        "recap",
    }
)
HMAC_ALGORITHMS = tuple(HMAC_KEY_SIZES)
#: The largest time claim accepted (Unix seconds): far beyond any real date, exact as a float.
MAX_TIME = 2**53


#: Checks an access token's claims at a time: ``check(claims, now)`` raises ``TokenInvalid``.
ClaimsCheck = Callable[[Mapping[str, Any], float], None]


def claims_checker(
    *,
    issuer: str,
    audience: str,
    leeway: float = 0.0,
    session_lifetime: float | None = None,
) -> ClaimsCheck:
    """The claim checks of one issuer and audience, prepared once.

    ``check(claims, now)`` raises ``TokenInvalid`` unless ``claims`` are an access token's, valid
    at ``now``; ``session_lifetime``: where known (the issuer), no token may outlive ``auth_time``
    by more. Every verified token goes through one of these: the fixed parts are bound here
    rather than passed by keyword on each request.
    """
    # A token issued "now" by a clock up to a minute ahead is still accepted.
    ahead = leeway + 60
    longest = MAX_TIME if session_lifetime is None else session_lifetime

    def check(claims: Mapping[str, Any], now: float) -> None:
        try:
            exp = claims["exp"]
            iat = claims["iat"]
            auth_time = claims["auth_time"]
            sub = claims["sub"]
            valid = (
                claims["iss"] == issuer
                and claims["aud"] == audience
                and type(claims["jti"]) is str
                # Integers only (bool and float refused), and small enough to meet a float
                # clock: 10**400 would overflow the comparisons instead of failing them.
                and type(exp) is int
                and type(iat) is int
                and type(auth_time) is int
                and 0 <= auth_time <= iat <= MAX_TIME
                and 0 <= exp <= MAX_TIME
                and type(sub) is str
                and sub != ""
                and now < exp + leeway
                and iat <= now + ahead
                and exp <= auth_time + longest
            )
        except KeyError:
            raise TokenInvalid() from None
        if not valid:
            raise TokenInvalid()
        if "nbf" in claims:
            nbf = claims["nbf"]
            if type(nbf) is not int or not 0 <= nbf <= MAX_TIME or now + leeway < nbf:
                raise TokenInvalid()

    return check


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued access token and the claims it carries."""

    token: str
    claims: Mapping[str, Any]

    @property
    def expires_at(self) -> int:
        """The ``exp`` claim (Unix seconds)."""
        return int(self.claims["exp"])


class TokenService:
    """Issues and verifies the access tokens of one ``WalletAuth``."""

    def __init__(
        self,
        *,
        secret_key: bytes,
        issuer: str,
        audience: str,
        lifetime: float,
        session_lifetime: float,
        algorithm: str = "HS256",
        clock: Callable[[], float] = time.time,
        leeway: float = 0.0,
        keys: KeySet | None = None,
    ) -> None:
        if keys is None:
            if algorithm not in HMAC_ALGORITHMS:
                raise ValueError(
                    f"algorithm must be one of {', '.join(HMAC_ALGORITHMS)}; got {algorithm!r}"
                )
            if len(secret_key) < HMAC_KEY_SIZES[algorithm]:
                raise ValueError(
                    f"secret_key must be at least {HMAC_KEY_SIZES[algorithm]} bytes for "
                    f"{algorithm}; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`"
                )
            keys = KeySet((SigningKey.hmac(secret_key, algorithm=algorithm),))
        elif not isinstance(keys, KeySet):
            raise ValueError("keys must be a KeySet(...)")
        current = keys.current
        if current is None or not current.can_sign:
            raise ValueError(
                "the key set needs one 'current' key with its secret or private key to sign; "
                "e.g. KeySet((SigningKey.generate('ES256'),))"
            )
        self.keys = keys
        self._signer = Signer(current)
        self.kid = current.kid
        self.algorithm = current.algorithm
        # Tokens of 0.1 carry no kid: they stay valid while an HMAC key with the service's
        # secret is in a verifying state, so neither an upgrade nor a rotation logs anyone out.
        verifying = list(keys.verifying())
        unkeyed = next(
            (
                k
                for k in verifying
                if k.secret is not None and hmac.compare_digest(k.secret, secret_key)
            ),
            None,
        )
        self._table = verify_table(verifying, unkeyed=unkeyed)
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.session_lifetime = session_lifetime
        self._clock = clock
        self._leeway = leeway
        self._check = claims_checker(
            issuer=issuer, audience=audience, leeway=leeway, session_lifetime=session_lifetime
        )

    def issue(
        self,
        *,
        subject: str,
        auth_time: int,
        extra: Mapping[str, Any] | None = None,
        jti: str | None = None,
    ) -> IssuedToken:
        """Issue a token for ``subject``; it never outlives ``auth_time + session_lifetime``."""
        now = int(self._clock())
        session_end = auth_time + int(self.session_lifetime)
        if now >= session_end:
            raise SessionExpired()
        exp = min(now + int(self.lifetime), session_end)
        claims: dict[str, Any] = {**extra} if extra else {}
        claims["sub"] = subject
        claims["iat"] = now
        claims["exp"] = exp
        claims["jti"] = jti if jti is not None else secrets.token_hex(16)
        claims["iss"] = self.issuer
        claims["aud"] = self.audience
        claims["auth_time"] = auth_time
        claims["access_expired_at"] = exp
        return IssuedToken(self._encode(claims), claims)

    def _encode(self, claims: Mapping[str, Any]) -> str:
        # Our own claims under our own fixed header: no general JWS machinery on this path.
        return self._signer.encode(json_bytes(claims))

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token; raise ``TokenInvalid`` for anything else."""
        claims = decode(token, self._table)
        self._check(claims, self._clock())
        return claims


__all__ = [
    "HMAC_ALGORITHMS",
    "HMAC_KEY_SIZES",
    "MAX_TIME",
    "MAX_TOKEN_LENGTH",
    "REQUIRED_CLAIMS",
    "RESERVED_CLAIMS",
    "ClaimsCheck",
    "IssuedToken",
    "TokenService",
    "claims_checker",
]
