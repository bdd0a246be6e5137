"""The render task: the body of the ``zoomreel.render`` actor.

Delivery is at-least-once, so every step is idempotent:

* a render first *claims* the job (a lease, see lease.py); a finished job is
  acknowledged and dropped, a job leased by a live worker is looked at again later, a
  job whose worker died is taken up;
* the video is written under a temporary name and renamed when complete (render.py), so
  a half-written file is never served; ``finish`` only moves an unfinished job;
* a failure the input caused ends the job ``error`` at once; one that may pass (the
  image host, the encoder, a full disk) is retried a few times with backoff, then ends
  it, naming the cause (a full disk is called so: :data:`DISK_FULL`);
* the finished video is stored (zoomreel.storage: renamed into the data dir, or uploaded
  to a bucket); a storage that fails is retried with backoff from the local file for
  ``storage_retry_s`` (never rendered again), then the job ends ``error`` naming the
  storage and the cause, and the local file is removed.

Redis may stall or restart under a render. Each bookkeeping step is retried until Redis
answers (_redis_retry.py), a progress write that fails is skipped, and the task never raises
because of Redis: what a long outage leaves behind is found by maintenance.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import redis

from .._backoff import backoff
from ..codecs import content_type_of
from ..errors import (
    DiskFullError,
    ImageError,
    RenderCancelled,
    RenderError,
    StorageError,
    TransientFetchError,
    ZoomreelError,
    disk_full,
)
from ..spec import RenderSpec
from ..storage import LocalStorage, Storage, upload_key, video_key
from ._redis_retry import retry_redis
from .broker import Messages
from .lease import Lease, take_up
from .metrics import JobMetrics
from .scripts import ClaimResult
from .settings import JobSettings
from .states import JobState
from .store import JobStore

if TYPE_CHECKING:
    from ..render import RenderResult
    from .chunks import ChunkTask
    from .job import Job

__all__ = ["RenderTask", "BUSY_DELAY_MS", "DISK_FULL", "INPUT_FAULT", "OUR_FAULT",
           "RENDERED_TWICE"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A job leased by another live worker is looked at again this much later.
BUSY_DELAY_MS = 5_000
_PROGRESS_EVERY_S = 0.5
# A failed render is sent again this much later, doubled after each failure up to the cap.
_RETRY_FIRST_WAIT_MS = 2_000
_RETRY_LONGEST_WAIT_MS = 60_000
# A storage step that fails is tried again after 0.5 s, 1 s, 2 s ... up to 15 s.
_STORAGE_FIRST_WAIT_S = 0.5
_STORAGE_LONGEST_WAIT_S = 15.0
#: A failed job's ``error_code``: the input was at fault (an image that could not be
#: fetched or decoded, a field out of range) ...
INPUT_FAULT = 400
#: ... or zoomreel was (the encoder, a crash, a worker that died each time).
OUR_FAULT = 500
#: Logged when a render ends for a job that another render ended already.
RENDERED_TWICE = "render done, but the job had ended already (rendered twice)"
#: How a render that found no room for its video says so (the error's text follows).
DISK_FULL = "The disk holding the videos is full"


class RenderTask:
    """Renders one job per call.

    Args:
        store: the job store.
        settings: folders, limits, retries, the lease's length.
        messages: where render and webhook messages are sent.
        shutdown: set when the process stops; running renders give their job back.
        metrics: where renders are counted.
        storage: where uploads are read and videos stored; default the data dir.
    """

    def __init__(self, store: JobStore, settings: JobSettings, messages: Messages,
                 shutdown: threading.Event, metrics: JobMetrics,
                 storage: Storage | None = None) -> None:
        self.store = store
        self.storage = storage or LocalStorage(settings.data_dir)
        self.settings = settings
        self.messages = messages
        self.shutdown = shutdown
        self.metrics = metrics
        self.lease_ms = int(settings.lease_s * 1000)
        #: Splits long jobs into chunks (chunks.py); None = every job rendered whole.
        self.chunks: ChunkTask | None = None

    def __call__(self, job_id: str) -> None:
        """Render ``job_id``. Never raises because of Redis: Dramatiq's own retry would
        need Redis too, and whatever a long outage leaves behind is taken up by the
        healing pass (maintenance.py)."""
        try:
            self._claim_and_render(job_id)
        except redis.RedisError as exc:
            log.error("render: Redis did not answer (%s); the job will be taken up again "
                      "once it does", exc, extra={"job_id": job_id})

    def _claim_and_render(self, job_id: str) -> None:
        token = uuid.uuid4().hex
        outcome = retry_redis(lambda: self.store.claim(job_id, token, self.lease_ms, os.getpid()),
                          "claim", job_id, self.shutdown)
        if outcome == ClaimResult.BUSY:
            self._busy(job_id)
            return
        if outcome == ClaimResult.LAPSED:  # running, no lease: its worker died
            self.take_up(job_id)
            return
        if outcome != ClaimResult.CLAIMED:  # finished or gone: nothing to do
            return
        self._render_leased(job_id, token)

    def _render_leased(self, job_id: str, token: str) -> None:
        """Render a job this call claimed, under its lease; what ends it, and how."""
        with Lease(self.store, job_id, token, self.lease_ms) as lease:
            try:
                self._render(job_id, token, lease)
            except RenderCancelled:
                if lease.lost.is_set():
                    return  # someone else owns the job now
                self.store.requeue(job_id, token, "interrupted by shutdown", count=False)
                self.messages.send_render(job_id, 0)
            except redis.RedisError:
                raise  # not the render's fault: see __call__
            except StorageError as exc:  # retried for storage_retry_s already
                self.fail(job_id, str(exc), OUR_FAULT)
            except TransientFetchError as exc:  # the image host may recover: retry a few times
                self._retry_or_fail(job_id, token, str(exc), INPUT_FAULT)
            except (RenderError, DiskFullError) as exc:  # the encoder, the disk: may pass
                self._retry_or_fail(job_id, token, str(exc), OUR_FAULT)
            except ZoomreelError as exc:  # the user's input: retrying cannot help
                self.fail(job_id, str(exc), INPUT_FAULT)
            except Exception as exc:
                if disk_full(exc):  # a folder made, a file moved, outside the encoder
                    message = f"{DISK_FULL} ({getattr(exc, 'strerror', None) or exc})"
                else:
                    log.exception("render failed unexpectedly", extra={"job_id": job_id})
                    message = f"Internal error while rendering: {exc}"
                self._retry_or_fail(job_id, token, message, OUR_FAULT)

    def _busy(self, job_id: str) -> None:
        """Another worker holds the job: look again once its lease could lapse; unless
        the job was split, since its chunks carry it (chunks.py)."""
        chunks = self.chunks
        if chunks is not None and retry_redis(lambda: chunks.is_split(job_id), "read", job_id,
                                          self.shutdown):
            return  # a lapsed lease (its joiner died) is taken up as any job's
        retry_redis(lambda: self.messages.send_render(job_id, BUSY_DELAY_MS), "re-send",
                job_id, self.shutdown)

    def _render(self, job_id: str, token: str, lease: Lease) -> None:
        from ..render import render_video

        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        spec = RenderSpec.from_request(job.request)
        if self.chunks is not None and self.chunks.split(job, spec, token, lease):
            return
        source = self.source_of(job, lease.lost)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= _PROGRESS_EVERY_S or done >= total:
                last[0] = now
                try:
                    if not self.store.renew(job_id, token, self.lease_ms, (done, total)):
                        lease.lost.set()
                except redis.RedisError:  # a progress write may be skipped; the lease
                    pass                  # thread notices if the job is lost meanwhile

        def cancel() -> bool:
            return self.shutdown.is_set() or lease.lost.is_set()

        self.storage.scratch.mkdir(parents=True, exist_ok=True)
        out = self.storage.scratch / job.filename
        log.info("render started", extra={"job_id": job_id})
        started = time.monotonic()
        result = render_video(source, out, spec, progress=progress, cancel=cancel)
        self.finish_rendered(job_id, lease, result, time.monotonic() - started)

    def source_of(self, job: Job, lost: threading.Event) -> bytes:
        """The job's image: its upload's bytes, or fetched from its URL.

        Raises:
            ImageError: the upload is gone. FetchError: the URL failed.
        """
        from ..net import fetch_url

        if job.upload:  # as bytes: no message may show the server's folders
            key = upload_key(job.upload)
            found = self.with_storage(job.id, lost, "reading the upload",
                                      lambda: self.storage.load_bytes(key))
            if found is None:
                raise ImageError("The uploaded image is gone (removed before its render)")
            return found
        return fetch_url(job.request["image_url"], max_bytes=self.settings.max_image_bytes,
                         allow_private=self.settings.allow_private_urls)

    def finish_rendered(self, job_id: str, lease: Lease, result: RenderResult,
                        seconds: float) -> None:
        """Store the finished video ``result`` and end its job ``done``."""
        out = Path(result.path)
        self._store_video(job_id, lease, out)
        fields = {
            "size": result.size_bytes, "duration": result.duration, "width": result.width,
            "height": result.height, "frame_rate": result.frame_rate,
            "frames_done": result.frames, "pid": os.getpid(),
            "storage": "" if self.storage.kind == LocalStorage.kind else self.storage.kind,
        }
        # A finish retried after a stall may find the job done by its first try: the
        # webhook message is then re-sent by the healing pass (the job stays pending).
        if retry_redis(lambda: self.store.finish(job_id, JobState.DONE, fields), "finish", job_id,
                   self.shutdown):
            self.metrics.render_done(result.frames, seconds)
            log.info("render done: %d frames in %.1f s (%.0f frames/s), %d bytes",
                     result.frames, seconds, result.frames / max(seconds, 1e-9),
                     result.size_bytes, extra={"job_id": job_id})
            self._after_finish(job_id)
        else:  # at-least-once delivery let two renders run to the end: worth knowing
            log.warning(RENDERED_TWICE, extra={"job_id": job_id})

    def _store_video(self, job_id: str, lease: Lease, out: Path) -> None:
        """Store the rendered file ``out`` (see Storage.save_file); a copy left in the
        scratch folder by a failure is removed."""
        key = video_key(out.name)
        content_type = content_type_of(out.name) or "application/octet-stream"
        try:
            self._with_storage(job_id, lease, "storing the video",
                               lambda: self.storage.save_file(key, out, content_type))
        except BaseException:
            out.unlink(missing_ok=True)
            raise

    def _with_storage(self, job_id: str, lease: Lease, what: str, step: Callable[[], T]) -> T:
        return self.with_storage(job_id, lease.lost, what, step)

    def with_storage(self, job_id: str, lost: threading.Event, what: str,
                     step: Callable[[], T]) -> T:
        """``step()``, tried again with backoff while storage fails, for
        ``storage_retry_s`` in all (``lost``: set once the job was taken from us).

        Raises:
            StorageError: it still failed then.
            RenderCancelled: the process stops, or the job was taken from us, meanwhile.
        """
        deadline = time.monotonic() + self.settings.storage_retry_s
        failed = 0
        while True:
            try:
                return step()
            except StorageError as exc:
                failed += 1
                delay = backoff(failed, _STORAGE_FIRST_WAIT_S, _STORAGE_LONGEST_WAIT_S)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                log.warning("%s failed, tried again in %.1f s: %s", what, min(delay, left),
                            exc, extra={"job_id": job_id})
                if self.shutdown.wait(min(delay, left)) or lost.is_set():
                    raise RenderCancelled(f"{what}: stopped while storage failed") from exc

    def _retry_or_fail(self, job_id: str, token: str, message: str, code: int) -> None:
        attempts = retry_redis(lambda: self.store.requeue(job_id, token, message), "requeue",
                           job_id, self.shutdown)
        if attempts < 0:
            return
        if attempts > self.settings.transient_retries:
            self.fail(job_id, message, code)
            return
        delay = int(backoff(attempts, _RETRY_FIRST_WAIT_MS, _RETRY_LONGEST_WAIT_MS))
        log.warning("render will be retried (attempt %d): %s", attempts, message,
                    extra={"job_id": job_id})
        retry_redis(lambda: self.messages.send_render(job_id, delay), "re-send", job_id,
                self.shutdown)

    def take_up(self, job_id: str) -> bool:
        """Take up a lapsed job (see lease.py); whether this call did."""
        return take_up(self.store, job_id, max_lost_runs=self.settings.max_lost_runs,
                       resend=self.messages.send_render,
                       give_up=lambda job, why: self.fail(job, why, OUR_FAULT),
                       shutdown=self.shutdown)

    def fail(self, job_id: str, message: str, code: int) -> None:
        """End the job ``error`` with ``message`` (unless it has ended already).

        Args:
            code: :data:`INPUT_FAULT` or :data:`OUR_FAULT` (the job's ``error_code``).
        """
        fields = {"error": message, "error_code": code}
        if retry_redis(lambda: self.store.finish(job_id, JobState.ERROR, fields), "finish",
                   job_id, self.shutdown):
            self.metrics.finished.labels(JobState.ERROR).inc()
            log.warning("job failed: %s", message, extra={"job_id": job_id})
            self._after_finish(job_id)

    def _after_finish(self, job_id: str) -> None:
        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        if self.chunks is not None:
            retry_redis(lambda: self.chunks.remove(job) if self.chunks else None,
                    "remove chunks", job_id, self.shutdown)
        if job.upload:
            try:
                self.storage.delete(upload_key(job.upload))
            except StorageError as exc:  # the sweep removes it later (an upload no job owns)
                log.warning("the upload stays for now: %s", exc, extra={"job_id": job_id})
        if job.webhook_url:
            retry_redis(lambda: self.messages.send_webhook(job_id, 0), "webhook send", job_id,
                    self.shutdown)
