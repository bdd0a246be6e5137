"""CORS for browser clients on other origins: Falcon's own middleware, narrowed."""

from __future__ import annotations

from collections.abc import Iterable

import falcon

__all__ = ["CORS", "ALLOWED_HEADERS", "EXPOSED_HEADERS"]

#: Request headers a cross-origin client may send (besides the CORS-safelisted ones).
ALLOWED_HEADERS = "X-API-Key, Content-Type, Idempotency-Key"
#: Response headers a cross-origin client may read (besides the CORS-safelisted ones).
EXPOSED_HEADERS = ("Retry-After", "Content-Range", "Accept-Ranges", "Content-Disposition")


class CORS(falcon.CORSMiddleware):  # type: ignore[type-arg]  # generic on ASGI types only
    """``falcon.CORSMiddleware`` for the configured origins only.

    Falcon answers preflights (OPTIONS) and sets ``Access-Control-Allow-Origin`` for an
    allowed origin; a request from any other origin gets no CORS header at all. Two
    narrowings: a preflight is allowed :data:`ALLOWED_HEADERS` rather than whatever it
    asks for, and answers say ``Vary: Origin``, since they differ by origin.

    Args:
        origins: the allowed origins, exactly as browsers send them
            (``https://app.example.com``, no path).
    """

    def __init__(self, origins: Iterable[str]) -> None:
        super().__init__(allow_origins=[o.rstrip("/") for o in origins],
                         expose_headers=EXPOSED_HEADERS)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        resp.append_header("Vary", "Origin")
        super().process_response(req, resp, resource, req_succeeded)
        if resp.get_header("Access-Control-Allow-Headers") is not None:
            resp.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
