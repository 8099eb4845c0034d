"""The JSON-RPC client against a scriptable loopback node: a bad reply is a 503, never a result."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from asgi_wallet_auth.errors import StoreUnavailable
from asgi_wallet_auth.rpc import (
    CallResult,
    ChainUnavailable,
    RpcClient,
    RpcError,
    parse_rpc_urls,
    redact_url,
)
from tests.anvil_node import free_port
from tests.rpc_server import FakeNode, Reply, chain, error, result, running

CHAIN = 1
KEY = "secret-api-key"  # in FakeNode's URL path, as a provider's key would be


@pytest.fixture
def node() -> Iterator[FakeNode]:
    yield from running(chain(CHAIN, lambda request: result(request, "0x10")))


@pytest.fixture
async def client(node: FakeNode) -> AsyncIterator[RpcClient]:
    async with RpcClient({CHAIN: node.url}, timeout=1.0) as rpc:
        yield rpc


# -- configuration ----------------------------------------------------------------------------


def test_rpc_url_options_parse_into_a_chain_map() -> None:
    urls = parse_rpc_urls(["1=https://node.example/v3/key", "137=http://127.0.0.1:8545"])
    assert urls == {1: "https://node.example/v3/key", 137: "http://127.0.0.1:8545"}
    assert parse_rpc_urls([]) == {}


@pytest.mark.parametrize(
    "spec",
    [
        "1",
        "=https://provider.invalid/",
        "x=https://provider.invalid/",
        "0x1=https://provider.invalid/",
        "-1=https://provider.invalid/",
        " 1=https://provider.invalid/",
        "\u0661=https://provider.invalid/",  # an Arabic-Indic one: str.isdigit() but not ASCII
        "0=https://provider.invalid/",
        f"{2**64}=https://provider.invalid/",
        "1=",
        "1=ftp://provider.invalid/",
        "1=provider.invalid",
        "1=https://provider.invalid/ ",
        "1=https://provider.invalid/#frag",
    ],
)
def test_malformed_rpc_url_options_are_refused_without_echoing_the_url(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rpc_urls([spec])
    assert "provider.invalid" not in str(info.value)


def test_a_chain_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_rpc_urls(["1=https://a.example/", "1=https://b.example/"])


@pytest.mark.parametrize(
    ("urls", "kwargs", "match"),
    [
        ({}, {}, "urls must map"),
        ({True: "https://a.example/"}, {}, "integers"),
        ({"1": "https://a.example/"}, {}, "integers"),
        ({0: "https://a.example/"}, {}, "out of range"),
        ({1: "https://a.example/", 2: "https://a.example/"}, {}, "its own URL"),
        ({1: 42}, {}, "http"),
        ({1: "https://a.example/"}, {"timeout": 0}, "timeout"),
        ({1: "https://a.example/"}, {"timeout": math.nan}, "timeout"),
        ({1: "https://a.example/"}, {"timeout": math.inf}, "timeout"),
        ({1: "https://a.example/"}, {"timeout": True}, "timeout"),
        ({1: "https://a.example/"}, {"timeout": "5"}, "timeout"),
        ({1: "https://a.example/"}, {"retries": -1}, "retries"),
        ({1: "https://a.example/"}, {"retries": 6}, "retries"),
        ({1: "https://a.example/"}, {"max_response_bytes": 10}, "max_response_bytes"),
        ({1: "https://a.example/"}, {"max_connections": 0}, "max_connections"),
    ],
)
def test_bad_configuration_is_refused_at_construction(
    urls: Any, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RpcClient(urls, **kwargs)


def test_redacted_url_keeps_only_scheme_host_and_port() -> None:
    assert redact_url("https://user:pw@node.example:8443/v3/key?k=1") == "https://node.example:8443"
    assert redact_url("http://127.0.0.1/") == "http://127.0.0.1"


def test_unavailable_chain_is_a_store_unavailable_503_with_its_own_code() -> None:
    error_ = ChainUnavailable()
    assert isinstance(error_, StoreUnavailable)
    assert (error_.status, error_.code) == (503, 50302)
    assert isinstance(RpcError(-32000), ChainUnavailable)


# -- good answers -----------------------------------------------------------------------------


async def test_chain_id_is_asked_once_then_requests_go_straight_through(
    client: RpcClient, node: FakeNode
) -> None:
    assert await client.request(CHAIN, "eth_blockNumber", []) == "0x10"
    assert await client.request(CHAIN, "eth_blockNumber", []) == "0x10"
    assert node.methods() == ["eth_chainId", "eth_blockNumber", "eth_blockNumber"]
    assert client.chain_ids == frozenset({CHAIN})


async def test_eth_call_returns_the_bytes_and_sends_deployless_data(
    client: RpcClient, node: FakeNode
) -> None:
    node.script = chain(CHAIN, lambda request: result(request, "0x01"))
    assert await client.eth_call(CHAIN, b"\x60\x00") == CallResult(b"\x01")
    assert node.requests[-1]["params"] == [{"data": "0x6000"}, "latest"]


@pytest.mark.parametrize(
    ("code", "message", "data", "output"),
    [
        (3, "execution reverted", "0x08c379a0", b"\x08\xc3\x79\xa0"),
        (3, "execution reverted", None, b""),
        (3, "execution reverted", "not hex", b""),
        (-32000, "execution reverted: no", "0x", b""),
    ],
)
async def test_a_revert_is_a_call_result_not_a_failure(
    client: RpcClient, node: FakeNode, code: int, message: str, data: Any, output: bytes
) -> None:
    node.script = chain(CHAIN, lambda request: error(request, code, message, data))
    assert await client.eth_call(CHAIN, b"\x00") == CallResult(output, reverted=True)


@pytest.mark.parametrize(
    ("code", "message"),
    [(-32000, "out of gas"), (-32603, "internal error"), (-32005, "rate limited"), (429, "x")],
)
async def test_other_json_rpc_errors_are_the_nodes_failure(
    client: RpcClient, node: FakeNode, code: int, message: str
) -> None:
    node.script = chain(CHAIN, lambda request: error(request, code, message))
    with pytest.raises(RpcError) as info:
        await client.eth_call(CHAIN, b"\x00")
    assert info.value.rpc_code == code and info.value.status == 503
    with pytest.raises(RpcError):
        await client.request(CHAIN, "eth_blockNumber", [])


# -- bad answers ------------------------------------------------------------------------------

BAD_REPLIES: dict[str, Any] = {
    "not JSON": lambda r: Reply(b"<html>502 Bad Gateway</html>"),
    "empty body": lambda r: Reply(b""),
    "HTTP 502 with a JSON-RPC body": lambda r: Reply(result(r, "0x01").body, status=502),
    "HTTP 429": lambda r: Reply(b"{}", status=429),
    "a batch array": lambda r: Reply(b"[" + result(r, "0x01").body + b"]"),
    "jsonrpc 1.0": lambda r: Reply(b'{"jsonrpc":"1.0","id":%d,"result":"0x01"}' % r["id"]),
    "no jsonrpc member": lambda r: Reply(b'{"id":%d,"result":"0x01"}' % r["id"]),
    "another id": lambda r: Reply(b'{"jsonrpc":"2.0","id":%d,"result":"0x01"}' % (r["id"] + 1)),
    "id as text": lambda r: Reply(b'{"jsonrpc":"2.0","id":"%d","result":"0x01"}' % r["id"]),
    "id as float": lambda r: Reply(b'{"jsonrpc":"2.0","id":%d.0,"result":"0x01"}' % r["id"]),
    "null id": lambda r: Reply(b'{"jsonrpc":"2.0","id":null,"result":"0x01"}'),
    "result and error": lambda r: Reply(
        b'{"jsonrpc":"2.0","id":%d,"result":"0x01","error":{"code":3,"message":"m"}}' % r["id"]
    ),
    "neither result nor error": lambda r: Reply(b'{"jsonrpc":"2.0","id":%d}' % r["id"]),
    "error not an object": lambda r: Reply(b'{"jsonrpc":"2.0","id":%d,"error":3}' % r["id"]),
    "error code as text": lambda r: Reply(
        b'{"jsonrpc":"2.0","id":%d,"error":{"code":"3","message":"m"}}' % r["id"]
    ),
    "error code true": lambda r: Reply(
        b'{"jsonrpc":"2.0","id":%d,"error":{"code":true,"message":"m"}}' % r["id"]
    ),
    "NaN in the reply": lambda r: Reply(b'{"jsonrpc":"2.0","id":%d,"result":NaN}' % r["id"]),
    "odd-length hex": lambda r: result(r, "0x1"),
    "hex without 0x": lambda r: result(r, "01"),
    "non-hex digits": lambda r: result(r, "0xzz"),
    "a number": lambda r: result(r, 1),
    "true": lambda r: result(r, True),
    "null": lambda r: result(r, None),
    "an object": lambda r: result(r, {"output": "0x01"}),
    "too large, with its length": lambda r: result(r, "0x" + "01" * 40_000),
    "too large, streamed": lambda r: Reply(result(r, "0x" + "01" * 40_000).body, length=False),
}


@pytest.mark.parametrize("kind", list(BAD_REPLIES))
async def test_a_malformed_or_oversized_eth_call_reply_is_a_503_never_a_result(
    node: FakeNode, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    node.script = chain(CHAIN, BAD_REPLIES[kind])
    async with RpcClient({CHAIN: node.url}, timeout=2.0, max_response_bytes=64 * 1024) as rpc:
        with (
            caplog.at_level(logging.WARNING, "asgi_wallet_auth.rpc"),
            pytest.raises(ChainUnavailable) as info,
        ):
            await rpc.eth_call(CHAIN, b"\x00")
    assert info.value.status == 503
    assert "eth_call" in node.methods()
    assert caplog.records and all(KEY not in r.getMessage() for r in caplog.records)


async def test_a_bad_chain_id_reply_is_refused_before_any_call(node: FakeNode) -> None:
    node.script = lambda request: result(request, "0x")  # not a QUANTITY
    async with RpcClient({CHAIN: node.url}) as rpc:
        with pytest.raises(ChainUnavailable):
            await rpc.eth_call(CHAIN, b"\x00")
    assert node.methods() == ["eth_chainId"]


async def test_a_chain_id_error_is_never_read_as_the_calls_revert(node: FakeNode) -> None:
    node.script = lambda request: error(request, 3, "execution reverted", "0x")
    async with RpcClient({CHAIN: node.url}) as rpc:
        with pytest.raises(ChainUnavailable):
            await rpc.eth_call(CHAIN, b"\x00")
    assert node.methods() == ["eth_chainId"]


async def test_a_reply_slower_than_the_timeout_is_a_503_and_is_not_retried(
    node: FakeNode,
) -> None:
    node.script = chain(CHAIN, lambda request: Reply(hold=True))
    async with RpcClient({CHAIN: node.url}, timeout=0.3, retries=3) as rpc:
        started = time.monotonic()
        with pytest.raises(ChainUnavailable):
            await rpc.eth_call(CHAIN, b"\x00")
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0
    assert node.methods() == ["eth_chainId", "eth_call"]


# -- the node's chain, and its connection -----------------------------------------------------


async def test_a_node_of_another_chain_is_refused_on_first_use_with_the_reason(
    node: FakeNode, caplog: pytest.LogCaptureFixture
) -> None:
    node.script = chain(5, lambda request: result(request, "0x01"))
    async with RpcClient({CHAIN: node.url}) as rpc:
        with (
            caplog.at_level(logging.WARNING, "asgi_wallet_auth.rpc"),
            pytest.raises(ChainUnavailable),
        ):
            await rpc.eth_call(CHAIN, b"\x00")
        assert node.methods() == ["eth_chainId"]  # no call was made on the wrong chain
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "serves chain 5, not chain 1" in logged and KEY not in logged
        # A refusal is not remembered: once the node serves the right chain, it is used.
        node.script = chain(CHAIN, lambda request: result(request, "0x01"))
        assert await rpc.eth_call(CHAIN, b"\x00") == CallResult(b"\x01")


async def test_check_at_startup_names_a_node_of_another_chain(node: FakeNode) -> None:
    node.script = chain(5)
    async with RpcClient({CHAIN: node.url}) as rpc:
        with pytest.raises(ValueError, match="chain 1") as info:
            await rpc.check()
    assert "serves chain 5" in str(info.value) and KEY not in str(info.value)


async def test_check_at_startup_reports_a_node_that_is_down() -> None:
    down = f"http://127.0.0.1:{free_port()}/"
    async with RpcClient({7: down}, timeout=1.0) as rpc:
        with pytest.raises(ChainUnavailable, match="chain 7"):
            await rpc.check()


async def test_a_checked_node_is_not_asked_its_chain_again(
    client: RpcClient, node: FakeNode
) -> None:
    await client.check()
    await client.request(CHAIN, "eth_blockNumber", [])
    assert node.methods() == ["eth_chainId", "eth_blockNumber"]


async def test_a_chain_without_a_url_is_unavailable_and_sends_nothing(
    client: RpcClient, node: FakeNode
) -> None:
    with pytest.raises(ChainUnavailable):
        await client.eth_call(137, b"\x00")
    assert node.requests == []


async def test_a_node_that_is_down_is_a_503() -> None:
    async with RpcClient({CHAIN: f"http://127.0.0.1:{free_port()}/"}, timeout=1.0) as rpc:
        with pytest.raises(ChainUnavailable):
            await rpc.eth_call(CHAIN, b"\x00")


@pytest.mark.parametrize(("retries", "succeeds"), [(0, False), (1, True)])
async def test_a_dropped_connection_is_retried_within_the_policy(
    node: FakeNode, retries: int, succeeds: bool
) -> None:
    dropped: list[int] = []

    def flaky(request: dict[str, Any]) -> Reply:
        if not dropped:
            dropped.append(1)
            return Reply(hang_up=True)
        return result(request, "0x01")

    node.script = chain(CHAIN, flaky)
    async with RpcClient({CHAIN: node.url}, retries=retries) as rpc:
        if succeeds:
            assert await rpc.eth_call(CHAIN, b"\x00") == CallResult(b"\x01")
        else:
            with pytest.raises(ChainUnavailable):
                await rpc.eth_call(CHAIN, b"\x00")
    assert node.methods().count("eth_call") == 1 + retries
