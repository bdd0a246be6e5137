"""The REST resources: plain classes with ``on_<method>``, dependencies injected."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import falcon
from falcon.stream import BoundedStream
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from zoomreel.camera import frame_rect
from zoomreel.canvas import canvas_geometry
from zoomreel.codecs import content_type_of
from zoomreel.errors import AudioError, SpecError
from zoomreel.jobs import Job, JobService, poll_after
from zoomreel.jobs.idempotency import HEADER as IDEMPOTENCY_HEADER
from zoomreel.jobs.states import FINISHED
from zoomreel.spec import RenderSpec
from zoomreel.subject import CENTRE_SUBJECT, FocusBy, subject_of

from .envelope import Answers
from .errors import NotFound, RequestTooLarge
from .schema import (
    JOBS_STATUS_SCHEMA,
    MAX_DEPTH,
    ROUTE_FIELDS,
    STATUS_SCHEMA,
    SUBJECT_SCHEMA,
    coerce_form,
    path_schema,
    submit_schema,
    validate,
    validate_reel,
)

__all__ = ["ConvertResource", "ReelResource", "StatusResource", "JobsStatusResource",
           "AuthenticateResource", "DownloadResource", "HealthResource", "MetricsResource",
           "OpenAPIResource", "PathResource", "SubjectResource", "PageResource"]

def _read_json(req: falcon.Request, limit: int, empty: Any = None) -> Any:
    """The request's JSON body; ``empty`` when it has none (JSON ``null`` is a body)."""
    if req.content_length is not None and req.content_length > limit:
        raise RequestTooLarge(f"body: must be at most {limit} bytes")
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise RequestTooLarge(f"body: must be at most {limit} bytes")

    if not data:
        return empty
    try:
        return json.loads(data)
    except ValueError:
        raise SpecError("body", "must be valid JSON") from None
    except RecursionError:
        raise SpecError("body", f"must not be nested more than {MAX_DEPTH} levels deep") from None


def idempotency_key(req: falcon.Request) -> str | None:
    """The request's ``Idempotency-Key`` (None without one), for the service's submit,
    which checks it: every submit route passes it on, and then a retry with its key
    answers the first call's job."""
    return req.get_header(IDEMPOTENCY_HEADER)


def _is_form(req: falcon.Request, limit: int) -> bool:
    """Whether the body is a form (``multipart/form-data``); a form announced over
    ``limit`` bytes is refused (413) before it is read."""
    if not (req.content_type and req.content_type.startswith("multipart/form-data")):
        return False
    if req.content_length is not None and req.content_length > limit:
        raise RequestTooLarge(f"body: must be at most {limit} bytes")
    return True


def _image_form(req: falcon.Request, limit: int) -> tuple[dict[str, str], bytes | None]:
    """A form's text fields, and its file field ``image`` (at most ``limit`` bytes)."""
    upload: bytes | None = None
    fields: dict[str, str] = {}
    for part in req.get_media():
        if part.name == "image" and part.filename is not None:
            upload = part.stream.read(limit + 1)
            if len(upload) > limit:
                raise RequestTooLarge(f"image: must be at most {limit} bytes")
        elif part.name == "image":
            raise SpecError("image", "must be a file")
        else:
            fields[part.name] = part.get_text() or ""
    return fields, upload


def _one_image(body: dict[str, Any], upload: bytes | None) -> None:
    """A form gives its image as a file or as ``image_url``, once."""
    if upload is None and "image_url" not in body:
        raise SpecError("image", "is required (a file field, or image_url)")
    if upload is not None and "image_url" in body:
        raise SpecError("image_url", "must not be given with an uploaded image")


