"""The pinned HTTP client: one request to an address that passed the URL rules.

The connection goes to an address :mod:`zoomreel.net.urls` checked, never to the
name: there is no second DNS lookup. The ``Host`` header, TLS SNI and certificate
verification still use the host name.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import FetchError, TransientFetchError, URLRefusedError, ZoomreelError
from .addresses import IPAddress
from .urls import checked_addresses, parse_url

__all__ = ["open_checked"]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection that connects to checked addresses instead of resolving
    ``host`` again; ``host`` only fills the ``Host`` header (and SNI, for HTTPS)."""

    def __init__(
        self,
        host: str,
        port: int,
        addresses: list[IPAddress],
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._addresses = addresses
        self._read_timeout = read_timeout

    def _connect_checked(self) -> socket.socket:
        last: OSError | None = None
        for ip in self._addresses:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect((str(ip), self.port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        assert last is not None
        raise last

    def connect(self) -> None:
        self.sock = self._connect_checked()
        self.sock.settimeout(self._read_timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def __init__(self, *args: Any, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = context

    def connect(self) -> None:
        sock = self._connect_checked()
        # The handshake still counts as connecting; verification is against the name.
        server_hostname = self.host.rstrip(".")
        self.sock = self._context.wrap_socket(sock, server_hostname=server_hostname)
        self.sock.settimeout(self._read_timeout)


def _ssl_context() -> ssl.SSLContext:
    """The TLS context for https URLs: system CAs, hostname check on (a test seam)."""
    return ssl.create_default_context()


@contextmanager
def open_checked(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    allow_private: bool = False,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    total_timeout: float | None = None,
    label: str = "URL",
) -> Iterator[http.client.HTTPResponse]:
    """Send one request to a checked address, follow nothing, and yield the response.

    The URL goes through every rule of :func:`check_url`; the connection then goes to
    one of the addresses that were checked. Redirects are the caller's business (each
    hop is a new call). Network failures inside the ``with`` block, reading the body
    included, come out as zoomreel errors.

    Args:
        method: ``"GET"``, ``"POST"``, ...
        url: the user-given URL.
        body: the request body, if any.
        headers: extra request headers.
        allow_private: lift the address rule (local use, tests).
        connect_timeout: seconds to connect (TLS handshake included).
        read_timeout: seconds any single read may wait.
        total_timeout: seconds the whole exchange may take, so that a host that
            trickles its answer cannot hold us; None for no overall limit.
        label: the URL's name in messages (``"image_url"``).

    Yields:
        The response, status and headers read, body not yet read.

    Raises:
        URLRefusedError: the URL breaks a rule.
        TransientFetchError: connection refused or reset, time-out, temporary DNS failure.
        FetchError: other permanent failures (DNS, TLS certificate, not HTTP).
    """
    t = parse_url(url, label)
    addresses = checked_addresses(t, allow_private, label, at_submit=False)
    conn: _PinnedHTTPConnection
    if t.scheme == "https":
        conn = _PinnedHTTPSConnection(
            t.host, t.port, addresses, connect_timeout, read_timeout, context=_ssl_context()
        )
    else:
        conn = _PinnedHTTPConnection(t.host, t.port, addresses, connect_timeout, read_timeout)
    expired = threading.Event()
    timer = None
    if total_timeout is not None:
        timer = threading.Timer(total_timeout, _expire, (conn, expired))
        timer.daemon = True
        timer.start()
    try:
        with _network_errors(label, t.host, expired):
            try:
                conn.request(method, t.target, body=body, headers=dict(headers or {}))
            except http.client.InvalidURL as exc:
                raise URLRefusedError(f"{label} is not a valid URL: {exc}") from None
            response = conn.getresponse()
            yield response
    finally:
        if timer is not None:
            timer.cancel()
        conn.close()


def _expire(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """Unblock whatever the connection waits for (the overall time-out passed)."""
    expired.set()
    sock = conn.sock
    if sock is not None:
        try:
            # socket.socket's own shutdown: SSLSocket's would drop its TLS state under
            # the reading thread's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


@contextmanager
def _network_errors(label: str, host: str, expired: threading.Event) -> Iterator[None]:
    """Turn socket, TLS and HTTP-parsing failures into zoomreel's fetch errors."""
    try:
        try:
            yield
        except (OSError, http.client.HTTPException, ValueError):
            if expired.is_set():  # whatever broke, the time-out broke it
                raise TransientFetchError(f"{label}: {host} timed out") from None
            raise
    except ZoomreelError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise FetchError(
            f"{label}: the TLS certificate of {host} failed verification ({exc.verify_message})"
        ) from None
    except TimeoutError:
        raise TransientFetchError(f"{label}: {host} timed out") from None
    except ConnectionRefusedError:
        raise TransientFetchError(f"{label}: {host} refused the connection") from None
    except (ConnectionError, http.client.IncompleteRead) as exc:
        # RemoteDisconnected is a ConnectionResetError: the host hung up on us.
        raise TransientFetchError(f"{label}: connection to {host} failed ({exc})") from None
    except ssl.SSLError as exc:
        raise TransientFetchError(f"{label}: TLS with {host} failed ({exc.reason})") from None
    except http.client.HTTPException as exc:
        raise FetchError(f"{label}: {host} did not answer valid HTTP ({exc!r})") from None
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNABORTED):
            raise TransientFetchError(f"{label}: could not reach {host} ({exc})") from None
        raise FetchError(f"{label}: could not fetch from {host} ({exc})") from None
