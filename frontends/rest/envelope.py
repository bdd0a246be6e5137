"""The wire format: the envelope every /v1 answer shares, the status answer (also a
documented job's webhook body), the upstream toolkit's answers for the jobs that follow
its semantics (the legacy route's), and the address of a finished video.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit

from zoomreel import __version__
from zoomreel.jobs import Job
from zoomreel.jobs.progress import job_times, progress_of
from zoomreel.jobs.states import FINISHED, JobState
from zoomreel.storage import Storage, video_key

from .signing import URLSigner

__all__ = ["Answers", "DONE_MESSAGE", "DOWNLOAD_PATH", "LEGACY_PATH", "envelope",
           "not_found"]

DONE_MESSAGE = "Video conversion completed successfully"
#: Where finished videos are served; ``{DOWNLOAD_PATH}/{filename}``.
DOWNLOAD_PATH = "/v1/storage/download"
#: The upstream toolkit's own route, with its semantics (see ConvertResource).
LEGACY_PATH = "/v1/image/transform/video"


def envelope(code: int, *, message: str, build_number: str, endpoint: str | None = None,
             id: Any = None, job_id: str | None = None, response: Any = None,
             run_time: float = 0.0, queue_time: float = 0.0, total_time: float | None = None,
             pid: int | None = None, queue_id: int | None = None,
             queue_length: int = 0) -> dict[str, Any]:
    """The envelope every /v1 JSON answer shares (times in seconds, 3 decimals);
    ``endpoint`` is the route's path, as upstream's answers carry it."""
    if total_time is None:
        total_time = run_time + queue_time
    return {
        "endpoint": endpoint,
        "code": code,
        "id": id,
        "job_id": job_id,
        "response": response,
        "message": message,
        "run_time": round(run_time, 3),
        "queue_time": round(queue_time, 3),
        "total_time": round(total_time, 3),
        "pid": os.getpid() if pid is None else pid,
        "queue_id": queue_id,
        "queue_length": queue_length,
        "build_number": build_number,
    }


def not_found(what: str, **identity: str) -> dict[str, Any]:
    """The body of every 404: the documented answer for an unknown job,
    ``{"error": "Job not found", "job_id": "<id>"}``, is the shape for anything not found.

    Args:
        what: the kind of thing, capitalised: ``"Job"``, ``"File"``, ``"Route"``.
        identity: the name it was asked for by, e.g. ``job_id="..."``.
    """
    return {"error": f"{what} not found", **identity}


class Answers:
    """The documented answers of one service.

    The REST routes answer with :meth:`status`; the job system is given the same method
    to build each webhook's body, so a receiver gets exactly what the status route says.

    Args:
        public_url: base of ``download_url`` (``ZOOMREEL_PUBLIC_URL``); None = the
            address the request came in on.
        build_number: reported in every envelope.
        signer: signs each ``download_url`` (expiry and HMAC in its query), so that it
            works without the key; None = plain links.
        storage: where videos are kept; a video stored in a bucket is linked there
            directly (Storage.link: presigned, or the bucket's public URL).
        link_ttl: lifetime of a presigned link, seconds.
    """

    def __init__(self, public_url: str | None = None, build_number: str = __version__,
                 signer: URLSigner | None = None, storage: Storage | None = None,
                 link_ttl: float = 86400.0) -> None:
        self.public_url = (public_url or "").rstrip("/") or None
        self.build_number = build_number
        self.signer = signer
        self.storage = storage
        self.link_ttl = link_ttl

    def envelope(self, code: int, *, message: str, **fields: Any) -> dict[str, Any]:
        """:func:`envelope` with this service's build number."""
        return envelope(code, message=message, build_number=self.build_number, **fields)

    def download_url(self, job: Job, request_base: str | None = None,
                     filename: str | None = None) -> str:
        """Absolute URL of a job's video.

        A video stored in the service's bucket is linked there (presigned, or public).
        Else the link is the download route, and the one rule for its base: the
        configured public URL, else the address this request came in on, else the one
        the job was submitted on (webhooks). With a signer, the link is signed: it works
        without ``X-API-Key`` until it expires. (A job done before the storage changed
        gets the route's link, which looks in both places.)

        Args:
            filename: another file of the job's stored beside its video (its poster);
                default the video.
        """
        name = filename or job.filename
        if (self.storage is not None and name and job.storage
                and job.storage == self.storage.kind):
            link = self.storage.link(video_key(name), self.link_ttl)
            if link is not None:
                return link
        base = (self.public_url or request_base or job.base_url or "").rstrip("/")
        url = f"{base}{DOWNLOAD_PATH}/{name}"
        if self.signer is not None and name:
            url += "?" + self.signer.query(name)
        return url

    def media_origin(self) -> str | None:
        """The origin of the bucket's links (``scheme://host[:port]``), where videos are
        linked there; None when they are served here."""
        link = None if self.storage is None else self.storage.link(video_key("x.mp4"), 60)
        if not link:
            return None
        parts = urlsplit(link)
        return f"{parts.scheme}://{parts.netloc}"

    def status(self, job: Job, queue_length: int, request_base: str | None = None,
               endpoint: str | None = None) -> dict[str, Any]:
        """The whole 200 status answer for one job (also a documented job's webhook
        body). A job of the upstream semantics reads ``done`` once finished, failed or
        not, and its inner ``response`` is :meth:`upstream_result`."""
        now = time.time()
        queue_time, run_time, total_time = job_times(job, now)
        inner: Any = None
        if job.upstream and job.status in FINISHED:
            inner = self.upstream_result(job, queue_length, request_base)
        elif job.status == JobState.DONE and job.result is not None:
            inner = {
                "download_url": self.download_url(job, request_base),
                "filename": job.filename,
                "message": DONE_MESSAGE,
                **job.result,
            }
            if job.poster:
                inner["poster_url"] = self.download_url(job, request_base, job.poster)
        response: dict[str, Any] = {
            "job_status": (JobState.DONE if job.upstream and job.status == JobState.ERROR
                           else job.status),
            "job_id": job.id,
            "queue_id": job.queue_id,
            "process_id": job.pid,
            "response": inner,
            "progress": progress_of(job, now),
        }
        if job.status == JobState.ERROR:
            response["error"] = job.error or "The job failed"
        if job.webhook is not None:
            response["webhook"] = {
                "state": job.webhook["state"],
                "attempts": job.webhook["attempts"],
                "last_error": job.webhook["last_error"],
            }
        return self.envelope(
            200, message="success", endpoint=endpoint or job.endpoint or None,
            id=job.client_id, job_id=job.id, response=response,
            run_time=run_time, queue_time=queue_time, total_time=total_time,
            pid=job.pid if job.pid is not None else os.getpid(), queue_id=job.queue_id,
            queue_length=queue_length,
        )

    def webhook_body(self, job: Job, queue_length: int) -> dict[str, Any]:
        """What a finished job's webhook POSTs: :meth:`upstream_result` for a job of the
        upstream semantics, the status answer for a documented one."""
        if job.upstream:
            return self.upstream_result(job, queue_length)
        return self.status(job, queue_length)

    def upstream_result(self, job: Job, queue_length: int,
                        request_base: str | None = None) -> dict[str, Any]:
        """The upstream toolkit's answer for a finished job: ``code`` 200 and
        ``response`` the video's (signed) URL, or ``code`` the job's ``error_code``,
        ``response`` None and ``message`` the cause. Also its webhook body, and the HTTP
        answer of a synchronous call (whose status is ``code``)."""
        queue_time, run_time, total_time = job_times(job, time.time())
        if job.status == JobState.DONE:
            code, url, message = 200, self.download_url(job, request_base), "success"
        else:
            code, url = job.error_code or 500, None
            message = job.error or "The job failed"
        return self.envelope(
            code, message=message, endpoint=job.endpoint or LEGACY_PATH, id=job.client_id,
            job_id=job.id, response=url, run_time=run_time, queue_time=queue_time,
            total_time=total_time, pid=job.pid if job.pid is not None else os.getpid(),
            queue_id=job.queue_id, queue_length=queue_length)

    def upstream_accepted(self, job: Job, queue_length: int, max_queue_length: int,
                          ) -> dict[str, Any]:
        """The upstream toolkit's 202 for a job queued with a ``webhook_url`` key."""
        return {
            "endpoint": job.endpoint or LEGACY_PATH,
            "code": 202,
            "id": job.client_id,
            "job_id": job.id,
            "message": "processing",
            "pid": os.getpid(),
            "queue_id": job.queue_id,
            "max_queue_length": max_queue_length or "unlimited",
            "queue_length": queue_length,
            "build_number": self.build_number,
        }
