"""Fetch user-given URLs without letting them reach inside our network.

Every URL a user hands us (``image_url``, ``webhook_url``) goes through the same gate:

1. Only ``http`` and ``https``, no credentials, a real host name or a canonical IP
   literal (odd numeric forms such as ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and
   ``127.1`` are refused outright: resolvers and libraries disagree on what they mean).
2. The host is resolved once, and every address it resolves to is classified by
   :func:`is_forbidden_address`; one forbidden address refuses the URL.
3. The connection goes to an address that was checked, never to the name: there is no
   second DNS lookup, so DNS rebinding has no window. The ``Host`` header, TLS SNI and
   certificate verification still use the host name.
4. A redirect is a new URL and goes through all of the above again.

``allow_private=True`` lifts step 2's address rule only (local use and tests); the
callers decide it, from ``ZOOMREEL_ALLOW_PRIVATE_URLS``.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from engine.addresses import IPAddress, is_forbidden_address
from engine.errors import (
    FetchError,
    ImageTooLargeError,
    TransientFetchError,
    URLRefusedError,
    ZoomreelError,
)

__all__ = [
    "IPAddress",
    "check_url",
    "fetch_url",
    "is_forbidden_address",
    "open_checked",
    "REDIRECT_STATUSES",
]

#: Statuses that carry a ``Location`` to follow.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_CHUNK = 64 * 1024

# -- URL rules ----------------------------------------------------------------

# A DNS label after IDNA encoding (underscores do occur in real host names).
_HOST_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")
# A last label that WHATWG URL parsers, inet_aton and friends read as a number.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Keep what RFC 3986 allows in a path and query; quote the rest (spaces, non-ASCII).
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII (IDNA) name or IP literal, no brackets
    port: int
    target: str  # path and query, as sent in the request line
    literal: IPAddress | None


def _parse(url: str, label: str) -> _Target:
    """Apply the rules that need no lookup; raise URLRefusedError on any breach."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise URLRefusedError(f"{label} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"'{scheme}:'" if scheme else "none"
        raise URLRefusedError(f"{label} must be an http or https URL (scheme was {shown})")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise URLRefusedError(f"{label} must not contain credentials (user:password@)")
    raw_host = parts.hostname
    if not raw_host:
        raise URLRefusedError(f"{label} has no host")
    if port == 0:
        raise URLRefusedError(f"{label} has an invalid port 0")
    if port is None:
        port = 443 if scheme == "https" else 80

    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(raw_host)
    except ValueError:
        literal = None
    if literal is not None:
        if isinstance(literal, ipaddress.IPv6Address) and literal.scope_id:
            raise URLRefusedError(f"{label} must not use an IPv6 zone id ({raw_host})")
        host = str(literal)
    else:
        try:
            host = raw_host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise URLRefusedError(f"{label} has an invalid host name: {raw_host!r}") from None
        if not _HOST_RE.match(host):
            raise URLRefusedError(f"{label} has an invalid host name: {raw_host!r}")
        last = host.rstrip(".").rsplit(".", 1)[-1]
        if _NUMERIC_LABEL_RE.match(last):
            # 2130706433, 0x7f.1, 0177.0.0.1, 127.1, 127.0.0.1. ...: numbers that are
            # not a canonical dotted quad, read differently by different parsers.
            raise URLRefusedError(
                f"{label} uses an unusual numeric host form ({raw_host}); "
                "write an IP address as four decimal numbers, or use a host name"
            )

    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE)
    return _Target(scheme, host, port, target, literal)


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (a test seam)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(seen)


def _checked_addresses(
    t: _Target, allow_private: bool, label: str, at_submit: bool
) -> list[IPAddress]:
    """Resolve ``t.host`` once and check every address; the caller connects to these."""
    if t.literal is not None:
        addresses = [t.literal]
    else:
        try:
            addresses = _resolve(t.host, t.port)
        except (socket.gaierror, UnicodeError) as exc:
            message = f"{label}: could not resolve host {t.host!r}"
            if at_submit:
                raise URLRefusedError(message) from None
            if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN:
                raise TransientFetchError(message + " (temporary DNS failure)") from None
            raise FetchError(message) from None
        if not addresses:
            raise URLRefusedError(f"{label}: host {t.host!r} has no addresses")
    if not allow_private:
        for ip in addresses:
            reason = is_forbidden_address(ip)
            if reason is not None:
                where = f"{ip} is" if t.literal is not None else f"{t.host!r} resolves to {ip},"
                raise URLRefusedError(f"{label} refused: {where} not a public address ({reason})")
    return addresses


