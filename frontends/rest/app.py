"""create_app: the Falcon application, built from explicit arguments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import falcon

from zoomreel.jobs import JobService

from .auth import APIKeyMiddleware
from .cors import CORS
from .envelope import DOWNLOAD_PATH, LEGACY_PATH, Answers
from .errors import register_error_handlers
from .openapi import openapi_document
from .resources import (
    AuthenticateResource,
    ConvertResource,
    DownloadResource,
    HealthResource,
    JobsStatusResource,
    MetricsResource,
    OpenAPIResource,
    PageResource,
    PathResource,
    ReelResource,
    StatusResource,
    SubjectResource,
)

__all__ = ["create_app", "JSON_LIMIT"]

JSON_LIMIT = 64 * 1024
#: A reel's body: 100 slides with long (presigned) URLs and captions fit, and a body of
#: 10,000 short slides is read and answered 400 naming ``slides``, not 413.
REEL_JSON_LIMIT = 2 * 2**20


def create_app(service: JobService, answers: Answers, *, api_keys: Iterable[str],
               cors_origins: Iterable[str] = (), json_limit: int = JSON_LIMIT,
               upload_limit: int | None = None, convert_route: str = "documented",
               ) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the REST application.

    Args:
        service: the job system.
        answers: the documented answers; give the job service the same object's
            ``status`` so that webhooks carry what the status route says. Its signer,
            if any, also opens the download route to signed links.
        api_keys: keys accepted in ``X-API-Key`` on /v1 routes.
        cors_origins: browser origins allowed to call the API (none: no CORS headers).
        json_limit: largest JSON body, in bytes (413 above).
        upload_limit: largest multipart body; default the image cap plus 1 MiB.
        convert_route: ``documented`` (202 at once) or ``upstream`` (the legacy route's
            semantics on the convert route too).

    Returns:
        A WSGI application.
    """
    settings = service.settings
    if upload_limit is None:
        upload_limit = settings.max_image_bytes + 2**20
    # CORS first, so that its headers are on every answer, a 401 included: a browser
    # client can then tell a wrong key from a network failure.
    middleware: list[Any] = [  # Falcon types middleware by protocols these satisfy
        CORS(cors_origins),
        APIKeyMiddleware(api_keys, prefixes=("/v1/", "/metrics"), signer=answers.signer,
                         signed_prefix=DOWNLOAD_PATH + "/")]
    app = falcon.App(middleware=middleware)
    register_error_handlers(app, answers)
    app.add_route("/v1/image/convert/video", ConvertResource(
        service, answers, json_limit=json_limit, upload_limit=upload_limit,
        upstream=convert_route == "upstream"))
    app.add_route(LEGACY_PATH, ConvertResource(  # the upstream toolkit's route, as it is
        service, answers, json_limit=json_limit, upload_limit=upload_limit, upstream=True))
    reel_limit = settings.max_audio_bytes + settings.max_image_bytes + 2**20
    app.add_route("/v1/video/reel", ReelResource(
        service, answers, json_limit=max(json_limit, REEL_JSON_LIMIT),
        upload_limit=max(upload_limit, reel_limit)))
    app.add_route("/v1/toolkit/job/status", StatusResource(
        service, answers, json_limit=json_limit))
    app.add_route("/v1/toolkit/jobs/status", JobsStatusResource(
        service, answers, json_limit=json_limit))
    app.add_route("/v1/image/path", PathResource(service, answers, json_limit=json_limit))
    app.add_route("/v1/image/subject", SubjectResource(
        service, answers, json_limit=json_limit, upload_limit=upload_limit))
    app.add_route("/v1/toolkit/authenticate", AuthenticateResource(answers))
    app.add_route(DOWNLOAD_PATH + "/{filename}", DownloadResource(service))
    app.add_route("/health", HealthResource(service))
    app.add_route("/metrics", MetricsResource(service.metrics.registry))
    page = PageResource(media_origin=answers.media_origin())
    app.add_route("/", page)
    app.add_route("/web/{name}", page, suffix="file")
    app.add_route("/openapi.json", OpenAPIResource(
        openapi_document(settings.max_length, answers.build_number,
                         max_slides=settings.max_slides)))
    return app
