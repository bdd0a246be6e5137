"""Signed download links: a video's URL that works without the ``X-API-Key`` header.

A ``<video>`` tag, a plain link or a no-code tool cannot send a header, so
``download_url`` carries its own proof in the query string::

    /v1/storage/download/{filename}?expires={unix seconds}&signature={base64url}

where the signature is HMAC-SHA256 over ``"{filename}\\n{expires}"``, keyed with a key
derived from the server's secret (a file in the data dir, created once, mode 0600, shared
by every process of one service). A link names one file and stops working at
``expires``; changing either breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

__all__ = ["URLSigner", "load_or_create_secret", "DEFAULT_TTL", "SECRET_FILE"]

#: Default lifetime of a signed link, seconds (``ZOOMREEL_SIGNED_URL_TTL``).
DEFAULT_TTL = 86400
#: The secret's file name in the data dir.
SECRET_FILE = "url_secret"
_PURPOSE = b"zoomreel download links v1"
# ASCII only: str.isdigit() and \d also take "²" or "٣", which int() then refuses or reads
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def load_or_create_secret(data_dir: Path) -> bytes:
    """The service's link secret, created once (32 random bytes, hex, mode 0600).

    Created under a temporary name and linked into place, so that processes starting
    together agree on one secret and none reads a half-written file.
    """
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            temp.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it to make a new one")
    return secret.encode()


class URLSigner:
    """Signs and checks download links.

    Args:
        secret: the server secret (the signing key is derived from it, so the file's
            bytes are never used directly as a MAC key).
        ttl: lifetime of a new link, seconds.
        clock: the time source (seconds since the epoch).
    """

    def __init__(self, secret: bytes, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("the link secret must not be empty")
        if ttl <= 0:
            raise ValueError("the link lifetime must be positive")
        self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
        self.ttl = ttl
        self.clock = clock

    def _signature(self, filename: str, expires: int) -> str:
        # surrogatepass: a name that is no text (an undecodable path) gets a signature
        # no link has, rather than an exception
        message = f"{filename}\n{expires}".encode("utf-8", "surrogatepass")
        mac = hmac.new(self._key, message, hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def query(self, filename: str) -> str:
        """The query string (without ``?``) that signs a link to ``filename``."""
        expires = int(self.clock() + self.ttl)
        return urlencode({"expires": expires, "signature": self._signature(filename, expires)})

    def check(self, filename: str, expires: str | None, signature: str | None) -> str | None:
        """Why a link is refused, or None when it is good.

        Args:
            filename: the file the request asks for.
            expires, signature: the link's query parameters, as given (any text).
        """
        if not expires or not signature or not _EXPIRES.fullmatch(expires):
            return "the link is not signed"
        if not _SIGNATURE.fullmatch(signature):
            return "the link's signature does not match"
        good = self._signature(filename, int(expires))
        if not hmac.compare_digest(good.encode(), signature.encode()):
            return "the link's signature does not match"
        if int(expires) < self.clock():
            return "the link has expired"
        return None
