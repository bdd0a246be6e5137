"""The OpenAPI 3 document of the REST API, built from the same schemas it validates with."""

from __future__ import annotations

from typing import Any

from zoomreel.codecs import CONTENT_TYPES
from zoomreel.jobs.idempotency import HEADER as IDEMPOTENCY_HEADER
from zoomreel.jobs.idempotency import MAX_KEY_LENGTH
from zoomreel.jobs.states import JobState, WebhookState
from zoomreel.spec import PAGE_GROUPS, REQUEST_FIELDS, Field

from .envelope import DOWNLOAD_PATH
from .schema import (
    JOBS_STATUS_SCHEMA,
    STATUS_SCHEMA,
    SUBJECT_SCHEMA,
    path_schema,
    reel_schema,
    submit_schema,
)

__all__ = ["openapi_document", "page_keys"]


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, ref: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": _json({"$ref": f"#/components/schemas/{ref}"})}
    if headers:
        out["headers"] = headers
    return out


def page_keys(field: Field) -> dict[str, Any]:
    """How the web page shows ``field``: the ``x-`` keys it builds its form from."""
    keys: dict[str, Any] = {
        "x-label": field.label or field.name.replace("_", " ").capitalize(),
        "x-control": field.page_control, "x-group": field.group, "x-expert": field.expert}
    if field.hint:
        keys["x-hint"] = field.hint
    if field.choice_labels:
        keys["x-choice-labels"] = list(field.choice_labels)
    if field.alternative:
        keys["x-alternative"] = field.alternative
        keys["x-form"] = field.form
    return keys


def _submit_request(max_length: float) -> dict[str, Any]:
    """The submit body's schema with each field's page keys, and the page's sections."""
    schema = dict(submit_schema(max_length))  # a copy: the original is shared
    schema["properties"] = {name: {**prop, **page_keys(REQUEST_FIELDS[name])}
                            for name, prop in schema["properties"].items()}
    schema["x-groups"] = list(PAGE_GROUPS)
    return schema


