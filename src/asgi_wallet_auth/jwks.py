"""``JwksFetcher``: the keys of a JWKS URL, cached, refetched with care, capped in size.

The fetched set is kept for the response's ``max-age`` (clamped), then refetched on the next
request that needs it. A token naming an unknown ``kid`` triggers a refetch at most once per
``cooldown``, so random kids cannot make this service hammer the issuer. A refetch that fails
(unreachable, not 200, too large, not a JWK Set, an HMAC or private key in it) keeps the cached
keys in use and is retried after ``cooldown``. Needs httpx (``asgi-wallet-auth[jwks]``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import orjson

from .jws import VerifyFn, verify_table
from .keys import SigningKey

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("asgi_wallet_auth.jwks")
_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,9})\"?", re.IGNORECASE)
_LOOPBACK_NAMES = ("localhost",)


class JwksError(Exception):
    """A JWKS response that cannot be used; the cached keys stay in use."""


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jwks_url(url: object) -> str:
    """``url`` if it is https (or http on a loopback host); ``ValueError`` with the fix else."""
    if not isinstance(url, str):
        raise ValueError("jwks_url must be a URL string such as 'https://auth.example.com/...'")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ValueError(f"jwks_url is not a valid URL: {url!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("jwks_url must not carry credentials: a JWKS is public")
    if not host or parts.scheme not in ("https", "http"):
        raise ValueError(f"jwks_url must be an https:// URL; got {url!r}")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValueError(
            "jwks_url must be https:// (keys fetched over plain http could be swapped in "
            "transit); http:// is allowed for loopback hosts only"
        )
    return url


def parse_jwks(body: bytes, *, max_keys: int) -> list[SigningKey]:
    """The usable keys of a JWK Set document; ``JwksError`` for a document we refuse whole.

    Keys of other types (RSA, other curves) are skipped. Refused whole: more than ``max_keys``
    entries, a repeated kid, and any secret or private key material, which means the issuer's
    publishing is broken and nothing in the document can be trusted.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise JwksError("not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("not a JWK Set (no 'keys' list)")
    if len(entries) > max_keys:
        raise JwksError(f"more than {max_keys} keys")
    keys: list[SigningKey] = []
    kids: set[object] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise JwksError("a key is not a JSON object")
        kid = entry.get("kid")
        if kid in kids:
            raise JwksError("a kid appears twice")
        kids.add(kid if isinstance(kid, str) else object())
        if entry.get("kty") == "oct" or any(n in entry for n in ("d", "p", "q", "k")):
            raise JwksError("a secret or private key is published")
        try:
            keys.append(SigningKey.from_jwk(entry, state="previous"))
        except ValueError:
            continue  # a key type or use we do not verify with
    return keys


class JwksFetcher:
    """The verification keys published at ``url``, for ``JwksAuthenticator``.

    ``max_age``: how long a fetched set is used when the response says nothing (clamped to
    ``[min_age, max_max_age]`` when it does); ``cooldown``: the least time between two refetches
    that an unknown kid or a failure may cause; ``max_keys`` and ``max_bytes`` cap a response.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        max_age: float = 300.0,
        min_age: float = 30.0,
        max_max_age: float = 86_400.0,
        cooldown: float = 30.0,
        max_keys: int = 16,
        max_bytes: int = 64 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import httpx  # the optional dependency, needed only where keys are fetched

        self.url = check_jwks_url(url)
        for name, value in (
            ("timeout", timeout),
            ("max_age", max_age),
            ("cooldown", cooldown),
            ("max_max_age", max_max_age),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
        if isinstance(min_age, bool) or not isinstance(min_age, (int, float)) or min_age < 0:
            raise ValueError(f"min_age must be a number of seconds >= 0; got {min_age!r}")
        for name, count in (("max_keys", max_keys), ("max_bytes", max_bytes)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be a positive int; got {count!r}")
        self._owns_client = client is None
        self.client = client if client is not None else httpx.AsyncClient()
        self.timeout = float(timeout)
        self.max_age, self.min_age, self.max_max_age = max_age, min_age, max_max_age
        self.cooldown = cooldown
        self.max_keys, self.max_bytes = max_keys, max_bytes
        self.clock = clock
        self.table: dict[str, VerifyFn] = {}
        self.kids: tuple[str, ...] = ()
        #: Bumped whenever the set of keys changes: cached verdicts of an older set are dropped.
        self.generation = 0
        self._fresh_until = float("-inf")  # the first request fetches
        self._retry_at = float("-inf")  # after a failure: no new attempt before this
        self._unknown_at = float("-inf")  # the next refetch an unknown kid may cause
        self._fetches = 0
        self._last_ok = False
        self._lock = anyio.Lock()

    def stale(self) -> bool:
        """Whether the set is past its max-age (or was never fetched) and may be refetched now."""
        now = self.clock()
        return now >= self._fresh_until and now >= self._retry_at

    async def verifier(self, header: str, *, just_fetched: bool = False) -> VerifyFn | None:
        """The verification for a token header; refetches when stale or the kid is unknown.

        ``just_fetched``: the caller refreshed the set for this request already.
        """
        fetched = just_fetched or self.stale()
        if fetched and not just_fetched:
            await self.refresh()
        verify = self.table.get(header)
        if verify is None and not fetched:  # a set fetched just now needs no second look
            now = self.clock()
            if now >= self._unknown_at and now >= self._retry_at:
                self._unknown_at = now + self.cooldown
                await self.refresh()
                verify = self.table.get(header)
        return verify

    async def refresh(self) -> bool:
        """Fetch the set now (one fetch at a time); False if it failed and the old set stays."""
        seen = self._fetches
        async with self._lock:
            if self._fetches != seen:  # another request fetched while we waited: use its result
                return self._last_ok
            self._fetches += 1
            now = self.clock()
            try:
                keys, max_age = await self._fetch()
            except Exception as exc:  # any failure keeps the cached set: never a 500 here
                self._retry_at = now + self.cooldown
                self._last_ok = False
                # The reason only: a JWKS response is public, but its bytes are not ours to log.
                reason = exc if isinstance(exc, JwksError) else type(exc).__name__
                logger.warning(
                    "JWKS refetch failed; keeping %d cached keys: %s", len(self.kids), reason
                )
                return False
            self._fresh_until = now + max_age
            self._last_ok = True
            kids = tuple(sorted(k.kid for k in keys))
            if kids != self.kids:
                self.generation += 1
            self.table = verify_table(keys)
            self.kids = kids
            return True

    async def _fetch(self) -> tuple[list[SigningKey], float]:
        headers = {"accept": "application/json"}
        async with self.client.stream(
            "GET", self.url, headers=headers, timeout=self.timeout, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise JwksError(f"status {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise JwksError(f"larger than {self.max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:  # stop reading: a hostile body may be endless
                    raise JwksError(f"larger than {self.max_bytes} bytes")
            cache_control = response.headers.get("cache-control", "")
        keys = parse_jwks(bytes(body), max_keys=self.max_keys)
        return keys, self._age(cache_control)

    def _age(self, cache_control: str) -> float:
        match = _MAX_AGE_RE.search(cache_control)
        if match is None or "no-store" in cache_control.lower():
            return self.max_age if match is None else self.min_age
        return min(max(float(match.group(1)), self.min_age), self.max_max_age)

    def snapshot(self) -> dict[str, Any]:
        """What is cached (kids and generation): for health checks and tests."""
        return {"kids": list(self.kids), "generation": self.generation}

    async def aclose(self) -> None:
        """Close the HTTP client this fetcher created."""
        if self._owns_client:
            await self.client.aclose()


__all__ = ["JwksError", "JwksFetcher", "check_jwks_url", "parse_jwks"]
