"""Access tokens: JWTs issued and verified around PyJWT with a pinned algorithm and required claims.

PyJWT checks the signature, the algorithm, ``iss`` and ``aud``; the time claims are checked here,
against the injectable service clock, so tests move time instead of sleeping and the checks cannot
be switched off by an option left out.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from .envelope import json_bytes
from .errors import SessionExpired, TokenInvalid

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
_HASHES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


#: Symmetric algorithms accepted for ``algorithm``, each with its minimum key size (RFC 7518 3.2:
#: a key at least as long as the hash output).
HMAC_KEY_SIZES = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS = tuple(HMAC_KEY_SIZES)
MAX_TOKEN_LENGTH = 4096
#: The largest time claim accepted (Unix seconds): far beyond any real date, exact as a float.
MAX_TIME = 2**53


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
    ) -> None:
        if algorithm not in HMAC_ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(HMAC_ALGORITHMS)}; got {algorithm!r}"
            )
        if len(secret_key) < HMAC_KEY_SIZES[algorithm]:
            raise ValueError(
                f"secret_key must be at least {HMAC_KEY_SIZES[algorithm]} bytes for {algorithm}; "
                "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(64))'`"
            )
        self._key = secret_key
        # Keyed once: each token copies the prepared state instead of keying HMAC again.
        self._mac = hmac.new(secret_key, digestmod=_HASHES[algorithm])
        self._header = _b64url(
            json.dumps({"alg": algorithm, "typ": "JWT"}, separators=(",", ":")).encode()
        )
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.session_lifetime = session_lifetime
        self.algorithm = algorithm
        self._algorithms = [algorithm]
        self._clock = clock
        self._leeway = leeway
        self._jwt = jwt.PyJWT(
            options={
                "verify_signature": True,
                "verify_aud": True,
                "verify_iss": True,
                # Time claims are checked in verify() against the injected clock.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": list(REQUIRED_CLAIMS),
            }
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
        # Signing our own claims under our own fixed header needs no general JWS machinery:
        # PyJWT's encode spends most of its ~50 us re-checking the key on every call. Every
        # token issued here is verified by PyJWT in the tests, byte-compatible by construction.
        signing_input = self._header + b"." + _b64url(json_bytes(claims))
        mac = self._mac.copy()
        mac.update(signing_input)
        signature = mac.digest()
        return (signing_input + b"." + _b64url(signature)).decode("ascii")

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token; raise ``TokenInvalid`` for anything else."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise TokenInvalid()
        try:
            decoded = self._jwt.decode_complete(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self.audience,
                issuer=self.issuer,
            )
        except Exception as exc:  # every PyJWT failure, and anything else, is a refusal
            raise TokenInvalid() from exc
        header = decoded["header"]
        # We define no critical extensions, so any "crit" header names one we do not understand.
        if "crit" in header:
            raise TokenInvalid()
        claims: dict[str, Any] = decoded["payload"]
        now = self._clock()
        exp, iat, auth_time = claims["exp"], claims["iat"], claims["auth_time"]
        for value in (exp, iat, auth_time):
            # Integers only (bool and float refused), and small enough to meet a float clock:
            # 10**400 would overflow the comparison below instead of failing it.
            if type(value) is not int or not 0 <= value <= MAX_TIME:
                raise TokenInvalid()
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise TokenInvalid()
        if now >= exp + self._leeway or iat > now + self._leeway + 60 or auth_time > iat:
            raise TokenInvalid()
        if exp > auth_time + self.session_lifetime:
            raise TokenInvalid()
        nbf = claims.get("nbf")
        if nbf is not None and (
            type(nbf) is not int or not 0 <= nbf <= MAX_TIME or now + self._leeway < nbf
        ):
            raise TokenInvalid()
        return claims


__all__ = [
    "HMAC_ALGORITHMS",
    "HMAC_KEY_SIZES",
    "MAX_TIME",
    "MAX_TOKEN_LENGTH",
    "REQUIRED_CLAIMS",
    "RESERVED_CLAIMS",
    "IssuedToken",
    "TokenService",
]
