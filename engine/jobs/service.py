"""JobService: submit, look up and answer for jobs; run workers; keep the store tidy.

This is the job system's façade: front ends call it and never touch Redis or Dramatiq.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import redis

from ..codecs import CODECS, content_type_of
from ..errors import ImageTooLargeError, QueueFullError
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
from .settings import JobSettings
from .store import Job, JobStore

__all__ = ["JobService"]

log = logging.getLogger(__name__)


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
    """

    def __init__(self, client: redis.Redis, settings: JobSettings, *, embedded: bool,
                 answer: StatusAnswer) -> None:
        self.client = client
        self.settings = settings
        self.embedded = embedded
        self.store = JobStore(client)
        self.shutdown = threading.Event()
        self.broker = create_broker(client, embedded=embedded)
        self.runner = declare_actors(
            self.broker, JobRunner(self.store, settings, answer, self.shutdown))
        self._workers: list[dramatiq.Worker] = []
        self._sweeper: threading.Thread | None = None

    # -- submitting and answering ---------------------------------------------
    def submit(self, request: dict[str, Any], *, upload: bytes | None = None,
               base_url: str | None = None) -> Job:
        """Queue a render and return its job.

        Args:
            request: request fields: ``image_url`` (unless ``upload``), render fields
                (defaults filled in here), ``webhook_url``, ``id``.
            upload: the image itself, for multipart uploads.
            base_url: the address the request came in on (for ``download_url``).

        Raises:
            SpecError: a render field is out of range.
            URLRefusedError: image_url or webhook_url may not be fetched.
            ImageTooLargeError: the upload is over the size cap.
            QueueFullError: ``max_queue_length`` jobs are already waiting.
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
        limit = self.settings.max_queue_length
        queued = self.store.queue_length()
        if limit and queued >= limit:
            raise QueueFullError(queued, self.retry_after_full())
        name = None
        if upload is not None:
            self.settings.upload_dir.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex + ".img"
            (self.settings.upload_dir / name).write_bytes(upload)
        stored: dict[str, Any] = spec.request_fields()
        stored.update({k: given[k] for k in ("image_url", "webhook_url") if k in given})
        job = self.store.create(stored, client_id=given.get("id"),
                                frames_total=spec.total_frames,
                                extension=CODECS[spec.codec].extension, base_url=base_url,
                                upload=name, webhook_url=given.get("webhook_url"))
        self.runner.send_render(job.id)
        return job

    def retry_after_full(self) -> int:
        """Seconds a client turned away by a full queue should wait."""
        return 30

    def get(self, job_id: str) -> Job:
        """The job's record. Raises JobNotFound."""
        return self.store.get(job_id)

    def queue_length(self) -> int:
        """Jobs waiting for a worker."""
        return self.store.queue_length()

    def states_since(self, seconds: float) -> dict[str, str]:
        """``{job_id: job_status}`` of the jobs whose state changed in the last ``seconds``."""
        return self.store.states_since(time.time() - seconds)

    def video_path(self, filename: str) -> Path | None:
        """The finished video called ``filename``, or None; never a path outside storage."""
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
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
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return {"status": "error", "redis": False, "workers": 0, "error": str(exc)}
        since = int(time.time() * 1000) - EXTERNAL_HEARTBEAT_TIMEOUT_MS
        workers = int(self.client.zcount(f"{NAMESPACE}:__heartbeats__", since, "+inf"))
        return {"status": "ok", "redis": True, "workers": workers,
                "queue_length": self.queue_length()}

    # -- recovery, workers, retention -------------------------------------------
    def recover(self) -> int:
        """Start-up recovery: requeue dead workers' messages, re-send lost ones.

        Returns the number of jobs and webhooks whose message had to be re-sent.
        """
        if self.embedded:
            recover_unacked(self.client)
            self.store.clear_leases()
            self._remove_partial_files(older_than=time.time())
        else:
            recover_unacked(self.client, dead_after_ms=EXTERNAL_HEARTBEAT_TIMEOUT_MS)
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

    def stop_workers(self, timeout_s: float = 30.0) -> None:
        """Stop the workers; running renders give their job back to the queue."""
        self.shutdown.set()
        for worker in self._workers:
            worker.stop(timeout=int(timeout_s * 1000))
        self._workers.clear()

    def sweep_expired(self, now: float | None = None) -> int:
        """Remove finished jobs older than the retention, with their videos."""
        cutoff = (time.time() if now is None else now) - self.settings.retention_s
        removed = 0
        for job in self.store.expired(cutoff):
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