class ConvertResource:
    """POST /v1/image/convert/video and /v1/image/transform/video: queue a render.

    The documented semantics: 202 at once, then polling. The upstream toolkit's (its
    legacy route; the convert route too with ``ZOOMREEL_CONVERT_ROUTE=upstream``): a body
    without a ``webhook_url`` key waits for the video and answers it (HTTP status =
    the answer's ``code``); with one (``""`` = no webhook), upstream's 202. Either way
    the job is queued like any other: it counts in the queue, survives a restart and
    shows in the status route.

    Args:
        upstream: answer with the upstream toolkit's semantics.
    """

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int,
                 upload_limit: int, upstream: bool = False) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.upstream = upstream

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        body, upload = self._read(req)
        if self.upstream and "webhook_url" not in body:
            with self.service.waiting_slot():  # before the job: a refusal creates nothing
                job, _ = self._submit(req, body, upload)
                job = self.service.wait(job.id, self.service.settings.wait_timeout_s)
            self._answer_finished(req, resp, job)
            return
        job, queue_length = self._submit(req, body, upload)
        resp.status = falcon.HTTP_202
        if self.upstream:
            resp.media = self.answers.upstream_accepted(
                job, queue_length, self.service.settings.max_queue_length)
            return
        resp.media = self.answers.envelope(
            202, message="Job queued successfully", endpoint=req.path,
            id=body.get("id"), job_id=job.id, run_time=time.perf_counter() - started,
            queue_id=job.queue_id, queue_length=queue_length,
        )

    def _submit(self, req: falcon.Request, body: dict[str, Any],
                upload: bytes | None) -> tuple[Job, int]:
        return self.service.submit(body, upload=upload, base_url=req.prefix,
                                   owner=req.context.key_id, endpoint=req.path,
                                   upstream=self.upstream,
                                   idempotency_key=idempotency_key(req))

    def _answer_finished(self, req: falcon.Request, resp: falcon.Response, job: Job) -> None:
        """A synchronous call's answer: the upstream envelope of its finished job, with
        its ``code`` as the HTTP status; a job still running after the wait's limit is a
        504 naming the job, which goes on (poll it)."""
        queue_length = self.service.queue_length()
        if job.status in FINISHED:
            answer = self.answers.upstream_result(job, queue_length, req.prefix)
        else:
            answer = self.answers.envelope(
                504, message=f"The video is not done after "
                f"{self.service.settings.wait_timeout_s:g} s; the job goes on: poll "
                "/v1/toolkit/job/status with its job_id", endpoint=req.path,
                id=job.client_id, job_id=job.id, queue_id=job.queue_id,
                queue_length=queue_length)
        resp.status = falcon.code_to_http_status(answer["code"])
        resp.media = answer

    def _read(self, req: falcon.Request) -> tuple[dict[str, Any], bytes | None]:
        """The request's fields, validated, and its uploaded image (multipart)."""
        max_length = self.service.settings.max_length
        if not _is_form(req, self.upload_limit):
            return validate(_read_json(req, self.json_limit), submit_schema(max_length),
                            max_length), None
        fields, upload = _image_form(req, self.upload_limit)
        body = validate(coerce_form(fields), submit_schema(max_length, upload=True),
                        max_length)
        _one_image(body, upload)
        return body, upload


class ReelResource:
    """POST /v1/video/reel: queue a reel (many photos, transitions, a track and words in
    one video), answered as the convert route answers (202, the job's id).

    JSON, or ``multipart/form-data``: the images as repeated file fields ``image`` (in
    order), the track as the file ``audio``, and the reel's JSON in the form field
    ``reel`` (slides given as files need no ``image_url``).
    """

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int,
                 upload_limit: int) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        body, images, audio = self._read(req)
        job, queue_length = self.service.submit_reel(
            body, images=images, audio=audio, base_url=req.prefix, owner=req.context.key_id,
            endpoint=req.path, idempotency_key=idempotency_key(req))
        resp.status = falcon.HTTP_202
        resp.media = self.answers.envelope(
            202, message="Job queued successfully", endpoint=req.path,
            id=body.get("id"), job_id=job.id, run_time=time.perf_counter() - started,
            queue_id=job.queue_id, queue_length=queue_length,
        )

    def _read(self, req: falcon.Request) -> tuple[dict[str, Any], list[bytes], bytes | None]:
        """The reel's fields, validated, its uploaded images and its uploaded track."""
        settings = self.service.settings
        limits = (settings.max_length, settings.max_slides)
        if not _is_form(req, self.upload_limit):
            return validate_reel(_read_json(req, self.json_limit), *limits), [], None
        images: list[bytes] = []
        files: dict[str, bytes] = {}
        text: str | None = None
        for part in req.get_media():
            if part.name in ("image", "audio"):
                self._take_file(part, images, files)
            elif part.name == "reel":
                text = part.get_text() or ""
            else:
                raise SpecError(part.name, "is not a known form field (image, audio, reel)")
        body: Any = {}
        if text is not None and text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                raise SpecError("reel", "must be valid JSON") from None
            except RecursionError:
                raise SpecError("reel", f"must not be nested more than {MAX_DEPTH} "
                                "levels deep") from None
        body = validate_reel(body, *limits, upload=True)
        return body, images, files.get("audio")

    def _take_file(self, part: Any, images: list[bytes], files: dict[str, bytes]) -> None:
        """One file field of the form: an image (in order) or the track."""
        settings = self.service.settings
        if part.filename is None:
            raise SpecError(part.name, "must be a file")
        cap = settings.max_image_bytes if part.name == "image" else settings.max_audio_bytes
        data = part.stream.read(cap + 1)
        if len(data) > cap and part.name == "audio":  # a rule of tracks, as the engine's
            raise AudioError(f"audio: the track is over {cap} bytes")
        if len(data) > cap:
            raise RequestTooLarge(f"{part.name}: must be at most {cap} bytes")
        if part.name == "audio":
            if "audio" in files:
                raise SpecError("audio", "must be given once (one track)")
            files["audio"] = data
        elif len(images) >= settings.max_slides:
            raise SpecError("slides", f"must hold at most {settings.max_slides} slides")
        else:
            images.append(data)


