"""An async Ethereum JSON-RPC client: one pool per node, bounded waits, strictly checked replies.

Contract wallets are verified by asking a node; a node's reply therefore decides a login, so every
reply is held to the JSON-RPC 2.0 shape, the request's own id and the hex grammar of its result, and
is read only up to a size cap. Anything else (no answer, a slow answer, HTML from a proxy, another
chain) is ``ChainUnavailable`` (503): a failed node can refuse a login, never let one through.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from .errors import StoreUnavailable

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "contract-wallet verification needs httpx: pip install 'asgi-wallet-auth[rpc]'"
    ) from exc

logger = logging.getLogger("asgi_wallet_auth.rpc")

# JSON-RPC hex grammars (Ethereum execution API): QUANTITY is a number, DATA whole bytes.
_QUANTITY_RE = re.compile(r"0x[0-9a-fA-F]{1,64}")
_DATA_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
# geth, anvil and reth answer a REVERT with code 3; older geth, erigon and others with -32000
# and this message. Any other error is the node's failure, not the signature's.
_REVERT_CODE = 3
_REVERT_MESSAGE = "execution reverted"
_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_MAX_CHAIN_ID = 2**64 - 1


class ChainUnavailable(StoreUnavailable):
    """A chain's node gave no trustworthy answer (down, slow, malformed, another chain)."""

    code, msg = 50302, "the chain's node is unavailable"


class RpcError(ChainUnavailable):
    """The node answered a JSON-RPC error object (other than a revert of ``eth_call``)."""

    def __init__(self, rpc_code: int) -> None:
        super().__init__()
        self.rpc_code = rpc_code


@dataclass(frozen=True, slots=True)
class CallResult:
    """What ``eth_call`` gave: the returned bytes, or the revert data when ``reverted``."""

    output: bytes
    reverted: bool = False


class _Failure(Exception):
    """Why a node's answer cannot be used; logged, then raised as ``ChainUnavailable``."""


class _ErrorReply(Exception):
    def __init__(self, code: int, message: str, data: object) -> None:
        super().__init__(code)
        self.code, self.message, self.data = code, message, data


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: paths and user info often hold provider API keys."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _check_url(chain_id: int, url: object) -> str:
    hint = f"the RPC URL of chain {chain_id} must be an http(s) URL, e.g. https://node.example/"
    if not isinstance(url, str) or not url or url != url.strip():
        raise ValueError(hint)
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL and friends: the URL is unusable either way
        raise ValueError(hint) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.fragment:
        raise ValueError(hint)
    return url


def _check_chain_id(chain_id: object) -> int:
    if isinstance(chain_id, bool) or not isinstance(chain_id, int):
        raise ValueError(f"chain ids must be integers (EIP-155), e.g. {{1: url}}; got {chain_id!r}")
    if not 1 <= chain_id <= _MAX_CHAIN_ID:
        raise ValueError(f"chain id {chain_id} is out of range: use 1 .. 2**64-1")
    return chain_id


def parse_rpc_urls(specs: Iterable[str]) -> dict[int, str]:
    """``{chain_id: url}`` from ``CHAIN_ID=URL`` texts (a repeatable ``--rpc-url`` option)."""
    urls: dict[int, str] = {}
    for position, spec in enumerate(specs, 1):
        chain_text, sep, url = spec.partition("=")
        # The URL is never echoed: it may carry a provider key.
        if not sep or not chain_text.isascii() or not chain_text.isdigit():
            raise ValueError(
                f"--rpc-url #{position} must be CHAIN_ID=URL with a decimal chain id, "
                "e.g. --rpc-url 1=https://node.example/"
            )
        chain_id = _check_chain_id(int(chain_text))
        if chain_id in urls:
            raise ValueError(f"--rpc-url names chain {chain_id} twice; give each chain one URL")
        urls[chain_id] = _check_url(chain_id, url)
    return urls