def check_url(url: str, *, allow_private: bool = False, label: str = "URL") -> None:
    """Check a user-given URL at submit time, so that a bad one is refused at once.

    Applies every rule of :func:`fetch_url` that can be known before fetching:
    scheme, credentials, host form, and (unless ``allow_private``) the addresses the
    host resolves to now. A later fetch checks again; DNS may have changed.

    Args:
        url: the URL as the user gave it.
        allow_private: lift the address rule (local use, tests).
        label: the field's name as the user knows it, used in the message
            (``"image_url"``, ``"webhook_url"``).

    Raises:
        URLRefusedError: the URL breaks a rule, or its host does not resolve.
    """
    _checked_addresses(_parse(url, label), allow_private, label, at_submit=True)


# -- the pinned connection ------------------------------------------------------


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
    t = _parse(url, label)
    addresses = _checked_addresses(t, allow_private, label, at_submit=False)
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


# -- image download -----------------------------------------------------------


def fetch_url(
    url: str,
    *,
    max_bytes: int = 50 * 2**20,
    allow_private: bool = False,
    max_redirects: int = 3,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    total_timeout: float | None = 300.0,
    label: str = "image_url",
) -> bytes:
    """Download a user-given URL's body, under every rule of :func:`check_url`.

    Follows up to ``max_redirects`` redirects, checking each hop afresh. The content
    type is not looked at: the caller decodes the bytes. No content coding is asked
    for, so the size cap is the size on the wire.

    Args:
        url: the http or https URL.
        max_bytes: the most body bytes accepted.
        allow_private: lift the address rule (local use, tests).
        max_redirects: redirects followed before giving up.
        connect_timeout: seconds to connect (TLS handshake included).
        read_timeout: seconds any single read may wait.
        total_timeout: seconds one hop may take in all, so a host that trickles bytes
            cannot hold a render worker (None: no limit).
        label: the URL's name in messages.

    Returns:
        The body.

    Raises:
        URLRefusedError: the URL (or a redirect) breaks a rule; the user's to fix.
        ImageTooLargeError: the body is over ``max_bytes``.
        TransientFetchError: connection refused or reset, time-out, HTTP 408, 429, 5xx.
        FetchError: any other failure (HTTP 4xx, DNS, too many redirects, ...).
    """
    for _hop in range(max_redirects + 1):
        with open_checked(
            "GET",
            url,
            headers={"User-Agent": "zoomreel", "Accept": "*/*"},
            allow_private=allow_private,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            total_timeout=total_timeout,
            label=label,
        ) as response:
            status = response.status
            if status in REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"{label} answered HTTP {status} without a Location")
                url = urljoin(url, location.strip())
                continue
            if status >= 500 or status in (408, 429):
                raise TransientFetchError(
                    f"{label} answered HTTP {status} {response.reason}".rstrip()
                )
            if not 200 <= status < 300:
                raise FetchError(f"{label} answered HTTP {status} {response.reason}".rstrip())
            return _read_capped(response, max_bytes, label)
    raise FetchError(f"{label} redirected more than {max_redirects} times")


def _read_capped(response: http.client.HTTPResponse, max_bytes: int, label: str) -> bytes:
    too_large = f"{label} is larger than the limit of {max_bytes} bytes"
    length = response.getheader("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise ImageTooLargeError(too_large)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(min(_CHUNK, max_bytes + 1 - size))
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLargeError(too_large)
        chunks.append(chunk)
    if length is not None and length.strip().isdigit() and size < int(length):
        # http.client returns a short body quietly when the host hangs up mid-way.
        raise TransientFetchError(f"{label}: the connection closed before the whole body arrived")
    return b"".join(chunks)
