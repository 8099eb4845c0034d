"""A scriptable JSON-RPC node on a loopback port: it counts requests and misbehaves on demand.

Each test gives it a ``script``: a function from the request (decoded JSON) to a ``Reply``. A reply
may be any bytes (not JSON, oversized), sent without a length (read to the close), held until the
test ends (slower than any timeout), or no reply at all (the connection just closes). ``forward``
relays requests to a real node, so counting sits in front of anvil.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

#: A slow reply waits at most this long for the test to end (bounded, like every loop here).
HOLD_LIMIT = 10.0


@dataclass(frozen=True)
class Reply:
    """What the server sends back for one request."""

    body: bytes = b""
    status: int = 200
    #: False: no Content-Length; the body ends when the connection closes.
    length: bool = True
    #: Wait until the server is closed before answering.
    hold: bool = False
    #: Close the connection without any response.
    hang_up: bool = False


def result(request: dict[str, Any], value: Any) -> Reply:
    """A well-formed JSON-RPC success for ``request``."""
    return Reply(json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": value}).encode())


def error(request: dict[str, Any], code: int, message: str, data: Any = None) -> Reply:
    """A well-formed JSON-RPC error for ``request``."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return Reply(json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "error": err}).encode())


Script = Callable[[dict[str, Any]], Reply]


def chain(chain_id: int, then: Script | None = None) -> Script:
    """Answer ``eth_chainId`` with ``chain_id`` and hand every other request to ``then``."""

    def script(request: dict[str, Any]) -> Reply:
        if request.get("method") == "eth_chainId":
            return result(request, hex(chain_id))
        if then is None:
            return error(request, -32601, "method not found")
        return then(request)

    return script


class forward:  # lower case: used like the other script builders
    """Relay each request to the node at ``url`` and its answer back."""

    def __init__(self, url: str) -> None:
        self.url = url
        # One pool: the relay adds no connection setup (a new client costs tens of ms).
        self.client = httpx.Client(verify=False, timeout=10)  # noqa: S501 - plain http

    def __call__(self, request: dict[str, Any]) -> Reply:
        answer = self.client.post(self.url, json=request)
        return Reply(answer.content, answer.status_code)

    def close(self) -> None:
        self.client.close()


class FakeNode:
    """The server: ``url``, ``requests`` (every decoded request, in order), ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.closing = threading.Event()
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm and a
                # delayed ACK hold the body back ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                request = json.loads(self.rfile.read(size))
                node.requests.append(request)
                reply = node.script(request)
                if reply.hang_up:
                    self.close_connection = True
                    return
                if reply.hold:
                    node.closing.wait(HOLD_LIMIT)
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                if reply.length:
                    self.send_header("content-length", str(len(reply.body)))
                else:
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll interval: shutdown() returns within it, so teardown costs no half second.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v3/secret-api-key"

    def methods(self) -> list[str]:
        return [str(r.get("method")) for r in self.requests]

    def __enter__(self) -> FakeNode:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        close = getattr(self.script, "close", None)
        if close is not None:
            close()


def running(script: Script) -> Iterator[FakeNode]:
    """A fixture body: the node runs for the test and is shut down after it."""
    with FakeNode(script) as node:
        yield node