class RpcClient:
    """JSON-RPC over HTTP to one node per chain: ``RpcClient({1: "https://..."})``.

    ``timeout`` bounds a whole request in seconds (the first use's chain-id check, the exchange
    and its retries); ``retries`` repeats a request whose connection failed (a node restarted, a
    pooled connection closed), never one that was merely slow; a reply longer than
    ``max_response_bytes`` is refused unread. Each URL's ``eth_chainId`` is asked once, on first
    use or by ``check()``, and must be the chain it was configured for; only that check's
    success is remembered, never a verdict.
    """

    def __init__(
        self,
        urls: Mapping[int, str],
        *,
        timeout: float = 5.0,
        retries: int = 1,
        max_response_bytes: int = 64 * 1024,
        max_connections: int = 20,
    ) -> None:
        if not isinstance(urls, Mapping) or not urls:
            raise ValueError(
                "urls must map chain ids to RPC URLs, e.g. {1: 'https://node.example/'}"
            )
        checked = {_check_chain_id(c): _check_url(c, u) for c, u in urls.items()}
        if len(set(checked.values())) != len(checked):
            raise ValueError("one RPC URL serves one chain: give each chain id its own URL")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ValueError("timeout must be a number of seconds, e.g. timeout=5.0")
        if not (math.isfinite(timeout) and 0 < timeout <= 120):
            raise ValueError("timeout must be in (0, 120] seconds, e.g. timeout=5.0")
        for name, value, low, high in (
            ("retries", retries, 0, 5),
            ("max_response_bytes", max_response_bytes, 1024, 16 * 1024 * 1024),
            ("max_connections", max_connections, 1, 1000),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
        self.urls: Mapping[int, str] = checked
        self.timeout = float(timeout)
        self.retries = retries
        self.max_response_bytes = max_response_bytes
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        # trust_env=False: the node is reached exactly as configured, never through a proxy that
        # an environment variable names (a proxy could answer for any chain).
        self._clients = {
            chain_id: httpx.AsyncClient(
                timeout=self.timeout, limits=limits, trust_env=False, follow_redirects=False
            )
            for chain_id in checked
        }
        self._verified: set[int] = set()
        self._ids = itertools.count(1)

    @property
    def chain_ids(self) -> frozenset[int]:
        """The chains this client has a node for."""
        return frozenset(self.urls)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection pool."""
        for client in self._clients.values():
            await client.aclose()

    async def check(self) -> None:
        """Ask every node its chain id now (at startup): ``ValueError`` for a node of another
        chain, ``ChainUnavailable`` naming each node that did not answer usefully."""
        wrong: list[str] = []
        down: list[str] = []
        for chain_id, url in sorted(self.urls.items()):
            try:
                with anyio.fail_after(self.timeout):
                    answered = await self._chain_id_of(chain_id)
            except TimeoutError:
                down.append(f"chain {chain_id} ({redact_url(url)}): no answer in {self.timeout} s")
                continue
            except (_Failure, _ErrorReply) as exc:
                down.append(f"chain {chain_id} ({redact_url(url)}): {_reason(exc)}")
                continue
            if answered != chain_id:
                wrong.append(
                    f"the RPC URL of chain {chain_id} ({redact_url(url)}) serves chain {answered}"
                )
            else:
                self._verified.add(chain_id)
        if wrong:
            raise ValueError("; ".join(wrong) + ": give each RPC URL the chain id its node serves")
        if down:
            raise ChainUnavailable("; ".join(down))

    async def request(self, chain_id: int, method: str, params: list[Any]) -> object:
        """Send one request to ``chain_id``'s node; its validated ``result``.

        ``ChainUnavailable`` for anything but a well-formed answer from the right chain,
        ``RpcError`` (a ``ChainUnavailable``) for a JSON-RPC error object.
        """
        try:
            return await self._guarded(chain_id, method, params)
        except _ErrorReply as reply:
            self._log(chain_id, f"{method} answered JSON-RPC error {reply.code}")
            raise RpcError(reply.code) from None

    async def eth_call(
        self, chain_id: int, data: bytes, *, block: str = "latest", to: str | None = None
    ) -> CallResult:
        """An ``eth_call`` on ``chain_id``: to the contract ``to``, or deployless without it
        (``data`` is then creation code)."""
        call = {"data": "0x" + data.hex()} if to is None else {"to": to, "data": "0x" + data.hex()}
        params = [call, block]
        try:
            result = await self._guarded(chain_id, "eth_call", params)
        except _ErrorReply as reply:
            if reply.code == _REVERT_CODE or (
                reply.code == -32000 and reply.message.startswith(_REVERT_MESSAGE)
            ):
                revert = reply.data  # kept only when the node sends it well formed
                if not isinstance(revert, str) or _DATA_RE.fullmatch(revert) is None:
                    revert = "0x"
                return CallResult(bytes.fromhex(revert[2:]), reverted=True)
            self._log(chain_id, f"eth_call answered JSON-RPC error {reply.code}")
            raise RpcError(reply.code) from None
        if not isinstance(result, str) or _DATA_RE.fullmatch(result) is None:
            raise self._unavailable(chain_id, "eth_call result is not hex data")
        return CallResult(bytes.fromhex(result[2:]))

    # -- internals -------------------------------------------------------------------------

    async def _guarded(self, chain_id: int, method: str, params: list[Any]) -> object:
        """The exchange under one deadline, with the chain checked first; failures logged."""
        if chain_id not in self._clients:
            # No node for the chain a message names: nothing can be proved there.
            raise self._unavailable(chain_id, "no RPC URL is configured for this chain")
        try:
            with anyio.fail_after(self.timeout):
                if chain_id not in self._verified:
                    try:
                        answered = await self._chain_id_of(chain_id)
                    except _ErrorReply as reply:  # never mistaken for the method's own answer
                        reason = f"eth_chainId answered JSON-RPC error {reply.code}"
                        raise _Failure(reason) from None
                    if answered != chain_id:
                        raise _Failure(f"the node serves chain {answered}, not chain {chain_id}")
                    self._verified.add(chain_id)
                return await self._exchange(chain_id, method, params)
        except TimeoutError:
            raise self._unavailable(chain_id, f"no answer in {self.timeout} s") from None
        except _Failure as failure:
            raise self._unavailable(chain_id, str(failure)) from None

    async def _chain_id_of(self, chain_id: int) -> int:
        result = await self._exchange(chain_id, "eth_chainId", [])
        if not isinstance(result, str) or _QUANTITY_RE.fullmatch(result) is None:
            raise _Failure("eth_chainId result is not a hex quantity")
        return int(result, 16)

    async def _exchange(self, chain_id: int, method: str, params: list[Any]) -> object:
        request_id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        body = orjson.dumps(message)
        for attempt in range(self.retries + 1):
            try:
                raw = await self._post(chain_id, body)
                break
            except httpx.TimeoutException:
                raise _Failure(f"{method}: no answer in {self.timeout} s") from None
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise _Failure(f"{method}: {type(exc).__name__}") from None
            except httpx.HTTPError as exc:  # a broken encoding, a bad redirect: not retried
                raise _Failure(f"{method}: {type(exc).__name__}") from None
        return _validate(raw, request_id)

    async def _post(self, chain_id: int, body: bytes) -> bytes:
        cap = self.max_response_bytes
        client = self._clients[chain_id]
        async with client.stream("POST", self.urls[chain_id], content=body, headers=_HEADERS) as r:
            if r.status_code != 200:
                raise _Failure(f"HTTP status {r.status_code}")
            length = r.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > cap):
                raise _Failure(f"reply larger than {cap} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in r.aiter_bytes():  # decoded bytes: a compressed bomb is capped too
                size += len(chunk)
                if size > cap:
                    raise _Failure(f"reply larger than {cap} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    def _log(self, chain_id: int, reason: str) -> None:
        url = self.urls.get(chain_id)
        where = redact_url(url) if url is not None else "no URL"
        logger.warning("chain %s node (%s) unavailable: %s", chain_id, where, reason)

    def _unavailable(self, chain_id: int, reason: str) -> ChainUnavailable:
        self._log(chain_id, reason)
        return ChainUnavailable()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _ErrorReply):
        return f"JSON-RPC error {exc.code}"
    return str(exc)


def _validate(raw: bytes, request_id: int) -> object:
    """The ``result`` of a JSON-RPC 2.0 response to ``request_id``; ``_ErrorReply`` for an error."""
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Failure("reply is not JSON") from None
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        raise _Failure("reply is not a JSON-RPC 2.0 response object")
    reply_id = reply.get("id")
    if type(reply_id) is not int or reply_id != request_id:
        raise _Failure("reply id does not match the request")
    if ("result" in reply) == ("error" in reply):
        raise _Failure("reply must carry exactly one of result and error")
    if "error" in reply:
        error = reply["error"]
        if (
            not isinstance(error, dict)
            or type(error.get("code")) is not int
            or not isinstance(error.get("message"), str)
        ):
            raise _Failure("reply error is not a JSON-RPC error object")
        raise _ErrorReply(error["code"], error["message"], error.get("data"))
    return reply["result"]


__all__ = [
    "CallResult",
    "ChainUnavailable",
    "RpcClient",
    "RpcError",
    "parse_rpc_urls",
    "redact_url",
]
