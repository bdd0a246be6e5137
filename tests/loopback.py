"""Loopback HTTP for the tests: the one test server, and the spellings of the loopback
address that the default address rule must refuse (shared by the fetch, webhook and
REST tests, so every URL kind is checked against the same list).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "2130706433",
    "0x7f.1",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[2002:7f00:1::]",
    "0.0.0.0",
    "0",
    "127\u30020\u30020\u30021",  # ideographic full stops, which IDNA maps to dots
    "\uff11\uff12\uff17.0.0.1",  # full-width digits
    "LOCALHOST",
]


def free_port() -> int:
    """A loopback port nothing listens on now (it may be taken again before it is used:
    for a server that binds it at once, or a connection that must be refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the loopback HTTP server of every test ---------------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


class Request(NamedTuple):
    """One request a LoopbackServer received."""

    method: str
    path: str  # as sent, query included
    headers: dict[str, str]
    body: bytes


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"",
         **headers: str) -> None:
    """Answer ``status`` with ``body``; ``Content_Type="x"`` sends ``Content-Type: x``."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    try:
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up waiting, as some tests make it


class LoopbackServer:
    """A threaded HTTP/1.1 server on a loopback address (optionally TLS).

    Tests add routes (path without query -> a function answering through the handler)
    and read every request received in ``requests``. Unknown paths answer
    ``missing_status``. Handlers that stall on purpose wait on ``release``.
    """

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None,
                 missing_status: int = 404) -> None:
        self.requests: list[Request] = []
        self.routes: dict[str, Route] = {}
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(Request(self.command, self.path, dict(self.headers), body))
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    send(self, missing_status, b"no such route", Content_Type="text/plain")
                else:
                    route(self)

            do_GET = do_POST = do_HEAD = handle_one

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port: int = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str, host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def add(self, path: str, body: bytes, ctype: str = "image/jpeg", status: int = 200) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        self.routes[path] = lambda h: send(h, status, body, Content_Type=ctype)
        return self.url(path)

    def received(self, path: str, method: str | None = None) -> list[Request]:
        """The requests for ``path`` (query ignored), of ``method`` if given."""
        return [r for r in self.requests if r.path.split("?")[0] == path
                and (method is None or r.method == method)]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
