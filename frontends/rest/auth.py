"""API-key middleware: every /v1 route needs a known ``X-API-Key``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import falcon

__all__ = ["APIKeyMiddleware", "key_id"]


class APIKeyMiddleware:
    """Answer 401 ``{"message": "Unauthorized"}`` to /v1 requests without a valid key;
    a request with one gets ``req.context.key_id`` (see :func:`key_id`).

    Args:
        keys: the accepted keys; every one is compared in constant time.
        prefixes: paths that need a key (those starting with one of these).
    """

    def __init__(self, keys: Iterable[str], prefixes: tuple[str, ...] = ("/v1/",)) -> None:
        self.keys = [k.encode() for k in keys if k]
        if not self.keys:
            raise ValueError("at least one API key is needed")
        self.prefixes = prefixes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Browsers send CORS preflights (OPTIONS) without the key: they only ask which
        # methods and headers are allowed, and get no data.
        if not req.path.startswith(self.prefixes) or req.method == "OPTIONS":
            return
        given = (req.get_header("X-API-Key") or "").encode()
        ok = False
        for key in self.keys:  # no early exit: time does not tell which key matched
            ok |= hmac.compare_digest(given, key)
        if not ok:
            resp.status = falcon.HTTP_401
            resp.media = {"message": "Unauthorized"}
            resp.complete = True
            return
        req.context.key_id = key_id(given)


def key_id(key: bytes) -> str:
    """Who a key belongs to, for per-key limits and logs: never the key itself."""
    return hashlib.sha256(key).hexdigest()[:16]
