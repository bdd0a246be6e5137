"""The rules a user-given URL must pass before anything connects to it.

Every URL a user hands us (``image_url``, ``webhook_url``) goes through the same gate:

1. Only ``http`` and ``https``, no credentials, a real host name or a canonical IP
   literal (odd numeric forms such as ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and
   ``127.1`` are refused outright: resolvers and libraries disagree on what they mean).
2. The host is resolved once, and every address it resolves to is classified by
   :func:`~zoomreel.net.addresses.is_forbidden_address`; one forbidden address refuses
   the URL.
3. The caller connects to an address that was checked, never to the name
   (:mod:`zoomreel.net.client`), so DNS rebinding has no window.
4. A redirect is a new URL and goes through all of the above again.

``allow_private=True`` lifts step 2's address rule only (local use and tests); the
callers decide it, from ``ZOOMREEL_ALLOW_PRIVATE_URLS``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ..errors import FetchError, TransientFetchError, URLRefusedError
from .addresses import IPAddress, is_forbidden_address

__all__ = ["Target", "check_url", "checked_addresses", "parse_url"]

# A DNS label after IDNA encoding (underscores do occur in real host names).
_HOST_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")
# A last label that WHATWG URL parsers, inet_aton and friends read as a number.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Keep what RFC 3986 allows in a path and query; quote the rest (spaces, non-ASCII).
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA) name or IP literal, no brackets
    port: int
    target: str  # path and query, as sent in the request line
    literal: IPAddress | None


def parse_url(url: str, label: str) -> Target:
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

    host, literal = _host(raw_host, label)
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_PATH_SAFE)
    return Target(scheme, host, port, target, literal)


def _host(raw_host: str, label: str) -> tuple[str, IPAddress | None]:
    """The host in canonical form, and the address when it is one; URLRefusedError for
    a host that parsers may read differently."""
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(raw_host)
    except ValueError:
        literal = None
    if literal is not None:
        if isinstance(literal, ipaddress.IPv6Address) and literal.scope_id:
            raise URLRefusedError(f"{label} must not use an IPv6 zone id ({raw_host})")
        return str(literal), literal
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
    return host, None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (a test seam)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(seen)


def checked_addresses(
    t: Target, allow_private: bool, label: str, at_submit: bool
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
    checked_addresses(parse_url(url, label), allow_private, label, at_submit=True)