def _idempotent(operation: dict[str, Any]) -> dict[str, Any]:
    """A submit route's ``operation`` with the Idempotency-Key header and its 422."""
    header = {
        "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
        "description": "Any unique string (a UUID, say), one per job you mean to make: a "
        "retry with the same key and the same body answers the first call's job (within "
        "ZOOMREEL_IDEMPOTENCY_TTL, per API key) and queues nothing; the same key with "
        "another body is a 422.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                   "pattern": "^[!-~]([ -~]*[!-~])?$"}}
    conflict = _answer(f"The {IDEMPOTENCY_HEADER} was used with another body: nothing "
                       "was queued", "Envelope")
    return {**operation, "parameters": [*operation.get("parameters", []), header],
            "responses": {**operation["responses"], "422": conflict}}


def openapi_document(max_length: float, version: str, *,
                     max_slides: int = 100) -> dict[str, Any]:
    """Describe every route, body and answer."""
    videos = {media: {"schema": {"type": "string", "format": "binary"}}
              for media in sorted({*CONTENT_TYPES.values(), "image/jpeg"})}
    num = {"type": "number"}
    nullable_int = {"type": ["integer", "null"]}
    envelope = {
        "type": "object",
        "required": ["endpoint", "code", "id", "job_id", "response", "message", "run_time",
                     "queue_time", "total_time", "pid", "queue_id", "queue_length",
                     "build_number"],
        "properties": {
            "endpoint": {"type": ["string", "null"], "description": "the route's path"},
            "code": {"type": "integer"}, "id": {}, "job_id": {"type": ["string", "null"]},
            "response": {}, "message": {"type": "string"}, "run_time": num,
            "queue_time": num, "total_time": num, "pid": {"type": "integer"},
            "queue_id": nullable_int, "queue_length": {"type": "integer"},
            "build_number": {"type": "string"},
            "error": {"type": "string"}, "field": {"type": "string"}, "rule": {"type": "string"},
        },
    }
    job_status = {
        "type": "object",
        "properties": {
            "job_status": {"enum": [s.value for s in JobState]},
            "job_id": {"type": "string"}, "queue_id": {"type": "integer"},
            "process_id": nullable_int,
            "response": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "download_url": {"type": "string"}, "filename": {"type": "string"},
                "message": {"type": "string"}, "size": {"type": "integer"},
                "poster_url": {"type": "string", "description": "one JPEG frame of the "
                               "video, stored beside it (a link as download_url)"},
                "duration": num, "width": {"type": "integer"}, "height": {"type": "integer"},
                "frame_rate": {"type": "integer"}}}]},
            "progress": {"type": "object", "properties": {
                "frames_done": {"type": "integer"}, "frames_total": {"type": "integer"},
                "percent": num, "eta_seconds": {"type": ["number", "null"]}}},
            "error": {"type": "string"},
            "webhook": {"type": "object", "properties": {
                "state": {"enum": [s.value for s in WebhookState]},
                "attempts": {"type": "integer"}, "last_error": {"type": ["string", "null"]}}},
        },
    }
    rect = {"type": "array", "items": num, "minItems": 4, "maxItems": 4,
            "description": "x0, y0, x1, y1 in canvas pixels (edges at integers)"}
    size = {"type": "object", "properties": {"width": {"type": "integer"},
                                             "height": {"type": "integer"}}}
    path = {
        "type": "object",
        "properties": {
            "output": size, "canvas": {**size, "description": "what the path runs over: "
                                       "the image (fit cover) or the image on its bars"},
            "image": {"type": "object", "description": "where the image sits in the canvas",
                      "properties": {k: {"type": "integer"}
                                     for k in ("x", "y", "width", "height")}},
            "frames": {"type": "integer"}, "frame_rate": {"type": "integer"},
            "duration": num,
            "samples": {"type": "array", "items": {"type": "object", "properties": {
                "frame": {"type": "integer"}, "time": num, "rect": rect}}},
        },
    }
    fraction = {"type": "number", "minimum": 0, "maximum": 1}
    subject = {
        "type": "object", "required": ["x", "y", "by", "image"],
        "properties": {
            "x": {**fraction, "description": "the point focus \"auto\" closes in on, "
                  "in fractions of the image from its left"},
            "y": {**fraction, "description": "from its top"},
            "by": {"enum": ["faces", "saliency", "centre"],
                   "description": "what found it (as a job's focus_used.by)"},
            "faces": {"type": "array", "items": fraction, "minItems": 4, "maxItems": 4,
                      "description": "x0, y0, x1, y1: the box holding every face (heads "
                                     "included), in fractions of the image; only with "
                                     "by \"faces\""},
            "image": {**size, "description": "the image's size, as shown (EXIF "
                                             "orientation applied)"},
        },
    }
    subject_upload = {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"},
        "id": SUBJECT_SCHEMA["properties"]["id"]}}
    upload = dict(submit_schema(max_length, upload=True))  # a copy: the original is shared
    upload["properties"] = {**upload["properties"],
                            "image": {"type": "string", "format": "binary"}}
    # The image comes either as the file or by URL, never both (oneOf: exactly one).
    upload["oneOf"] = [{"required": ["image"]}, {"required": ["image_url"]}]
    reel_upload = {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "the slides' images, in order (repeat the field)"},
        "audio": {"type": "string", "format": "binary", "description": "the track"},
        "reel": {"type": "string", "description": "the reel's JSON (ReelRequest; slides "
                 "given as files need no image_url)"}}}
    retry_after = {"Retry-After": {"schema": {"type": "integer"},
                                   "description": "seconds until a retry is worth it"}}
    key: list[dict[str, list[str]]] = [{"ApiKey": []}]
    # The header, or a signed link (the download_url of a done job) instead.
    signed: list[dict[str, list[str]]] = [{"ApiKey": []}, {}]
    signed_help = ("download_url is a signed link: ?expires=<unix seconds>&signature=<base64url "
                   "HMAC-SHA256 over \"filename\\nexpires\", keyed from the server's secret>. "
                   "It opens this one file without X-API-Key until it expires "
                   "(ZOOMREEL_SIGNED_URL_TTL, default 86400 s), Range requests included.")
    forbidden = {"description": "Signed link tampered with, expired or for another file",
                 "content": _json({"type": "object",
                                   "properties": {"message": {"type": "string"}}})}
    # Every 404 is the documented unknown-job shape: what was not found, and its name.
    no_file = {"description": "No such file", "content": _json({
        "type": "object", "properties": {"error": {"const": "File not found"},
                                         "filename": {"type": "string"}}})}
    not_modified = {"description": "Not Modified: If-None-Match names this file's ETag "
                                   "(or If-Modified-Since is not older than it)"}
    no_range = {"description": "Range outside the file",
                "headers": {"Content-Range": {"schema": {"type": "string"},
                                              "description": "bytes */<size>"}}}
    errors: dict[str, Any] = {
        "400": _answer("Invalid body: names the field and the rule", "Envelope"),
        "401": {"description": "Missing or wrong X-API-Key",
                "content": _json({"type": "object",
                                  "properties": {"message": {"const": "Unauthorized"}}})},
    }
    disk_full = _answer("A disk is full (the uploads', or the job store's): nothing was "
                         "queued", "Envelope", retry_after)
    convert = {
        "summary": "Queue an image-to-video conversion", "security": key,
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("SubmitRequest")},
            "multipart/form-data": {"schema": _ref("SubmitUpload")},
        }},
        "responses": {
            "202": _answer("Job queued successfully", "Envelope"), **errors,
            "413": _answer("Body over the size limit", "Envelope"),
            "429": _answer("Queue full", "Envelope", retry_after),
            "507": disk_full,
        },
    }
    reel = {
        **convert, "summary": "Queue a reel: many photos, transitions, a track and words "
                              "in one video",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("ReelRequest")},
            "multipart/form-data": {"schema": _ref("ReelUpload"),
                                    "encoding": {"reel": {"contentType": "text/plain"}}},
        }},
    }
    upstream_result = {**envelope, "description": (
        "The upstream toolkit's answer for a finished job: code 200 and response the "
        "video's URL (a signed link: no key needed), or code >= 400 (400: the image could "
        "not be fetched or decoded; 500: zoomreel's fault), response null, message the "
        "cause. Also the webhook body of such jobs, and a status's inner response."),
        "properties": {**envelope["properties"],  # type: ignore[dict-item]
                       "response": {"type": ["string", "null"]}}}
    upstream_accepted = {
        "type": "object", "description": "The upstream toolkit's 202 (a webhook_url key "
        "was sent; \"\" means no webhook): the job is queued",
        "required": ["endpoint", "code", "id", "job_id", "message", "pid", "queue_id",
                     "max_queue_length", "queue_length", "build_number"],
        "properties": {
            "endpoint": {"type": "string"}, "code": {"const": 202}, "id": {},
            "job_id": {"type": "string"}, "message": {"const": "processing"},
            "pid": {"type": "integer"}, "queue_id": {"type": "integer"},
            "max_queue_length": {"oneOf": [{"type": "integer"}, {"const": "unlimited"}]},
            "queue_length": {"type": "integer"}, "build_number": {"type": "string"}},
    }
    legacy_answers: dict[str, Any] = {
        "200": _answer("success: response is the video's URL", "UpstreamResult"),
        "202": _answer("processing (a webhook_url key was sent)", "UpstreamAccepted"),
        **errors,
        "413": _answer("Body over the size limit", "Envelope"),
        "429": _answer("Queue full", "Envelope", retry_after),
        "500": _answer("The render failed by zoomreel's fault", "UpstreamResult"),
        "503": _answer("As many requests as this server holds wait already (nothing "
                       "was queued), or the service is restarting (the job is kept)",
                       "Envelope", retry_after),
        "504": _answer("Not done within the wait's limit; the job goes on", "Envelope"),
        "507": disk_full,
    }
    legacy = {
        **convert,
        "summary": "The upstream toolkit's route, with its semantics",
        "description": (
            "Without a webhook_url key the request waits for the video (the job is queued "
            "like any other) and answers UpstreamResult with HTTP status = its code. With "
            "webhook_url: 202 UpstreamAccepted, and the webhook body is UpstreamResult. "
            "ZOOMREEL_CONVERT_ROUTE=upstream gives /v1/image/convert/video these semantics."),
        "responses": legacy_answers,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "zoomreel", "version": version,
                 "description": "Image-to-video zoom: submit a job, poll its status, download."},
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {"Envelope": envelope, "JobStatus": job_status,
                        "UpstreamResult": upstream_result,
                        "UpstreamAccepted": upstream_accepted,
                        "SubmitRequest": _submit_request(max_length), "SubmitUpload": upload,
                        "ReelRequest": reel_schema(max_length, max_slides),
                        "ReelUpload": reel_upload,
                        "PathRequest": path_schema(max_length), "Path": path,
                        "SubjectRequest": {**SUBJECT_SCHEMA, "required": ["image_url"]},
                        "SubjectUpload": subject_upload, "Subject": subject,
                        "StatusRequest": STATUS_SCHEMA,
                        "JobsStatusRequest": JOBS_STATUS_SCHEMA},
        },
        "paths": {
            "/v1/image/convert/video": {"post": _idempotent(convert)},
            "/v1/image/transform/video": {"post": _idempotent(legacy)},
            "/v1/video/reel": {"post": _idempotent(reel)},
            "/v1/toolkit/job/status": {"post": {
                "summary": "A job's status, progress and result", "security": key,
                "requestBody": {"required": True, "content": _json(
                    {"$ref": "#/components/schemas/StatusRequest"})},
                "responses": {
                    "200": _answer("success; response is a JobStatus", "Envelope", retry_after),
                    **errors,
                    "404": {"description": "Job not found", "content": _json({
                        "type": "object", "properties": {"error": {"const": "Job not found"},
                                                         "job_id": {"type": "string"}}})},
                },
            }},
            "/v1/toolkit/jobs/status": {"post": {
                "summary": "The state of every job whose state changed lately", "security": key,
                "requestBody": {"required": False, "content": _json(
                    {"$ref": "#/components/schemas/JobsStatusRequest"})},
                "responses": {
                    "200": _answer("success; response maps each job_id to its job_status",
                                   "Envelope"),
                    **errors,
                },
            }},
            "/v1/image/path": {"post": {
                "summary": "The frames a request would show (the renderer's own path), "
                           "for an image of the given size: what the web page draws",
                "security": key,
                "requestBody": {"required": True, "content": _json(_ref("PathRequest"))},
                "responses": {"200": _answer("success; response is a Path", "Envelope"),
                              **errors},
            }},
            "/v1/image/subject": {"post": {
                "summary": "Where focus \"auto\" would close in on an image (its faces, "
                           "else its most salient region, else the centre), decided as "
                           "a render decides it: what the web page draws",
                "description": "The image by URL (fetched under the convert route's rules; "
                               "a fetch that fails is a 400 with the message a job would "
                               "fail with) or as the multipart file image.",
                "security": key,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("SubjectRequest")},
                    "multipart/form-data": {"schema": _ref("SubjectUpload")}}},
                "responses": {"200": _answer("success; response is a Subject", "Envelope"),
                              **errors,
                              "413": _answer("Image over the size limit", "Envelope")},
            }},
            "/v1/toolkit/authenticate": {"get": {
                "summary": "Check an API key: 200 with response \"Authorized\", else 401",
                "security": key,
                "responses": {"200": _answer("The key is good", "Envelope"),
                              "401": errors["401"]},
            }},
            DOWNLOAD_PATH + "/{filename}": {
                "description": signed_help,
                "parameters": [
                    {"name": "filename", "in": "path", "required": True,
                     "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": False,
                     "schema": {"type": "integer"},
                     "description": "signed link: Unix time it stops working"},
                    {"name": "signature", "in": "query", "required": False,
                     "schema": {"type": "string"},
                     "description": "signed link: base64url HMAC-SHA256 of the filename "
                                    "and expires"}],
                "get": {"summary": "Download a video (Range, If-Range, If-None-Match "
                                   "supported; strong ETag, Last-Modified)", "security": signed,
                        "responses": {
                            "200": {"description": "The video: MP4 (h264, h265, av1) or "
                                                   "WebM (vp9), by the file's extension; "
                                                   "or its poster (JPEG, .jpg)",
                                    "content": videos},
                            "206": {"description": "Part of the video (Range)",
                                    "content": videos},
                            "304": not_modified,
                            "401": errors["401"], "403": forbidden,
                            "404": no_file, "416": no_range}},
                "head": {"summary": "Size and type of a video", "security": signed,
                         "responses": {"200": {"description": "Headers only"},
                                       "206": {"description": "Headers of a Range"},
                                       "401": {"description": "Missing or wrong X-API-Key"},
                                       "304": not_modified, "403": forbidden,
                                       "404": {"description": "No such file"},
                                       "416": no_range}},
            },
            "/": {"get": {"summary": "The web page (no key needed to load it)",
                          "responses": {"200": {"description": "HTML", "content": {
                              "text/html": {"schema": {"type": "string"}}}}}}},
            "/health": {"get": {"summary": "Redis reachable (and taking writes), workers "
                                "seen, the data dir's free space (disk_full), the storage "
                                "answering", "responses": {
                "200": {"description": "Healthy"}, "503": {"description": "Redis unreachable"}}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3"}}}},
        },
    }
