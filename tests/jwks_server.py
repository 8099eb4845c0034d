"""A scriptable JWKS endpoint on a loopback port: it counts fetches and misbehaves on demand.

The test sets ``reply`` (any bytes, status and headers) between requests; ``stop`` closes the port
so a fetch meets a refused connection, ``hold`` delays every answer past a client's timeout.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A held reply waits at most this long (bounded, like every loop here).
HOLD_LIMIT = 10.0


@dataclass(frozen=True)
class Reply:
    """What the endpoint answers to every GET."""

    body: bytes = b'{"keys":[]}'
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"cache-control": "max-age=300"})
    #: False: no Content-Length; the body ends when the connection closes.
    length: bool = True
    hold: bool = False


def jwks_reply(document: Any, max_age: int = 300) -> Reply:
    """A well-formed JWKS answer."""
    return Reply(json.dumps(document).encode(), headers={"cache-control": f"max-age={max_age}"})


class JwksServer:
    """The server: ``url``, ``fetches`` (how many GETs it answered), ``reply``."""

    def __init__(self, reply: Reply | None = None, port: int = 0) -> None:
        self.reply = reply if reply is not None else Reply()
        self.fetches = 0
        self.connections: list[socket.socket] = []
        self.closing = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                endpoint.connections.append(self.connection)

            def do_GET(self) -> None:
                endpoint.fetches += 1
                reply = endpoint.reply
                if reply.hold:
                    endpoint.closing.wait(HOLD_LIMIT)
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length:
                    self.send_header("content-length", str(len(reply.body)))
                else:
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.stopped = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close the port: later fetches are refused connections."""
        if not self.stopped:
            self.stopped = True
            self.closing.set()
            self.server.shutdown()
            self.server.server_close()
            for connection in self.connections:  # kept-alive connections go down too
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.thread.join(timeout=5)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def running(reply: Reply | None = None) -> Iterator[JwksServer]:
    """A fixture body: the endpoint runs for the test and is shut down after it."""
    with JwksServer(reply) as server:
        yield server