class StatusResource:
    """POST /v1/toolkit/job/status: the job's state, progress and result."""

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = validate(_read_json(req, self.json_limit), STATUS_SCHEMA)
        job, queue_length = self.service.get_with_queue_length(body["job_id"])
        resp.media = self.answers.status(job, queue_length, req.prefix, endpoint=req.path)
        hint = poll_after(job)
        if hint is not None:
            resp.set_header("Retry-After", str(hint))


class JobsStatusResource:
    """POST /v1/toolkit/jobs/status: the state of every job that changed lately."""

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        body = validate(_read_json(req, self.json_limit, empty={}), JOBS_STATUS_SCHEMA)
        since = body.get("since_seconds", ROUTE_FIELDS["since_seconds"].default)
        resp.media = self.answers.envelope(
            200, message="success", endpoint=req.path,
            response=self.service.states_since(since),
            run_time=time.perf_counter() - started, queue_length=self.service.queue_length())


class AuthenticateResource:
    """GET /v1/toolkit/authenticate: 200 for a good key (the middleware answers 401)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.answers.envelope(200, message="success", endpoint=req.path,
                                           response="Authorized")


class PathResource:
    """POST /v1/image/path: the camera path of a request over an image of a given size.

    The renderer's own code computes it (output size, canvas, ``frame_rect``), so what
    the web page draws is what the video shows. Bad fields get the submit route's 400.
    """

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        max_length = self.service.settings.max_length
        body = validate(_read_json(req, self.json_limit), path_schema(max_length), max_length)
        spec = RenderSpec.from_request(body)
        image_w, image_h = body["image_width"], body["image_height"]
        samples = body.get("samples", ROUTE_FIELDS["samples"].default)
        out_w, out_h = spec.size_for(image_w, image_h)
        canvas = canvas_geometry(image_w, image_h, spec.fit, out_w, out_h,
                                 max_zoom=max(spec.zoom_keyframes), max_pixels=spec.max_pixels)
        # No pixels here: focus "auto" is drawn at the centre (the render decides it on
        # the image itself, and its job reports the point as focus_used).
        spec = spec.with_subject(CENTRE_SUBJECT, canvas.width, canvas.height, (out_w, out_h), (
            canvas.image_x / canvas.width, canvas.image_y / canvas.height,
            (canvas.image_x + canvas.image_width) / canvas.width,
            (canvas.image_y + canvas.image_height) / canvas.height))
        last = spec.total_frames - 1
        frames = sorted({round(i * last / (samples - 1)) for i in range(samples)})
        resp.media = self.answers.envelope(200, message="success", endpoint=req.path,
                                           id=body.get("id"),
                                           run_time=time.perf_counter() - started, response={
            "output": {"width": out_w, "height": out_h},
            "canvas": {"width": canvas.width, "height": canvas.height},
            "image": {"x": canvas.image_x, "y": canvas.image_y,
                      "width": canvas.image_width, "height": canvas.image_height},
            "frames": spec.total_frames,
            "frame_rate": spec.frame_rate,
            "duration": spec.total_frames / spec.frame_rate,
            "samples": [{"frame": n, "time": n / spec.frame_rate,
                         "rect": list(frame_rect(n, spec, canvas.width, canvas.height,
                                                 (out_w, out_h)))}
                        for n in frames],
        })


class SubjectResource:
    """POST /v1/image/subject: where ``focus: "auto"`` would close in on an image.

    The image comes as the convert route's do: JSON ``{"image_url"}`` (fetched under the
    same rules, size cap and code as a job's) or a multipart form with the file
    ``image``. The answer is the subject the render would use (``x``, ``y``, ``by``),
    the box holding the faces when there are faces, and the oriented image size, so the
    web page can draw them before the job is sent.
    """

    #: A fetch here holds a server thread while the caller waits: a host trickling bytes
    #: is cut off sooner than a render worker's fetch (300 s).
    FETCH_TIMEOUT_S = 30.0

    def __init__(self, service: JobService, answers: Answers, *, json_limit: int,
                 upload_limit: int) -> None:
        self.service = service
        self.answers = answers
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        from zoomreel.net import fetch_url

        started = time.perf_counter()
        body, upload = self._read(req)
        settings = self.service.settings
        if upload is None:
            upload = fetch_url(body["image_url"], max_bytes=settings.max_image_bytes,
                               allow_private=settings.allow_private_urls,
                               total_timeout=self.FETCH_TIMEOUT_S)
        subject, (width, height) = subject_of(upload)
        answer: dict[str, Any] = {**subject.to_json(),
                                  "image": {"width": width, "height": height}}
        if subject.by == FocusBy.FACES and subject.faces_box is not None:
            answer["faces"] = [round(v, 4) for v in subject.faces_box]
        resp.media = self.answers.envelope(200, message="success", endpoint=req.path,
                                           id=body.get("id"), response=answer,
                                           run_time=time.perf_counter() - started)

    def _read(self, req: falcon.Request) -> tuple[dict[str, Any], bytes | None]:
        """The request's fields, validated, and its uploaded image (multipart)."""
        if not _is_form(req, self.upload_limit):
            body = validate(_read_json(req, self.json_limit), SUBJECT_SCHEMA)
            if "image_url" not in body:
                raise SpecError("image_url", "is required (or a multipart file field image)")
            return body, None
        fields, upload = _image_form(req, self.service.settings.max_image_bytes)
        body = validate(coerce_form(fields), SUBJECT_SCHEMA)
        _one_image(body, upload)
        return body, upload


