"""The one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import falcon
import redis

from zoomreel.errors import (
    DiskFullError,
    FetchError,
    IdempotencyConflict,
    ImageTooLargeError,
    InputError,
    JobNotFound,
    QueueFullError,
    ServiceStopping,
    SpecError,
    StorageError,
    TooManyWaiting,
    ZoomreelError,
)
from zoomreel.jobs.disks import STORE_DISK_FULL, store_refused_writes

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


#: Domain errors and their HTTP status (first match wins; any other is a 500).
_CLIENT_ERRORS: tuple[tuple[type[ZoomreelError], int], ...] = (
    (QueueFullError, 429),
    (IdempotencyConflict, 422),
    (DiskFullError, 507),
    (TooManyWaiting, 503),
    (ServiceStopping, 503),
    (StorageError, 503),
    (RequestTooLarge, 413),
    (ImageTooLargeError, 413),
    (InputError, 400),
    # A route that fetches while the caller waits (the subject's): the URL they gave
    # failed, as a job's fetch fails with the same message and code 400.
    (FetchError, 400),
)


#: Redis answers that refuse a write for a while (besides MISCONF: its disk is full).
_REFUSALS = ("NOREPLICAS ", "READONLY ", "OOM ", "MASTERDOWN ")


class _Handlers:
    """Falcon error handlers answering with the envelope (or the one 404 shape)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers

    def failed(self, req: falcon.Request, resp: falcon.Response, code: int, message: str,
               **extra: Any) -> None:
        body = self.answers.envelope(code, message=message, endpoint=req.path)
        body.update(error=message, **extra)
        _answer(resp, code, body)

    def on_domain(self, req: falcon.Request, resp: falcon.Response, ex: ZoomreelError,
                  params: dict[str, Any]) -> None:
        if isinstance(ex, JobNotFound):
            _answer(resp, 404, not_found("Job", job_id=ex.job_id))
            return
        code = next((code for kind, code in _CLIENT_ERRORS if isinstance(ex, kind)), 500)
        extra: dict[str, Any] = {}
        if isinstance(ex, QueueFullError):
            extra["queue_length"] = ex.queue_length
            resp.set_header("Retry-After", str(ex.retry_after))
        elif isinstance(ex, TooManyWaiting | DiskFullError):
            resp.set_header("Retry-After", str(ex.retry_after))
        elif isinstance(ex, StorageError):  # the bucket: unreachable or refusing, for now
            resp.set_header("Retry-After", "5")
        elif isinstance(ex, ServiceStopping):
            extra["job_id"] = ex.job_id
            resp.set_header("Retry-After", "5")
        elif isinstance(ex, SpecError):
            extra.update(field=ex.field, rule=ex.rule)
        elif isinstance(ex, IdempotencyConflict):
            extra["idempotency_key"] = ex.key
        elif code == 500:
            log.error("unexpected domain error: %s", ex)
        self.failed(req, resp, code, str(ex), **extra)

    def on_http(self, req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError,
                params: dict[str, Any]) -> None:
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
        self.failed(req, resp, ex.status_code, message)
        headers = ex.headers or {}
        for name, value in (headers.items() if isinstance(headers, Mapping) else headers):
            resp.set_header(name, value)

    def on_store_down(self, req: falcon.Request, resp: falcon.Response, ex: redis.RedisError,
                      params: dict[str, Any]) -> None:
        if store_refused_writes(ex):  # its disk is full: not the same advice
            log.error("job store's disk full on %s %s: %s", req.method, req.path, ex)
            self.failed(req, resp, 507, f"{STORE_DISK_FULL}; retry in "
                                        f"{DiskFullError.retry_after} s")
            resp.set_header("Retry-After", str(DiskFullError.retry_after))
            return
        if isinstance(ex, redis.ResponseError) and any(w in str(ex) for w in _REFUSALS):
            log.error("job store refused %s %s: %s", req.method, req.path, ex)
            self.failed(req, resp, 503, "The job store (Redis) refuses writes for now; nothing "
                                   "was changed, retry in a few seconds")
        else:
            log.error("job store unreachable on %s %s: %s", req.method, req.path, ex)
            self.failed(req, resp, 503, "The job store (Redis) is unreachable; nothing was "
                                   "changed, retry in a few seconds")
        resp.set_header("Retry-After", "5")

    def on_crash(self, req: falcon.Request, resp: falcon.Response, ex: Exception,
                 params: dict[str, Any]) -> None:
        log.exception("unhandled error on %s %s", req.method, req.path)
        self.failed(req, resp, 500, "Internal server error")


def register_error_handlers(app: falcon.App[falcon.Request, falcon.Response],
                            answers: Answers) -> None:
    """Map domain errors (and Falcon's own) to JSON answers with the envelope."""
    handlers = _Handlers(answers)
    app.add_error_handler(Exception, handlers.on_crash)
    app.add_error_handler(redis.RedisError, handlers.on_store_down)
    app.add_error_handler(falcon.HTTPError, handlers.on_http)
    app.add_error_handler(ZoomreelError, handlers.on_domain)
