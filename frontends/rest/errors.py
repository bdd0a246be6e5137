"""The one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import redis

from zoomreel.errors import (
    ImageTooLargeError,
    InputError,
    JobNotFound,
    QueueFullError,
    SpecError,
    ZoomreelError,
)

from .envelope import Answers, not_found

__all__ = ["NotFound", "RequestTooLarge", "register_error_handlers"]

log = logging.getLogger(__name__)


class RequestTooLarge(InputError):
    """The request body is over the configured limit."""


class NotFound(falcon.HTTPNotFound):
    """404 for a ``what`` (``"File"``, ...) asked for by ``identity``: answered with
    :func:`.envelope.not_found`, like an unknown job and an unknown route.

    Args:
        what: the kind of thing, capitalised.
        identity: the name it was asked for by, e.g. ``filename="..."``.
    """

    def __init__(self, what: str, **identity: str) -> None:
        super().__init__()
        self.what = what
        self.identity = identity


def _answer(resp: falcon.Response, status: int, body: dict[str, Any]) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_JSON  # a resource may have set its own (a video's)
    resp.media = body


def register_error_handlers(app: falcon.App, answers: Answers) -> None:
    """Map domain errors (and Falcon's own) to JSON answers with the envelope."""

    def failed(resp: falcon.Response, code: int, message: str, **extra: Any) -> None:
        body = answers.envelope(code, message=message)
        body.update(error=message, **extra)
        _answer(resp, code, body)

    def on_domain(req: falcon.Request, resp: falcon.Response, ex: ZoomreelError,
                  params: dict[str, Any]) -> None:
        if isinstance(ex, JobNotFound):
            _answer(resp, 404, not_found("Job", job_id=ex.job_id))
        elif isinstance(ex, QueueFullError):
            failed(resp, 429, str(ex), queue_length=ex.queue_length)
            resp.set_header("Retry-After", str(ex.retry_after))
        elif isinstance(ex, RequestTooLarge | ImageTooLargeError):
            failed(resp, 413, str(ex))
        elif isinstance(ex, SpecError):
            failed(resp, 400, str(ex), field=ex.field, rule=ex.rule)
        elif isinstance(ex, InputError):
            failed(resp, 400, str(ex))
        else:
            log.error("unexpected domain error: %s", ex)
            failed(resp, 500, str(ex))

    def on_http(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError,
                params: dict[str, Any]) -> None:
        code = ex.status_code
        if isinstance(ex, NotFound):
            _answer(resp, 404, not_found(ex.what, **ex.identity))
            return
        if isinstance(ex, falcon.HTTPNotFound):  # no route has this path
            _answer(resp, 404, not_found("Route", path=req.path))
            return
        message = ex.title or "Error"
        if isinstance(ex, falcon.MediaMalformedError | falcon.MediaNotFoundError):
            message = "body: must be valid JSON (or multipart/form-data)"
        elif ex.description:
            message = f"{message}: {ex.description}"
        failed(resp, code, message)
        for name, value in (ex.headers or {}).items():
            resp.set_header(name, value)

    def on_store_down(req: falcon.Request, resp: falcon.Response, ex: redis.RedisError,
                      params: dict[str, Any]) -> None:
        log.error("job store unreachable on %s %s: %s", req.method, req.path, ex)
        failed(resp, 503, "The job store (Redis) is unreachable; nothing was changed, "
                          "retry in a few seconds")
        resp.set_header("Retry-After", "5")

    def on_crash(req: falcon.Request, resp: falcon.Response, ex: Exception,
                 params: dict[str, Any]) -> None:
        log.exception("unhandled error on %s %s", req.method, req.path)
        failed(resp, 500, "Internal server error")

    app.add_error_handler(Exception, on_crash)
    app.add_error_handler(redis.RedisError, on_store_down)
    app.add_error_handler(falcon.HTTPError, on_http)
    app.add_error_handler(ZoomreelError, on_domain)
