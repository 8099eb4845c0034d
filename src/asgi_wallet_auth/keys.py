"""Signing keys and key sets: HS256 secrets, ES256 (P-256) and Ed25519 keys, their states and JWKs.

A key is in one of four states. ``next``: published and verifying, not signing yet (so every
verifier knows it before the first token it signs); ``current``: signs (exactly one per issuing
set); ``previous``: published and verifying until the tokens it signed expire; ``retired``:
neither published nor accepted. docs/keys.md has the rotation procedure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

KeyState = Literal["next", "current", "previous", "retired"]
KEY_STATES: tuple[KeyState, ...] = ("next", "current", "previous", "retired")
#: States whose keys verify tokens (and, for public keys, appear in the JWKS).
VERIFYING_STATES = frozenset({"next", "current", "previous"})
#: Symmetric algorithms, each with its minimum key size (RFC 7518 3.2: at least the hash output).
HMAC_KEY_SIZES = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Asymmetric algorithms this package signs with. ``Ed25519`` is RFC 9864's fully specified name;
#: ``EdDSA`` is accepted on input as its older spelling.
ASYMMETRIC_ALGORITHMS = ("ES256", "Ed25519")
ALGORITHMS = (*HMAC_KEY_SIZES, *ASYMMETRIC_ALGORITHMS)
MAX_KEYS = 32
# Printable ASCII without quotes or backslashes: a kid is copied into a JSON header verbatim.
_KID_RE = re.compile(r"[!#-\[\]-~]{1,128}")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def b64url(data: bytes) -> str:
    """Unpadded base64url text (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, size: int | None = None) -> bytes:
    """Strict unpadded base64url: ``ValueError`` for padding, other characters or a wrong size."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:  # a non-zero unused bit: another spelling of the same bytes
        raise ValueError("not canonical base64url")
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes")
    return data


def _thumbprint(members: Mapping[str, str]) -> str:
    # RFC 7638: the required members only, sorted, no whitespace; SHA-256; base64url.
    canonical = json.dumps(dict(sorted(members.items())), separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _public_members(public: PublicKey) -> dict[str, str]:
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    numbers = public.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def _algorithm_of(public: object) -> str:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise ValueError(
                f"ES256 keys are on P-256; this one is on {public.curve.name}: generate one with "
                "SigningKey.generate('ES256')"
            )
        return "ES256"
    raise ValueError(
        "only ES256 (P-256) and Ed25519 keys are supported; generate one with "
        "SigningKey.generate('ES256') or SigningKey.generate('Ed25519')"
    )


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of a ``KeySet``: its ``kid``, algorithm, state and material (never in its repr).

    Build one with ``SigningKey.hmac(secret)``, ``SigningKey.generate('ES256')``,
    ``SigningKey.from_pem(pem)`` or ``SigningKey.from_jwk(jwk)``; ``kid`` defaults to the RFC 7638
    thumbprint of the key. A key with only a public part verifies and never signs.
    """

    kid: str
    algorithm: str
    state: KeyState = "current"
    secret: bytes | None = field(default=None, repr=False)
    private_key: PrivateKey | None = field(default=None, repr=False, compare=False)
    public_key: PublicKey | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not _KID_RE.fullmatch(self.kid):
            raise ValueError(
                "kid must be 1 to 128 printable ASCII characters without quotes or backslashes"
            )
        if self.state not in KEY_STATES:
            raise ValueError(f"state must be one of {', '.join(KEY_STATES)}; got {self.state!r}")
        if self.algorithm in HMAC_KEY_SIZES:
            size = HMAC_KEY_SIZES[self.algorithm]
            if not isinstance(self.secret, bytes) or len(self.secret) < size:
                raise ValueError(
                    f"an {self.algorithm} secret must be at least {size} bytes; generate one "
                    "with `python -c 'import secrets; print(secrets.token_urlsafe(64))'`"
                )
            if self.private_key is not None or self.public_key is not None:
                raise ValueError("an HMAC key has a secret and no key pair")
            return
        if self.algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.secret is not None:
            raise ValueError(f"an {self.algorithm} key has a key pair, not a secret")
        if self.public_key is None and self.private_key is not None:
            object.__setattr__(self, "public_key", self.private_key.public_key())
        if self.public_key is None or _algorithm_of(self.public_key) != self.algorithm:
            raise ValueError(f"an {self.algorithm} key needs an {self.algorithm} key pair")

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def hmac(
        cls,
        secret: str | bytes,
        *,
        algorithm: str = "HS256",
        state: KeyState = "current",
        kid: str | None = None,
    ) -> SigningKey:
        """A shared-secret key (HS256, HS384, HS512); never published in a JWKS."""
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not isinstance(raw, bytes):
            raise ValueError("an HMAC secret must be str or bytes")
        if kid is None:
            kid = _thumbprint({"kty": "oct", "k": b64url(raw)})
        return cls(kid=kid, algorithm=algorithm, state=state, secret=raw)

    @classmethod
    def generate(cls, algorithm: str = "ES256", *, state: KeyState = "current") -> SigningKey:
        """A new random ES256 or Ed25519 key."""
        private: PrivateKey
        if algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm in ("Ed25519", "EdDSA"):
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError("generate() makes 'ES256' or 'Ed25519' keys")
        return cls.from_key(private, state=state)

    @classmethod
    def from_key(
        cls, key: PrivateKey | PublicKey, *, state: KeyState = "current", kid: str | None = None
    ) -> SigningKey:
        """A key from a ``cryptography`` private key (signs) or public key (verifies only)."""
        if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            private: PrivateKey | None = key
            public: PublicKey = key.public_key()
        elif isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            private, public = None, key
        else:
            raise ValueError("only ES256 (P-256) and Ed25519 keys are supported")
        algorithm = _algorithm_of(public)
        if kid is None:
            kid = _thumbprint(_public_members(public))
        return cls(
            kid=kid, algorithm=algorithm, state=state, private_key=private, public_key=public
        )

    @classmethod
    def from_pem(
        cls, pem: str | bytes, *, state: KeyState = "current", kid: str | None = None
    ) -> SigningKey:
        """A key from an unencrypted PKCS#8 private key or SubjectPublicKeyInfo PEM block."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key: Any
        try:
            if b"PRIVATE KEY-----" in data:
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # Never the key's text in the message: this may be a private key.
            raise ValueError(
                "not an unencrypted PEM private or public key; write one with "
                "SigningKey.generate('ES256').private_pem()"
            ) from None
        return cls.from_key(key, state=state, kid=kid)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], *, state: KeyState = "current") -> SigningKey:
        """A verifying key from a public JWK (EC P-256 or OKP Ed25519); ``ValueError`` else.

        A JWK carrying private or symmetric material is refused: a JWKS publishes public keys.
        """
        if not isinstance(jwk, Mapping):
            raise ValueError("a JWK is a JSON object")
        kty, crv, kid = jwk.get("kty"), jwk.get("crv"), jwk.get("kid")
        if kty == "oct" or any(name in jwk for name in ("d", "p", "q", "k")):
            raise ValueError("a JWKS must not carry secret or private key material")
        if not isinstance(kid, str):
            raise ValueError("a JWK needs a string kid")
        alg = jwk.get("alg")
        if "use" in jwk and jwk["use"] != "sig":
            raise ValueError("not a signature key (use)")
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            raise ValueError("not a verification key (key_ops)")
        public: PublicKey
        if kty == "EC" and crv == "P-256" and alg in (None, "ES256"):
            x = int.from_bytes(b64url_decode(jwk.get("x"), 32), "big")
            y = int.from_bytes(b64url_decode(jwk.get("y"), 32), "big")
            public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        elif kty == "OKP" and crv == "Ed25519" and alg in (None, "Ed25519", "EdDSA"):
            raw = b64url_decode(jwk.get("x"), 32)
            public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        else:
            raise ValueError("unsupported key: only EC P-256 (ES256) and OKP Ed25519")
        return cls.from_key(public, state=state, kid=kid)

    def with_state(self, state: KeyState) -> SigningKey:
        """The same key in another state (a rotation step)."""
        return replace(self, state=state)

    # -- reading -----------------------------------------------------------------------------

    @property
    def can_sign(self) -> bool:
        """Whether this key holds the material to sign (a secret or a private key)."""
        return self.secret is not None or self.private_key is not None

    def public_jwk(self) -> dict[str, str] | None:
        """The public JWK of an asymmetric key; None for an HMAC key (never published)."""
        if self.public_key is None:
            return None
        return {
            **_public_members(self.public_key),
            "kid": self.kid,
            "alg": self.algorithm,
            "use": "sig",
        }

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (for a key file created 0600)."""
        if self.private_key is None:
            raise ValueError("this key has no private part")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        if self.public_key is None:
            raise ValueError("an HMAC key has no public part")
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True, slots=True)
class KeySet:
    """The keys of one service: at most one ``current`` key signs, and every key names its state.

    ``max_age``: the seconds a JWKS response may be cached (its ``Cache-Control``); the rotation
    procedure waits that long between publishing a key and signing with it.
    """

    keys: Sequence[SigningKey]
    max_age: int = 300

    def __post_init__(self) -> None:
        keys = tuple(self.keys) if not isinstance(self.keys, (str, bytes)) else ()
        if not keys or len(keys) > MAX_KEYS or any(not isinstance(k, SigningKey) for k in keys):
            raise ValueError(
                f"a KeySet holds 1 to {MAX_KEYS} SigningKey objects, e.g. "
                "KeySet((SigningKey.generate('ES256'),))"
            )
        object.__setattr__(self, "keys", keys)
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise ValueError(f"every key needs its own kid; repeated: {sorted(kids)}")
        if sum(k.state == "current" for k in keys) > 1:
            raise ValueError("at most one key may be 'current': mark the others 'previous'")
        age = self.max_age
        if isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 86_400:
            raise ValueError(f"max_age must be an int of seconds in [0, 86400]; got {age!r}")

    @classmethod
    def hmac(cls, secrets: Sequence[str | bytes], *, algorithm: str = "HS256") -> KeySet:
        """Shared secrets rotated like keys: the first signs, the others verify (``previous``)."""
        if isinstance(secrets, (str, bytes)) or not secrets:
            raise ValueError("KeySet.hmac takes a list of secrets; the first one signs")
        return cls(
            tuple(
                SigningKey.hmac(s, algorithm=algorithm, state="current" if i == 0 else "previous")
                for i, s in enumerate(secrets)
            )
        )

    @property
    def current(self) -> SigningKey | None:
        """The key that signs, if any."""
        return next((k for k in self.keys if k.state == "current"), None)

    def verifying(self) -> Iterable[SigningKey]:
        """The keys whose tokens are accepted: next, current and previous."""
        return (k for k in self.keys if k.state in VERIFYING_STATES)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set to publish: public keys of the verifying states, never an HMAC key."""
        return {"keys": [jwk for k in self.verifying() if (jwk := k.public_jwk()) is not None]}


__all__ = [
    "ALGORITHMS",
    "ASYMMETRIC_ALGORITHMS",
    "HMAC_KEY_SIZES",
    "KEY_STATES",
    "MAX_KEYS",
    "KeySet",
    "KeyState",
    "SigningKey",
    "b64url",
    "b64url_decode",
]