class PageResource:
    """GET / and GET /web/{name}: the web page, plain files shipped in the package.

    Args:
        media_origin: where else the page's ``<video>`` may load from: the bucket's
            origin when videos are linked there (see Answers.media_origin).
    """

    _TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
              ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    # The page talks to this origin only; images it shows may come from anywhere (a
    # pasted URL) or from the user's own files (blob:).
    _POLICY = ("default-src 'self'; img-src * data: blob:; media-src 'self' blob:; "
               "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")

    def __init__(self, media_origin: str | None = None) -> None:
        self.policy = self._POLICY
        if media_origin:
            self.policy = self.policy.replace("media-src 'self' blob:",
                                              f"media-src 'self' blob: {media_origin}")
        folder = resources.files("zoomreel.frontends").joinpath("web")
        self.files = {item.name: item.read_bytes() for item in folder.iterdir()
                      if item.is_file() and os.path.splitext(item.name)[1] in self._TYPES}

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = "index.html",
               ) -> None:
        data = self.files.get(name)
        if data is None:
            raise NotFound("File", filename=name)
        resp.content_type = self._TYPES[os.path.splitext(name)[1]]
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Content-Security-Policy", self.policy)
        resp.data = data

    def on_get_file(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.on_get(req, resp, name)


class DownloadResource:
    """GET/HEAD /v1/storage/download/{filename}: the video (its codec's media type, from
    zoomreel.codecs by extension), with Falcon's Range support and cache validators.
    A video in a bucket is streamed through (only the range asked for is fetched), so
    every answer is the same wherever the video is kept.

    Reached with the ``X-API-Key`` header or a signed link (the middleware checks it).

    A video is written beside its final name and renamed into place (see
    ``zoomreel.encoder``), so the bytes under one name change only when the file is
    replaced (a job rendered again after a lost worker), and a replacement has another
    size or modification time (or, in a bucket, another ETag). The ETag is therefore
    strong and costs one ``stat`` (or HEAD), never a read of the file: a digest of the
    name, size and version (modification time in nanoseconds, or the bucket's ETag).
    It answers ``If-None-Match`` (304) and ``If-Range`` (a Range whose condition names
    another copy gets the whole file).
    """

    accepts_signed_links = True

    def __init__(self, service: JobService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        self._serve(req, resp, filename, body=True)

    def on_head(self, req: falcon.Request, resp: falcon.Response, filename: str) -> None:
        self._serve(req, resp, filename, body=False)

    def _serve(self, req: falcon.Request, resp: falcon.Response, filename: str,
               body: bool) -> None:
        video = self.service.find_video(filename)
        if video is None:
            raise NotFound("File", filename=filename)
        size = video.info.size
        etag = _etag(filename, size, video.info.version)
        # HTTP dates have whole seconds: a finer time would look newer than its own date.
        modified = datetime.fromtimestamp(video.info.modified, UTC).replace(microsecond=0)
        resp.etag = etag
        resp.last_modified = modified
        if _not_modified(req, etag, modified):
            resp.status = falcon.HTTP_304  # validators only: no content, no Content-Type
            return
        resp.content_type = content_type_of(filename) or "image/jpeg"  # else a poster
        resp.accept_ranges = "bytes"
        start, length = 0, size
        span = _byte_range(req, size) if _range_holds(req, etag, modified) else None
        if span is not None:
            start, end = span
            length = end - start + 1
            resp.status = falcon.HTTP_206
            resp.content_range = (start, end, size)
        if not body:
            resp.content_length = length
            return
        # a file, or a bucket's answer streamed through; closed by the WSGI server
        stream = video.storage.open(video.key, start, length)
        resp.set_stream(_FilePart(stream, length), length)


def _etag(name: str, size: int, version: str) -> str:
    identity = f"{name}\0{size}\0{version}".encode()
    return hashlib.blake2b(identity, digest_size=12).hexdigest()


def _not_modified(req: falcon.Request, etag: str, modified: datetime) -> bool:
    """Whether the client's copy is this one (RFC 9110 13.1.2-3): If-None-Match names
    this ETag (weak comparison) or ``*``; without it, If-Modified-Since is not older."""
    if req.if_none_match is not None:
        return any(tag == "*" or tag == etag for tag in req.if_none_match)
    since = req.if_modified_since
    return since is not None and modified <= since


def _range_holds(req: falcon.Request, etag: str, modified: datetime) -> bool:
    """If-Range (RFC 9110 13.1.5): the Range counts only if the client's partial copy
    is this file, named by its strong ETag or its Last-Modified date."""
    condition = req.get_header("If-Range")
    if condition is None:
        return True
    if condition.startswith(('"', "W/")):  # a weak tag never matches here
        return condition == f'"{etag}"'
    try:
        return falcon.http_date_to_dt(condition) == modified
    except ValueError:
        return False


def _byte_range(req: falcon.Request, size: int) -> tuple[int, int] | None:
    """The first and last byte to send, or None for the whole file.

    A Range that is not one span of bytes (malformed, several spans, another unit) is
    ignored, as RFC 9110 14.2 allows: the answer is the whole file.

    Raises:
        falcon.HTTPRangeNotSatisfiable: the span starts past the end (416).
    """
    try:
        unit, wanted = req.range_unit, req.range
    except falcon.HTTPInvalidHeader:
        return None
    if wanted is None or (unit or "").lower() != "bytes" or size == 0:
        return None
    first, last = wanted
    if first < 0:  # a suffix: the last -first bytes
        return max(0, size + first), size - 1
    if first >= size:
        raise falcon.HTTPRangeNotSatisfiable(size)
    return first, size - 1 if last < 0 else min(last, size - 1)


class _FilePart(BoundedStream):
    """Falcon's bounded stream over an open file (reads stop ``length`` bytes after its
    position); the server's ``close()`` closes the file too."""

    def close(self) -> None:
        self.stream.close()
        super().close()


class HealthResource:
    """GET /health (no key): Redis reachable, workers seen."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        health = self.service.health()
        health["pid"] = os.getpid()
        resp.media = health
        if not health["redis"]:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "5")


class MetricsResource:
    """GET /metrics (with the key): Prometheus text of this process and the job store."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


class OpenAPIResource:
    """GET /openapi.json: the whole API as OpenAPI 3."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document
