"""Image download: GET a user-given URL through the pinned client, capped in size."""

from __future__ import annotations

import http.client
from urllib.parse import urljoin

from ..errors import FetchError, ImageTooLargeError, TransientFetchError
from .client import open_checked
from .statuses import Outcome, classify

__all__ = ["fetch_url"]

_CHUNK = 64 * 1024


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
    """Download a user-given URL's body, under every rule of :func:`~zoomreel.net.urls.check_url`.

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
            outcome = classify(status)
            if outcome is Outcome.REDIRECT:
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"{label} answered HTTP {status} without a Location")
                url = urljoin(url, location.strip())
                continue
            answered = f"{label} answered HTTP {status} {response.reason}".rstrip()
            if outcome is Outcome.RETRY:
                raise TransientFetchError(answered)
            if outcome is not Outcome.OK:
                raise FetchError(answered)
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

