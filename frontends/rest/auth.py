"""API-key middleware: every /v1 route needs a known ``X-API-Key``, except that a signed
link (see :mod:`.signing`) opens the one video it names."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import falcon

from .signing import URLSigner

__all__ = ["APIKeyMiddleware", "key_id"]

_SIGNED = "zoomreel_signed_link"


class APIKeyMiddleware:
    """Answer 401 ``{"message": "Unauthorized"}`` to /v1 requests without a valid key;
    a request with one gets ``req.context.key_id`` (see :func:`key_id`).

    A GET or HEAD without a good key but with a link signature is let through routing
    only: once the route is known, the signature is checked against the file it names,
    and only a resource that declares ``accepts_signed_links`` is reached. A bad,
    expired or other file's signature gets 403 and nothing is served.

    Args:
        keys: the accepted keys; every one is compared in constant time.
        prefixes: paths that need a key (those starting with one of these).
        signer: checks signed links; None = no request passes without the key.
        signed_prefix: the only paths a signed link may open.
    """

    def __init__(self, keys: Iterable[str], prefixes: tuple[str, ...] = ("/v1/",),
                 signer: URLSigner | None = None,
                 signed_prefix: str = "/v1/storage/download/") -> None:
        self.keys = [k.encode() for k in keys if k]
        if not self.keys:
            raise ValueError("at least one API key is needed")
        self.prefixes = prefixes
        self.signer = signer
        self.signed_prefix = signed_prefix

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Browsers send CORS preflights (OPTIONS) without the key: they only ask which
        # methods and headers are allowed, and get no data.
        if not req.path.startswith(self.prefixes) or req.method == "OPTIONS":
            return
        given = (req.get_header("X-API-Key") or "").encode()
        ok = False
        for key in self.keys:  # no early exit: time does not tell which key matched
            ok |= hmac.compare_digest(given, key)
        if ok:
            req.context.key_id = key_id(given)
            return
        if (self.signer is not None and req.method in ("GET", "HEAD")
                and req.path.startswith(self.signed_prefix) and "signature" in req.params):
            req.context[_SIGNED] = True  # checked in process_resource, on the route's file
            return
        resp.status = falcon.HTTP_401
        resp.media = {"message": "Unauthorized"}
        resp.complete = True

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         params: dict[str, Any]) -> None:
        if not req.context.get(_SIGNED):
            return
        assert self.signer is not None
        reason = "the link does not open this address"
        filename = params.get("filename")
        if getattr(resource, "accepts_signed_links", False) and isinstance(filename, str):
            reason = self.signer.check(filename, req.get_param("expires"),
                                       req.get_param("signature")) or ""
        if reason:
            resp.status = falcon.HTTP_403
            resp.media = {"message": f"Forbidden: {reason}"}
            resp.complete = True


def key_id(key: bytes) -> str:
    """Who a key belongs to, for per-key limits and logs: never the key itself."""
    return hashlib.sha256(key).hexdigest()[:16]
