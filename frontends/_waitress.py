"""serve's HTTP server: waitress, with its own answers made the API's.

Waitress answers some requests before the app sees them: a malformed request line or
header, headers or a body over its limits, a transfer coding it does not know. Here

- each of those answers is the API's JSON envelope (``code``, ``message``, ``error``),
  as every other error is, instead of waitress's plain text;
- a request with both ``Content-Length`` and ``Transfer-Encoding``, or with
  ``Transfer-Encoding`` in HTTP/1.0, is refused with 400 and its connection closed
  (RFC 9112 6.1 allows it). Waitress reads such a body as chunked; a proxy in front that
  goes by ``Content-Length`` would see another request boundary than waitress:
  request smuggling;
- a transfer coding other than ``chunked`` is a 400, not waitress's 501: bad input is
  a 4xx, always.

Waitress has no hooks for this; its channel class names the parser and the error task
it uses, so the server's channels are given subclasses of both.
"""

from __future__ import annotations

import json
from typing import Any

from waitress import create_server as _create_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, TransferEncodingNotImplemented
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from ._connections import ConnectionGuard
from .rest.envelope import Answers

__all__ = ["create_server", "waitress_messages"]

#: The message of each of waitress's own error codes; a 400's names what was wrong.
waitress_messages = {
    413: "body: the request is larger than this service accepts",
    431: "headers: the request's headers are larger than this service accepts",
    500: "Internal server error",  # the app failed while its answer was being written
}


class _Parser(HTTPRequestParser):  # type: ignore[misc]  # waitress has no type hints
    """Waitress's request parser, refusing ambiguous framing (see the module's text)."""

    def parse_header(self, header_plus: bytes) -> None:
        try:
            super().parse_header(header_plus)
        except TransferEncodingNotImplemented:
            raise ParsingError("Transfer-Encoding: only chunked is accepted") from None
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("Content-Length and Transfer-Encoding: chunked must not "
                               "both be given")
        if "TRANSFER_ENCODING" in self.headers:  # HTTP/1.0: waitress leaves it there
            raise ParsingError("Transfer-Encoding needs HTTP/1.1")


def _error_task(answers: Answers) -> type[Any]:
    """Waitress's error task, answering with ``answers``' envelope."""

    class Task(ErrorTask):  # type: ignore[misc]  # waitress has no type hints
        def execute(self) -> None:
            error = self.request.error
            code = int(error.code)
            message = waitress_messages.get(code) or f"request: {str(error.body)[:200]}"
            body = answers.envelope(code, message=message)  # the path may be unknown
            body["error"] = message
            data = json.dumps(body).encode()
            self.status = f"{code} {error.reason}"
            self.response_headers.extend([("Content-Type", "application/json")])
            self.set_close_on_finish()
            self.content_length = len(data)
            self.write(data)

    return Task


def create_server(app: Any, answers: Answers, socket_map: dict[int, Any] | None = None,
                  guard: ConnectionGuard | None = None, **adjustments: Any) -> Any:
    """``waitress.create_server(app, **adjustments)`` with the changes above.

    Args:
        answers: makes the envelope of waitress's own error answers.
        socket_map: the map of the server's event loop (waitress's ``map``), for other
            dispatchers to join it; default a new one.
        guard: the connection rules (idle and slow connections, _connections.py).
    """
    socket_map = {} if socket_map is None else socket_map
    server = _create_server(app, map=socket_map, **adjustments)
    channel = type("Channel", (HTTPChannel,), {
        "parser_class": _Parser, "error_task_class": _error_task(answers)})
    if guard is not None:
        channel = guard.channel_class(channel)
    for dispatcher in socket_map.values():  # one listening server per address
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel
    return server
