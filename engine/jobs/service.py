"""JobService: submit, look up and answer for jobs; run workers; keep the store tidy.

This is the job system's façade: front ends call it and never touch Redis or Dramatiq.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import redis

from ..codecs import CODECS, content_type_of
from ..errors import ImageTooLargeError
from ..spec import REQUEST_FIELDS, RenderSpec
from .actors import JobRunner, StatusAnswer, declare_actors
from .broker import (
    EXTERNAL_HEARTBEAT_TIMEOUT_MS,
    NAMESPACE,
    RENDER_QUEUE,
    WEBHOOK_QUEUE,
    create_broker,
    queued_job_ids,
    recover_unacked,
)
from .metrics import JobMetrics, counting_connections
from .settings import JobSettings
from .store import Job, JobStore

__all__ = ["JobService"]

log = logging.getLogger(__name__)

#: What a video's file name may look like (the store makes them: video_<time>_<id>.mp4).
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")

#: The front end's Redis calls give up after this long, so that a request made while
#: Redis is frozen is answered (503) promptly instead of hanging.
API_REDIS_TIMEOUT_S = 2.0
# How long after a submit Redis may still create its job: well inside the API's time-out,
# so that a submit answered 503 (timed out) can never have created one.
_CREATE_WAIT_S = API_REDIS_TIMEOUT_S - 0.5
#: A job or webhook that no message carries is re-sent once it has been so this long
#: (a message is sent just after its job is stored: give it time to appear).
_ORPHAN_AFTER_S = 10.0


class JobService:
    """The job system on one Redis server.

    Args:
        client: Redis client of the job store and the Dramatiq broker.
        settings: folders, limits and secrets.
        embedded: True when this process owns the Redis server (``serve`` without
            ``ZOOMREEL_REDIS_URL``): start-up recovery then treats every unacknowledged
            message and every lease as orphaned.
        answer: builds a finished job's webhook body, ``answer(job, queue_length)``:
            the front end's status answer, so both say the same.
        worker_client: Redis client of the workers (the broker and the renders'
            bookkeeping); default ``client``. See :meth:`connect`.
        metrics: where this process counts its jobs, renders and webhooks; new by default.
    """

    def __init__(self, client: redis.Redis, settings: JobSettings, *, embedded: bool,
                 answer: StatusAnswer, worker_client: redis.Redis | None = None,
                 metrics: JobMetrics | None = None) -> None:
        self.client = client
        self.worker_client = worker_client or client
        self.settings = settings
        self.embedded = embedded
        self.store = JobStore(client)
        self.metrics = metrics or JobMetrics()
        self.metrics.watch(self.store)
        self.shutdown = threading.Event()
        self.broker = create_broker(self.worker_client, embedded=embedded)
        self.runner = declare_actors(self.broker, JobRunner(
            JobStore(self.worker_client), settings, answer, self.shutdown, self.metrics))
        self._workers: list[dramatiq.Worker] = []
        self._sweeper: threading.Thread | None = None
        self._healer: threading.Thread | None = None

    @classmethod
    def connect(cls, url: str, settings: JobSettings, *, embedded: bool,
                answer: StatusAnswer, metrics: JobMetrics | None = None) -> JobService:
        """A service on the Redis server at ``url``, with two clients.

        The front end's calls time out after ``API_REDIS_TIMEOUT_S`` (its answer is then a
        503). The workers' calls wait for as long as Redis takes to answer: a Dramatiq
        fetch cut off by a time-out would still run once a frozen Redis resumes, and its
        messages would then sit unseen in the worker's acknowledgement set; a dead peer
        is still noticed, by TCP keep-alive, and a restarted one by the reconnect.
        """
        metrics = metrics or JobMetrics()
        counting = counting_connections(metrics)
        api = redis.Redis.from_url(url, socket_timeout=API_REDIS_TIMEOUT_S,
                                   socket_connect_timeout=API_REDIS_TIMEOUT_S,
                                   connection_class=counting)
        workers = redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5.0,
                                       socket_keepalive=True, connection_class=counting)
        return cls(api, settings, embedded=embedded, answer=answer, worker_client=workers,
                   metrics=metrics)

    def close(self) -> None:
        """Close the Redis clients (after :meth:`stop_workers`)."""
        self.client.close()
        if self.worker_client is not self.client:
            self.worker_client.close()

    # -- submitting and answering ---------------------------------------------
    def submit(self, request: dict[str, Any], *, upload: bytes | None = None,
               base_url: str | None = None, owner: str | None = None) -> tuple[Job, int]:
        """Queue a render; return its job and the queue's length after it.

        Either the job is stored, or this raises and nothing is stored (nor created
        later by a Redis that stalled: see :meth:`JobStore.create`'s deadline).

        Args:
            request: request fields: ``image_url`` (unless ``upload``), render fields
                (defaults filled in here), ``webhook_url``, ``id``.
            upload: the image itself, for multipart uploads.
            base_url: the address the request came in on (for ``download_url``).
            owner: who submits (a hash of their API key), for the per-key queue limit.

        Raises:
            SpecError: a render field is out of range.
            URLRefusedError: image_url or webhook_url may not be fetched.
            ImageTooLargeError: the upload is over the size cap.
            QueueFullError: ``max_queue_length`` jobs are already waiting, or
                ``max_jobs_per_key`` of this owner's.
            redis.RedisError: Redis did not answer in time.
        """
        from ..net import check_url

        given = {k: v for k, v in request.items() if v is not None}
        spec = RenderSpec.from_request(given)
        REQUEST_FIELDS["length"].check(spec.length, maximum=self.settings.max_length)
        allow = self.settings.allow_private_urls
        if upload is None:
            check_url(given["image_url"], allow_private=allow, label="image_url")
        elif len(upload) > self.settings.max_image_bytes:
            raise ImageTooLargeError(
                f"image: the upload is over {self.settings.max_image_bytes} bytes")
        if given.get("webhook_url"):
            check_url(given["webhook_url"], allow_private=allow, label="webhook_url")
        name = None
        if upload is not None:
            self.settings.upload_dir.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex + ".img"
            (self.settings.upload_dir / name).write_bytes(upload)
        stored: dict[str, Any] = spec.request_fields()
        stored.update({k: given[k] for k in ("image_url", "webhook_url") if k in given})
        try:
            job, queued = self.store.create(
                stored, client_id=given.get("id"), frames_total=spec.total_frames,
                extension=CODECS[spec.codec].extension, base_url=base_url, upload=name,
                webhook_url=given.get("webhook_url"), owner=owner,
                max_queued=self.settings.max_queue_length,
                max_queued_per_owner=self.settings.max_jobs_per_key,
                deadline=time.time() + _CREATE_WAIT_S)
        except BaseException:  # a full queue, or Redis down or too slow: nothing stored
            if name is not None:
                (self.settings.upload_dir / name).unlink(missing_ok=True)
            raise
        self.metrics.submitted.inc()
        log.info("job submitted", extra={"job_id": job.id})
        try:
            self.runner.send_render(job.id)
        except redis.RedisError as exc:  # the job is stored: the healing pass sends it
            log.warning("job stored, its message not sent yet (%s)", exc,
                        extra={"job_id": job.id})
        return job, queued

    def get(self, job_id: str) -> Job:
        """The job's record. Raises JobNotFound."""
        return self.store.get(job_id)

    def queue_length(self) -> int:
        """Jobs waiting for a worker."""
        return self.store.queue_length()

    def get_with_queue_length(self, job_id: str) -> tuple[Job, int]:
        """The job's record and the queue's length, read together. Raises JobNotFound."""
        return self.store.get_with_queue_length(job_id)

    def states_since(self, seconds: float) -> dict[str, str]:
        """``{job_id: job_status}`` of the jobs whose state changed in the last ``seconds``."""
        return self.store.states_since(time.time() - seconds)

    def video_path(self, filename: str) -> Path | None:
        """The finished video called ``filename``, or None; never a path outside storage."""
        if not _FILE_NAME.match(filename):  # also no NUL, no path, no overlong name
            return None
        if content_type_of(filename) is None:  # only the extensions the codecs write
            return None
        root = self.settings.storage_dir.resolve()
        path = (root / filename).resolve()
        if path.parent != root or not path.is_file():
            return None
        return path

    def health(self) -> dict[str, Any]:
        """Whether Redis answers and how many workers sent a heartbeat lately."""
        since = int(time.time() * 1000) - EXTERNAL_HEARTBEAT_TIMEOUT_MS
        pipe = self.client.pipeline(transaction=False)  # one round trip
        pipe.zcount(f"{NAMESPACE}:__heartbeats__", since, "+inf")
        pipe.zcard(self.store.queued_key)
        try:
            workers, queued = pipe.execute()
        except redis.RedisError as exc:
            return {"status": "error", "redis": False, "workers": 0, "error": str(exc)}
        return {"status": "ok", "redis": True, "workers": int(workers),
                "queue_length": int(queued)}

    # -- recovery, workers, retention -------------------------------------------
    def recover(self) -> int:
        """Start-up recovery: requeue dead workers' messages, re-send lost ones, take up
        the jobs whose worker died (counted, see :meth:`JobRunner.take_up`).

        Returns the number of jobs and webhooks whose message had to be re-sent.
        """
        if self.embedded:
            recover_unacked(self.client)
            self.store.clear_leases()  # no worker of an earlier run is alive
            self._remove_partial_files(older_than=time.time())
        else:
            recover_unacked(self.client, dead_after_ms=EXTERNAL_HEARTBEAT_TIMEOUT_MS)
        for job_id in self.store.lapsed_ids():
            self.runner.take_up(job_id)
        resent = 0
        carried = queued_job_ids(self.client, RENDER_QUEUE)
        for job_id in self.store.active_ids():
            if job_id not in carried:
                self.runner.send_render(job_id)
                resent += 1
        carried = queued_job_ids(self.client, WEBHOOK_QUEUE)
        for job_id in self.store.pending_webhook_ids():
            if job_id not in carried:
                self.runner.send_webhook(job_id)
                resent += 1
        return resent

    def start_workers(self, render_threads: int = 2, webhook_threads: int = 4) -> None:
        """Start in-process Dramatiq workers: renders and webhooks on separate threads.

        Args:
            render_threads: render threads; 0 runs none (jobs wait for other workers).
            webhook_threads: webhook delivery threads; 0 runs none.
        """
        # Two workers in one process (Dramatiq warns that each adds its own middleware;
        # harmless here since every queue is declared already) so that a slow webhook
        # receiver can never occupy a render thread.
        quiet = logging.getLogger("dramatiq.broker.RedisBroker")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            for queue, threads in ((RENDER_QUEUE, render_threads),
                                   (WEBHOOK_QUEUE, webhook_threads)):
                if threads <= 0:  # e.g. an API-only process
                    continue
                worker = dramatiq.Worker(self.broker, queues={queue}, worker_threads=threads,
                                         worker_timeout=500)
                worker.queue_prefetch = threads  # don't hoard jobs other workers could run
                worker.start()
                self._workers.append(worker)
        finally:
            quiet.setLevel(level)
        self._sweeper = threading.Thread(target=self._sweep_loop, daemon=True, name="sweeper")
        self._sweeper.start()
        self._healer = threading.Thread(target=self._heal_loop, daemon=True, name="healer")
        self._healer.start()

    def stop_workers(self, timeout_s: float = 5.0) -> None:
        """Stop the workers within ``timeout_s`` in all; running renders give their job
        back to the queue (a render that cannot, Redis being down, leaves it to lapse:
        it is taken up again later, or at the next start).

        Dramatiq retries a message's acknowledgement for as long as Redis is down, so a
        worker thread may never end: its threads are daemons, and the wait is bounded.
        """
        self.shutdown.set()
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            left_ms = max(100, int((deadline - time.monotonic()) * 1000))
            try:
                worker.stop(timeout=left_ms)
            except Exception as exc:  # e.g. requeueing prefetched messages while Redis is down
                log.warning("stopping a worker: %s", exc)
        self._workers.clear()

    def heal(self) -> int:
        """One healing pass, safe in any number of processes at once:

        * a running job whose lease lapsed is taken up (requeued and re-sent, counted; by
          exactly one process: see :meth:`JobRunner.take_up`);
        * a queued job or a pending webhook that no message has carried for a while (its
          message was lost to a Redis outage) is re-sent, by one process;
        * in every case messages that workers silent for too long fetched go back.

        Returns:
            How many jobs and webhooks were taken up or re-sent.
        """
        healed = 0
        for job_id in self.store.lapsed_ids():
            healed += self.runner.take_up(job_id)
        recover_unacked(self.client, dead_after_ms=self.broker.heartbeat_timeout)
        before = time.time() - _ORPHAN_AFTER_S
        ttl_ms = int(_ORPHAN_AFTER_S * 3000)
        for queue, ids, send in (
                (RENDER_QUEUE, self.store.queued_ids(), self.runner.send_render),
                (WEBHOOK_QUEUE, self.store.pending_webhook_ids(), self.runner.send_webhook)):
            waiting = self.store.unchanged_since(ids, before)
            if not waiting:
                continue
            carried = queued_job_ids(self.client, queue)
            for job_id in waiting:
                if job_id not in carried and self.store.mark_resent(job_id, queue, ttl_ms):
                    log.warning("re-sending the lost %s message", queue,
                                extra={"job_id": job_id})
                    send(job_id)
                    healed += 1
        return healed

    def _heal_loop(self) -> None:
        every = min(5.0, self.settings.lease_s / 3)
        while not self.shutdown.wait(every):
            try:
                self.heal()
            except redis.RedisError as exc:
                log.warning("healing pass skipped: Redis did not answer (%s)", exc)
            except Exception:
                log.exception("healing pass failed")

    def sweep_expired(self, now: float | None = None) -> int:
        """Remove finished jobs older than the retention, with their videos; none at all
        with retention 0 (keep forever)."""
        cutoff = (time.time() if now is None else now) - self.settings.retention_s
        removed = 0
        for job in self.store.expired(cutoff) if self.settings.retention_s > 0 else ():
            if job.filename:
                (self.settings.storage_dir / job.filename).unlink(missing_ok=True)
            self.store.delete(job.id)
            removed += 1
        self._remove_partial_files(older_than=time.time() - 86400)
        return removed

    def _remove_partial_files(self, older_than: float) -> None:
        """Delete renders' temporary files (``.<name>.part``) that a killed process left."""
        if not self.settings.storage_dir.is_dir():
            return
        for path in self.settings.storage_dir.glob(".*.part"):
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
            except OSError:
                pass

    def _sweep_loop(self) -> None:
        while not self.shutdown.wait(60.0):
            try:
                self.sweep_expired()
            except Exception:
                log.warning("retention sweep failed", exc_info=True)
