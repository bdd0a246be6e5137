"""JobService: submit, look up and answer for jobs; run workers.

This is the job system's façade: front ends call it and never touch Redis or Dramatiq.
It wires the parts together: the store (store.py), the actors on their broker
(broker.py) with the render and webhook tasks, and maintenance (maintenance.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from dramatiq.middleware import Middleware

from ..codecs import CODECS, content_type_of
from ..errors import DiskFullError, ImageTooLargeError, StorageError, disk_full
from ..spec import REQUEST_FIELDS, RenderSpec
from ..storage import (
    POSTER_EXTENSION,
    LocalStorage,
    ObjectInfo,
    Storage,
    upload_key,
    video_key,
)
from . import keys
from .broker import (
    EXTERNAL_HEARTBEAT_TIMEOUT_MS,
    RENDER_QUEUE,
    WEBHOOK_QUEUE,
    Messages,
    create_broker,
)
from .chunks import ChunkTask
from .consumers import SteadyWorker
from .disks import STORE_DISK_FULL, disk_space, store_disk_full
from .fair import SPARE, FairShares
from .finishes import Finishes
from .idempotency import check_key, fingerprint
from .job import Job
from .maintenance import Maintenance
from .metrics import JobMetrics, counting_connections
from .outcomes import Outcomes
from .render_task import RenderTask
from .settings import JobSettings
from .store import JobStore
from .webhook_task import StatusAnswer, WebhookTask

__all__ = ["JobService", "Video"]

log = logging.getLogger(__name__)

#: What a video's file name may look like (the store makes them: video_<time>_<id>.mp4).
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")

#: The front end's Redis calls give up after this long, so that a request made while
#: Redis is frozen is answered (503) promptly instead of hanging.
API_REDIS_TIMEOUT_S = 2.0
# How long after a submit Redis may still create its job: well inside the API's time-out,
# so that a submit answered 503 (timed out) can never have created one.
_CREATE_WAIT_S = API_REDIS_TIMEOUT_S - 0.5
#: /health asks the storage whether it answers at most this often (per process).
_STORAGE_CHECK_EVERY_S = 5.0


def _served(filename: str) -> bool:
    """Whether the download route serves files of this name: videos (the extensions
    the codecs write) and their posters."""
    return content_type_of(filename) is not None or filename.endswith(POSTER_EXTENSION)


@dataclass(frozen=True)
class Video:
    """A finished video found in storage (see :meth:`JobService.find_video`)."""

    storage: Storage
    key: str
    info: ObjectInfo


#: Webhook delivery threads of a process. A delivery mostly waits for its receiver, so
#: they are many: receivers that hang hold a few each (receivers.py), and the rest are
#: free for those that answer.
WEBHOOK_THREADS = 32


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
        middleware: more Dramatiq middleware for the broker (the entry point's policy
            for render threads, say).
        storage: where uploads and videos are kept (zoomreel.storage); default the
            data dir's folders.
    """

    def __init__(self, client: redis.Redis, settings: JobSettings, *, embedded: bool,
                 answer: StatusAnswer, worker_client: redis.Redis | None = None,
                 metrics: JobMetrics | None = None,
                 middleware: Iterable[Middleware] = (),
                 storage: Storage | None = None) -> None:
        self.client = client
        #: The data dir's folders: the storage, or where videos of jobs done before
        #: the storage changed may still be (the download route looks there too).
        self.local = LocalStorage(settings.data_dir)
        self.storage = storage or self.local
        self._storage_state: tuple[float, dict[str, Any]] = (-_STORAGE_CHECK_EVERY_S, {})
        self.worker_client = worker_client or client
        self.settings = settings
        self.embedded = embedded
        self.store = JobStore(client)
        self.metrics = metrics or JobMetrics()
        self.metrics.watch(self.store)
        self.shutdown = threading.Event()
        self.broker = create_broker(self.worker_client, embedded=embedded,
                                    middleware=middleware)
        self.fair = FairShares(self.worker_client, self.store.keys)
        self.messages = Messages(self.broker, self.fair)
        worker_store = JobStore(self.worker_client)
        # whole renders and chunks end jobs alike: one Outcomes for both
        outcomes = Outcomes(worker_store, settings, self.messages, self.shutdown,
                            self.metrics, self.storage)
        self.chunk_task = ChunkTask(worker_store, settings, self.messages, self.shutdown,
                                    outcomes)
        self.render_task = RenderTask(worker_store, settings, self.messages, self.shutdown,
                                      outcomes, chunks=self.chunk_task)
        self.webhook_task = WebhookTask(worker_store, settings, self.messages, answer,
                                        self.metrics)
        self.messages.declare(render=self.render_task, webhook=self.webhook_task)
        self.messages.declare_chunk(self.chunk_task)
        self.maintenance = Maintenance(self.client, self.store, settings, self.messages,
                                       self.render_task, self.chunk_task, outcomes,
                                       self.broker.heartbeat_timeout, self.storage)
        self.finishes = Finishes(self.client, self.store, max_waiting=settings.max_waiting)
        self._workers: list[SteadyWorker] = []

    @classmethod
    def connect(cls, url: str, settings: JobSettings, *, embedded: bool,
                answer: StatusAnswer, metrics: JobMetrics | None = None,
                middleware: Iterable[Middleware] = (),
                storage: Storage | None = None) -> JobService:
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
                   metrics=metrics, middleware=middleware, storage=storage)

    def close(self) -> None:
        """Close the Redis clients (after :meth:`stop_workers`); requests still waiting
        for a job are woken (:meth:`stop_waiting`)."""
        self.stop_waiting()
        self.client.close()
        if self.worker_client is not self.client:
            self.worker_client.close()

    # -- submitting and answering ---------------------------------------------
    def submit(self, request: dict[str, Any], *, upload: bytes | None = None,
               base_url: str | None = None, owner: str | None = None, endpoint: str = "",
               upstream: bool = False,
               idempotency_key: str | None = None) -> tuple[Job, int]:
        """Queue a render; return its job and the queue's length after it.

        With ``idempotency_key``, a key this owner used before (within
        ``idempotency_ttl_s``) for the same request returns that request's job, and
        nothing is created (idempotency.py).

        Either the job is stored, or this raises and nothing is stored (nor created
        later by a Redis that stalled: see :meth:`JobStore.create`'s deadline).

        Args:
            request: request fields: ``image_url`` (unless ``upload``), render fields
                (defaults filled in here), ``webhook_url``, ``id``.
            upload: the image itself, for multipart uploads.
            base_url: the address the request came in on (for ``download_url``).
            owner: who submits (a hash of their API key), for the per-key queue limit.
            endpoint: the route it came in on (echoed in its answers and webhook).
            upstream: answer for it as the upstream toolkit does (see Job.upstream).
            idempotency_key: the caller's ``Idempotency-Key``; None = none.

        Raises:
            SpecError: ``idempotency_key`` is malformed.
            IdempotencyConflict: ``idempotency_key`` made a job from another request.
            SpecError: a render field is out of range.
            URLRefusedError: image_url or webhook_url may not be fetched.
            ImageTooLargeError: the upload is over the size cap.
            QueueFullError: ``max_queue_length`` jobs are already waiting, or
                ``max_jobs_per_key`` of this owner's.
            redis.RedisError: Redis did not answer in time.
        """
        from ..net import check_url

        given = {k: v for k, v in request.items() if v is not None}
        once = None
        if idempotency_key is not None:
            once = (check_key(idempotency_key), fingerprint(endpoint, given, upload),
                    self.settings.idempotency_ttl_s)
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
        name = None if upload is None else uuid.uuid4().hex + ".img"
        job_id = str(uuid.uuid4())
        stored: dict[str, Any] = spec.request_fields()
        stored.update({k: given[k] for k in ("image_url", "webhook_url") if k in given})
        job, queued = self.store.create(  # raises, having stored nothing, when it cannot
            stored, client_id=given.get("id"), frames_total=spec.total_frames,
            extension=CODECS[spec.codec].extension, base_url=base_url, upload=name,
            webhook_url=given.get("webhook_url"), owner=owner,
            max_queued=self.settings.max_queue_length,
            max_queued_per_owner=self.settings.max_jobs_per_key,
            deadline=time.time() + _CREATE_WAIT_S, endpoint=endpoint, upstream=upstream,
            job_id=job_id, idempotency=once)
        if job.id != job_id:  # the key's job, made by an earlier call: nothing to send
            log.info("job answered again for its idempotency key", extra={"job_id": job.id})
            return job, queued
        if upload is not None and name is not None:
            self._store_upload(job.id, name, upload)
        self.metrics.submitted.inc()
        log.info("job submitted", extra={"job_id": job.id})
        try:
            self.messages.send_render(job.id)
        except redis.RedisError as exc:  # the job is stored: the healing pass sends it
            log.warning("job stored, its message not sent yet (%s)", exc,
                        extra={"job_id": job.id})
        return job, queued

    def submit_reel(self, request: dict[str, Any], *, images: list[bytes] | None = None,
                    audio: bytes | None = None, base_url: str | None = None,
                    owner: str | None = None, endpoint: str = "",
                    idempotency_key: str | None = None) -> tuple[Job, int]:
        """Queue a reel (POST /v1/video/reel); return its job and the queue's length.

        Everything that can be known before a fetch is checked here (reels.check_reel),
        so a bad reel stores nothing; idempotency and the queue's limits as
        :meth:`submit`.

        Args:
            request: the reel's fields: ``slides``, the ReelSpec fields, ``audio_url``,
                ``webhook_url``, ``id``.
            images: uploaded images, in order (the slides without an image_url take
                them; more images than such slides make slides of their own).
            audio: an uploaded track.
            base_url, owner, endpoint, idempotency_key: as :meth:`submit`.

        Raises:
            SpecError, ImageError, AudioError, URLRefusedError: a rule broken (named
                with the slide's index).
            ImageTooLargeError: an uploaded image is over the size cap.
            IdempotencyConflict, QueueFullError, redis.RedisError: as :meth:`submit`.
        """
        from .reels import check_reel

        given = {k: v for k, v in request.items() if v is not None}
        images = images or []
        once = None
        if idempotency_key is not None:
            # each file's digest in order, then the track's: one fingerprint per set
            uploaded = b"".join(hashlib.sha256(f).digest() for f in images) + (
                b"audio" + hashlib.sha256(audio).digest() if audio is not None else b"")
            once = (check_key(idempotency_key), fingerprint(endpoint, given, uploaded),
                    self.settings.idempotency_ttl_s)
        reel = check_reel(given, images=images, audio=audio, settings=self.settings)
        job_id = str(uuid.uuid4())
        names = [name for name, _ in reel.uploads]
        job, queued = self.store.create(  # raises, having stored nothing, when it cannot
            reel.stored, client_id=given.get("id"), frames_total=reel.frames_total,
            filename_prefix="reel", extension=reel.extension, base_url=base_url,
            upload=",".join(names) or None, webhook_url=given.get("webhook_url"),
            owner=owner, max_queued=self.settings.max_queue_length,
            max_queued_per_owner=self.settings.max_jobs_per_key,
            deadline=time.time() + _CREATE_WAIT_S, endpoint=endpoint, job_id=job_id,
            idempotency=once)
        if job.id != job_id:
            log.info("job answered again for its idempotency key", extra={"job_id": job.id})
            return job, queued
        stored: list[str] = []
        for name, data in reel.uploads:
            self._store_upload(job.id, name, data, stored)
            stored.append(name)
        self.metrics.submitted.inc()
        log.info("reel submitted (%d slides)", len(reel.stored["slides"]),
                 extra={"job_id": job.id})
        try:
            self.messages.send_render(job.id)
        except redis.RedisError as exc:
            log.warning("job stored, its message not sent yet (%s)", exc,
                        extra={"job_id": job.id})
        return job, queued

    def _store_upload(self, job_id: str, name: str, upload: bytes,
                      before: list[str] | None = None) -> None:
        """Store a new job's uploaded image (its job exists already, so the file always
        has an owner: a process killed while writing leaves a job whose render fails,
        and the failure removes the file). No message is sent before it is written.
        A write that fails takes the job away again, with the uploads ``before`` it.

        Raises:
            StorageError: the storage did not take it (nothing is left stored).
        """
        key = upload_key(name)
        try:
            self.storage.save_bytes(key, upload, "application/octet-stream")
        except BaseException as exc:
            try:
                self.store.delete(job_id)
            except redis.RedisError as gone:  # its render fails: the image is missing
                log.warning("a job whose upload failed is left to fail (%s)", gone,
                            extra={"job_id": job_id})
            for stored in [key, *map(upload_key, before or [])]:
                with contextlib.suppress(OSError, StorageError):
                    self.storage.delete(stored)
            if disk_full(exc):
                raise DiskFullError("The disk holding the uploads is full; nothing was "
                                    f"queued: retry in {DiskFullError.retry_after} s") from exc
            raise

    def waiting_slot(self) -> contextlib.AbstractContextManager[None]:
        """A place for one request that submits a job and waits for it (see
        :meth:`wait`); raises TooManyWaiting when ``max_waiting`` are taken."""
        return self.finishes.slot()

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it has finished, or as it is after ``timeout`` seconds; woken by
        a notification, holding no Redis connection while it waits (finishes.py).

        Raises:
            ServiceStopping: the service stops meanwhile (the job is kept).
            JobNotFound: no such job.
        """
        return self.finishes.wait(job_id, timeout)

    def stop_waiting(self) -> None:
        """Wake every request waiting for a job (each raises ServiceStopping)."""
        self.finishes.close()

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
        """The finished video called ``filename`` in the data dir, or None; never a path
        outside it."""
        if not _FILE_NAME.match(filename):  # also no NUL, no path, no overlong name
            return None
        if not _served(filename):  # only the extensions the codecs write, and posters
            return None
        root = self.settings.storage_dir.resolve()
        path = (root / filename).resolve()
        if path.parent != root or not path.is_file():
            return None
        return path

    def find_video(self, filename: str) -> Video | None:
        """The finished video called ``filename``: in the storage, else (a job done
        before the storage became a bucket) in the data dir; None when neither has it.

        Raises:
            StorageError: the storage did not answer.
        """
        if not _FILE_NAME.match(filename) or not _served(filename):
            return None
        key = video_key(filename)
        for storage in dict.fromkeys((self.storage, self.local)):
            if storage is self.local and self.video_path(filename) is None:
                continue  # also refuses a link out of the folder
            info = storage.info(key)
            if info is not None:
                return Video(storage, key, info)
        return None

    def storage_health(self) -> dict[str, Any]:
        """Whether the storage answers (asked at most every few seconds)."""
        checked, state = self._storage_state
        if time.monotonic() - checked < _STORAGE_CHECK_EVERY_S:
            return state
        state = {"backend": self.storage.kind, "ok": True}
        try:
            self.storage.check()
        except (StorageError, OSError) as exc:
            state.update(ok=False, error=str(exc))
        self._storage_state = (time.monotonic(), state)
        return state

    def health(self) -> dict[str, Any]:
        """Whether Redis answers and takes writes, how many workers sent a heartbeat
        lately, the data folder's free space, and whether the storage answers.

        ``status`` is ``ok``; ``disk_full`` (the data folder's disk, or the job store's:
        Redis refuses writes, MISCONF; workers cannot send heartbeats then); ``degraded``
        (the storage does not answer: jobs wait for it); or ``error`` (Redis does not
        answer).
        """
        disk = disk_space(self.settings.data_dir)
        since = int(time.time() * 1000) - EXTERNAL_HEARTBEAT_TIMEOUT_MS
        pipe = self.client.pipeline(transaction=False)  # one round trip
        pipe.zcount(keys.heartbeats(), since, "+inf")
        pipe.zcard(self.store.keys.queued)
        pipe.info("persistence")
        storage = self.storage_health()
        try:
            workers, queued, persistence = pipe.execute()
        except redis.RedisError as exc:
            return {"status": "error", "redis": False, "workers": 0, "error": str(exc), **disk,
                    "storage": storage}
        store_full = store_disk_full(persistence)
        answer = {"status": "ok" if storage["ok"] else "degraded", "redis": True,
                  "workers": int(workers), "queue_length": int(queued), **disk,
                  "store_disk_full": store_full, "storage": storage}
        if disk["disk_full"] or store_full:
            answer["status"] = "disk_full"
        if store_full:
            answer["error"] = STORE_DISK_FULL
        return answer

    # -- workers and maintenance ---------------------------------------------------
    def recover(self) -> int:
        """Start-up recovery (maintenance.py); how many messages had to be re-sent."""
        return self.maintenance.recover(owns_redis=self.embedded,
                                        dead_after_ms=EXTERNAL_HEARTBEAT_TIMEOUT_MS)

    def heal(self) -> int:
        """One healing pass (maintenance.py); how many jobs and webhooks it moved."""
        return self.maintenance.heal()

    def sweep_expired(self, now: float | None = None) -> int:
        """One retention sweep (maintenance.py); how many finished jobs it removed."""
        return self.maintenance.sweep(now)

    def start_workers(self, render_threads: int = 2,
                      webhook_threads: int = WEBHOOK_THREADS) -> None:
        """Start in-process Dramatiq workers (renders and webhooks on separate threads)
        and the maintenance threads (healing pass, retention sweep).

        Args:
            render_threads: render threads; 0 runs none (jobs wait for other workers).
                One more thread is kept for jobs submitted while they are all busy
                (fair.py).
            webhook_threads: webhook delivery threads; 0 runs none.
        """
        self.fair.slots = render_threads
        self.webhook_task.receivers.threads = webhook_threads
        # Two workers in one process (Dramatiq warns that each adds its own middleware;
        # harmless here since every queue is declared already) so that a slow webhook
        # receiver can never occupy a render thread.
        quiet = logging.getLogger("dramatiq.broker.RedisBroker")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            for queue, threads in ((RENDER_QUEUE, render_threads),
                                   (WEBHOOK_QUEUE, webhook_threads)):
                if threads <= 0:
                    continue
                if queue == RENDER_QUEUE:
                    threads += SPARE  # the spare render thread, for newcomers (fair.py)
                worker = SteadyWorker(self.broker, queues={queue}, worker_threads=threads,
                                      worker_timeout=500)
                worker.queue_prefetch = threads  # don't hoard jobs other workers could run
                worker.start()
                self._workers.append(worker)
        finally:
            quiet.setLevel(level)
        self.maintenance.start(self.shutdown, revive=self._revive)

    def _revive(self) -> int:
        """Restart the consumer threads of this process's workers that died."""
        return sum(worker.revive() for worker in list(self._workers))

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
