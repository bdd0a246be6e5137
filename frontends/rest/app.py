"""create_app: the Falcon application, built from explicit arguments."""

from __future__ import annotations

from collections.abc import Iterable

import falcon

from engine.jobs import JobService
from frontends.rest.auth import APIKeyMiddleware
from frontends.rest.errors import register_error_handlers
from frontends.rest.openapi import openapi_document
from frontends.rest.resources import (
    ConvertResource,
    DownloadResource,
    HealthResource,
    OpenAPIResource,
    StatusResource,
)

__all__ = ["create_app", "JSON_LIMIT"]

JSON_LIMIT = 64 * 1024


def create_app(service: JobService, *, api_keys: Iterable[str], public_url: str | None = None,
               json_limit: int = JSON_LIMIT, upload_limit: int | None = None) -> falcon.App:
    """Build the REST application.

    Args:
        service: the job system.
        api_keys: keys accepted in ``X-API-Key`` on /v1 routes.
        public_url: base of ``download_url``; None = the address a request came in on.
        json_limit: largest JSON body, in bytes (413 above).
        upload_limit: largest multipart body; default the image cap plus 1 MiB.

    Returns:
        A WSGI application.
    """
    settings = service.settings
    public_url = (public_url or settings.public_url or "").rstrip("/") or None
    if upload_limit is None:
        upload_limit = settings.max_image_bytes + 2**20
    app = falcon.App(middleware=[APIKeyMiddleware(api_keys)])
    register_error_handlers(app, settings.build_number)
    app.add_route("/v1/image/convert/video", ConvertResource(
        service, public_url=public_url, json_limit=json_limit, upload_limit=upload_limit))
    app.add_route("/v1/toolkit/job/status", StatusResource(
        service, public_url=public_url, json_limit=json_limit))
    app.add_route("/v1/storage/download/{filename}", DownloadResource(service))
    app.add_route("/health", HealthResource(service))
    app.add_route("/openapi.json", OpenAPIResource(
        openapi_document(settings.max_length, settings.build_number)))
    return app
