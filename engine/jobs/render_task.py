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

How a job ends (stored and ``done``, failed, sent again) is outcomes.py's, shared with
the chunks of long jobs (chunks.py), which this task hands a claimed job to when it is
long enough to split.

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
from typing import Protocol

import redis

from ..errors import (
    DiskFullError,
    RenderCancelled,
    RenderError,
    StorageError,
    TransientFetchError,
    ZoomreelError,
    disk_full,
)
from ..spec import RenderSpec
from ..storage import poster_name
from ._redis_retry import retry_redis
from .broker import Messages
from .job import Job
from .lease import Lease, take_up
from .outcomes import INPUT_FAULT, OUR_FAULT, RENDERED_TWICE, Outcomes
from .reels import Framed, ReelSources
from .scripts import ClaimResult
from .settings import JobSettings
from .store import JobStore

__all__ = ["RenderTask", "Splitter", "BUSY_DELAY_MS", "DISK_FULL", "INPUT_FAULT",
           "OUR_FAULT", "RENDERED_TWICE"]

log = logging.getLogger(__name__)

#: A job leased by another live worker is looked at again this much later.
BUSY_DELAY_MS = 5_000
_PROGRESS_EVERY_S = 0.5
#: How a render that found no room for its video says so (the error's text follows).
DISK_FULL = "The disk holding the videos is full"


class Splitter(Protocol):
    """What a render asks of the chunks of long jobs (chunks.ChunkTask)."""

    def is_split(self, job_id: str) -> bool:
        """Whether the job was split into chunks."""
        ...

    def split(self, job: Job, spec: Framed, token: str, lease: Lease) -> bool:
        """Split the claimed job and send its chunks; False to render it whole."""
        ...


class RenderTask:
    """Renders one job per call.

    Args:
        store: the job store.
        settings: folders, limits, retries, the lease's length.
        messages: where render messages are sent.
        shutdown: set when the process stops; running renders give their job back.
        outcomes: ends the jobs (stored and done, failed, sent again); its storage
            holds uploads and videos.
        chunks: splits long jobs into chunks (chunks.py); None = every job rendered
            whole.
    """

    def __init__(self, store: JobStore, settings: JobSettings, messages: Messages,
                 shutdown: threading.Event, outcomes: Outcomes,
                 chunks: Splitter | None = None) -> None:
        self.store = store
        self.settings = settings
        self.messages = messages
        self.shutdown = shutdown
        self.outcomes = outcomes
        self.storage = outcomes.storage
        self.chunks = chunks
        self.lease_ms = int(settings.lease_s * 1000)

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
        claimed = retry_redis(
            lambda: self.store.claim(job_id, token, self.lease_ms, os.getpid()),
            "claim", job_id, self.shutdown)
        if claimed == ClaimResult.BUSY:
            self._busy(job_id)
            return
        if claimed == ClaimResult.LAPSED:  # running, no lease: its worker died
            self.take_up(job_id)
            return
        if claimed != ClaimResult.CLAIMED:  # finished or gone: nothing to do
            return
        self._render_leased(job_id, token)

    def _render_leased(self, job_id: str, token: str) -> None:
        """Render a job this call claimed, under its lease; what ends it, and how."""
        fail = self.outcomes.fail
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
                fail(job_id, str(exc), OUR_FAULT)
            except TransientFetchError as exc:  # the image host may recover: retry a few times
                self._retry_or_fail(job_id, token, str(exc), INPUT_FAULT)
            except (RenderError, DiskFullError) as exc:  # the encoder, the disk: may pass
                self._retry_or_fail(job_id, token, str(exc), OUR_FAULT)
            except ZoomreelError as exc:  # the user's input: retrying cannot help
                fail(job_id, str(exc), INPUT_FAULT)
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
        if chunks is not None and retry_redis(lambda: chunks.is_split(job_id), "read",
                                              job_id, self.shutdown):
            return  # a lapsed lease (its joiner died) is taken up as any job's
        retry_redis(lambda: self.messages.send_render(job_id, BUSY_DELAY_MS), "re-send",
                    job_id, self.shutdown)

    def _render(self, job_id: str, token: str, lease: Lease) -> None:
        from ..render import render_video

        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        if job.is_reel:
            self._render_reel(job, token, lease)
            return
        spec = RenderSpec.from_request(job.request)
        if self.chunks is not None and self.chunks.split(job, spec, token, lease):
            return
        source = self.outcomes.source_of(job, lease.lost)
        progress, cancel = self._watch(job_id, token, lease)
        self.storage.scratch.mkdir(parents=True, exist_ok=True)
        out = self.storage.scratch / job.filename
        log.info("render started", extra={"job_id": job_id})
        started = time.monotonic()
        result = render_video(source, out, spec, progress=progress, cancel=cancel,
                              poster=self.storage.scratch / poster_name(job.filename))
        self.outcomes.finish_rendered(job_id, lease, result, time.monotonic() - started)

    def _render_reel(self, job: Job, token: str, lease: Lease) -> None:
        """Render a reel job: whole, or split into chunks when it is long."""
        with ReelSources(job, lambda name: self.outcomes.load_upload(job.id, name, lease.lost),
                         self.settings, self.storage.scratch, lease.lost) as sources:
            if self.chunks is not None and self.chunks.split(job, sources.extent(), token,
                                                             lease):
                return
            progress, cancel = self._watch(job.id, token, lease)
            self.storage.scratch.mkdir(parents=True, exist_ok=True)
            out = self.storage.scratch / job.filename
            log.info("reel render started", extra={"job_id": job.id})
            started = time.monotonic()
            result = sources.render(out, progress=progress, cancel=cancel,
                                    poster=self.storage.scratch / poster_name(job.filename))
        self.outcomes.finish_rendered(job.id, lease, result, time.monotonic() - started)

    def _watch(self, job_id: str, token: str, lease: Lease,
               ) -> tuple[Callable[[int, int], None], Callable[[], bool]]:
        """The render's progress callback (renewing the lease) and its cancel check."""
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

        return progress, cancel

    def _retry_or_fail(self, job_id: str, token: str, message: str, code: int) -> None:
        attempts = retry_redis(lambda: self.store.requeue(job_id, token, message), "requeue",
                               job_id, self.shutdown)
        self.outcomes.retry_or_fail(job_id, attempts, message, code,
                                    lambda delay_ms: self.messages.send_render(job_id, delay_ms))

    def take_up(self, job_id: str) -> bool:
        """Take up a lapsed job (see lease.py); whether this call did."""
        return take_up(self.store, job_id, max_lost_runs=self.settings.max_lost_runs,
                       resend=self.messages.send_render,
                       give_up=lambda job, why: self.outcomes.fail(job, why, OUR_FAULT),
                       shutdown=self.shutdown)
