"""The two actors: render a job, deliver its webhook.

Both are methods of :class:`JobRunner`, declared on an explicit broker by
:func:`declare_actors`, so the broker is always configured before any actor exists.
Delivery is at-least-once, so every step is idempotent:

* a render first *claims* the job (a Redis lease, renewed while it works); a finished
  job is acknowledged and dropped, a job leased by a live worker is re-checked later;
* the video is written under a temporary name and renamed when complete, so a
  half-written file is never served; ``finish`` only moves an unfinished job;
* a webhook is sent only while its state is ``pending``; once ``delivered`` it stays so.

Redis may stall or restart under a render. Each bookkeeping step is retried until Redis
answers (a claim or finish retried is the same step again), a progress write that fails is
skipped, and an actor never raises because of Redis: what a long outage leaves behind (a
running job without a lease, a job or webhook without a message) is found and taken up by
:meth:`zoomreel.jobs.JobService.heal`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from ..errors import (
    ImageError,
    RenderCancelled,
    RenderError,
    TransientFetchError,
    ZoomreelError,
)
from ..spec import RenderSpec
from .broker import RENDER_QUEUE, WEBHOOK_QUEUE
from .metrics import JobMetrics
from .settings import JobSettings
from .store import FINISHED, Job, JobStore

__all__ = ["JobRunner", "StatusAnswer", "declare_actors", "LEASE_MS", "BUSY_DELAY_MS",
           "LOST_RUN"]

log = logging.getLogger(__name__)

LEASE_MS = 15_000  # the default of JobSettings.lease_s
BUSY_DELAY_MS = 5_000
_PROGRESS_EVERY_S = 0.5
#: How long a render's bookkeeping step waits for Redis to answer again.
_PATIENCE_S = 120.0
#: The job's last_error when it is taken up after its worker vanished.
LOST_RUN = "its worker stopped before finishing the render"


#: Builds a job's status answer (the webhook body) from the job and the queue length.
StatusAnswer = Callable[[Job, int], dict[str, Any]]


class _Lease:
    """Keeps a job's lease alive from a side thread; notices when it was lost.

    A renewal that fails (Redis stalled or restarting) is tried again next round; a lease
    that lapsed meanwhile is taken again by the renewal if nobody took the job up.
    """

    def __init__(self, store: JobStore, job_id: str, token: str, lease_ms: int) -> None:
        self.store, self.job_id, self.token, self.lease_ms = store, job_id, token, lease_ms
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"lease-{job_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.lease_ms / 5000):
            try:
                if not self.store.renew(self.job_id, self.token, self.lease_ms):
                    self.lost.set()
                    return
            except redis.RedisError as exc:
                log.warning("could not renew the lease: %s", exc, extra={"job_id": self.job_id})

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # A renewal blocked on a stalled Redis must not hold the render thread; once it
        # returns it finds the job finished or given back and stops.
        self._thread.join(timeout=1.0)


class JobRunner:
    """What the actors do, with their dependencies injected.

    Args:
        store: the job store.
        settings: job-system settings (folders, limits, webhook secret).
        answer: builds the webhook body of a finished job.
        shutdown: set when the process stops; running renders give their job back.
        metrics: where renders and webhook attempts are counted.
    """

    def __init__(self, store: JobStore, settings: JobSettings, answer: StatusAnswer,
                 shutdown: threading.Event | None = None,
                 metrics: JobMetrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.answer = answer
        self.shutdown = shutdown or threading.Event()
        self.metrics = metrics or JobMetrics()
        self.lease_ms = int(settings.lease_s * 1000)
        self.render_actor: dramatiq.Actor[Any, Any] | None = None
        self.webhook_actor: dramatiq.Actor[Any, Any] | None = None

    def _persist(self, call: Callable[[], Any], what: str, job_id: str) -> Any:
        """Run one Redis step, again and again while Redis does not answer (a stall, a
        restart), for up to ``_PATIENCE_S``; during shutdown, once.

        Raises:
            redis.RedisError: Redis did not answer in time.
        """
        deadline = time.monotonic() + _PATIENCE_S
        delay = 0.1
        while True:
            try:
                return call()
            except redis.RedisError as exc:
                if self.shutdown.is_set() or time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: Redis did not answer (%s); trying again", what, exc,
                            extra={"job_id": job_id})
            if self.shutdown.wait(delay):
                return call()  # one last try, then give up
            delay = min(2.0, delay * 2)

    # -- render ----------------------------------------------------------------
    def render(self, job_id: str) -> None:
        """Render one job (the body of the ``zoomreel.render`` actor).

        Never raises because of Redis: Dramatiq's own retry would need Redis too, and
        whatever a long outage leaves behind is taken up by JobService.heal.
        """
        _yield_to_answers()
        try:
            self._claim_and_render(job_id)
        except redis.RedisError as exc:
            log.error("render: Redis did not answer (%s); the job will be taken up again "
                      "once it does", exc, extra={"job_id": job_id})
        finally:
            _return_memory()

    def _claim_and_render(self, job_id: str) -> None:
        token = uuid.uuid4().hex
        outcome = self._persist(
            lambda: self.store.claim(job_id, token, self.lease_ms, os.getpid()), "claim", job_id)
        if outcome == "busy":  # another worker holds it; look again once its lease could lapse
            self._persist(lambda: self.send_render(job_id, BUSY_DELAY_MS), "re-send", job_id)
            return
        if outcome == "lapsed":  # running, no lease: its worker died; count it, queue it
            self.take_up(job_id)
            return
        if outcome != "ok":  # finished or gone: nothing to do
            return
        with _Lease(self.store, job_id, token, self.lease_ms) as lease:
            try:
                self._render(job_id, token, lease)
            except RenderCancelled:
                if lease.lost.is_set():
                    return  # someone else owns the job now
                self.store.requeue(job_id, token, "interrupted by shutdown", count=False)
                self.send_render(job_id, 0)
            except redis.RedisError:
                raise  # not the render's fault: see render()
            except (TransientFetchError, RenderError) as exc:  # may pass: retry a few times
                self._retry_or_fail(job_id, token, str(exc))
            except ZoomreelError as exc:  # the user's input: retrying cannot help
                self._fail(job_id, str(exc))
            except Exception as exc:
                log.exception("render failed unexpectedly", extra={"job_id": job_id})
                self._retry_or_fail(job_id, token, f"Internal error while rendering: {exc}")

    def _render(self, job_id: str, token: str, lease: _Lease) -> None:
        from ..net import fetch_url
        from ..render import render_video

        job = self._persist(lambda: self.store.get(job_id), "read", job_id)
        req = job.request
        spec = RenderSpec.from_request(req)
        source: bytes
        if job.upload:  # as bytes: no message may show the server's folders
            try:
                source = (self.settings.upload_dir / job.upload).read_bytes()
            except FileNotFoundError:
                raise ImageError("The uploaded image is gone (removed before its render)") from None
        else:
            source = fetch_url(req["image_url"], max_bytes=self.settings.max_image_bytes,
                               allow_private=self.settings.allow_private_urls)
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

        self.settings.storage_dir.mkdir(parents=True, exist_ok=True)
        out = self.settings.storage_dir / job.filename
        log.info("render started", extra={"job_id": job_id})
        started = time.monotonic()
        result = render_video(source, out, spec, progress=progress, cancel=cancel)
        seconds = time.monotonic() - started
        fields = {
            "size": result.size_bytes, "duration": result.duration, "width": result.width,
            "height": result.height, "frame_rate": result.frame_rate,
            "frames_done": result.frames, "pid": os.getpid(),
        }
        # A finish retried after a stall may find the job done by its first try: the
        # webhook message is then re-sent by JobService.heal (the job stays pending).
        if self._persist(lambda: self.store.finish(job_id, "done", fields), "finish", job_id):
            self.metrics.render_done(result.frames, seconds)
            log.info("render done: %d frames in %.1f s (%.0f frames/s), %d bytes",
                     result.frames, seconds, result.frames / max(seconds, 1e-9),
                     result.size_bytes, extra={"job_id": job_id})
            self._after_finish(job_id)

    def _retry_or_fail(self, job_id: str, token: str, message: str) -> None:
        attempts = self._persist(lambda: self.store.requeue(job_id, token, message),
                                 "requeue", job_id)
        if attempts < 0:
            return
        if attempts > self.settings.transient_retries:
            self._fail(job_id, message)
            return
        delay = min(60_000, 2_000 * 2 ** (attempts - 1))
        log.warning("render will be retried (attempt %d): %s", attempts, message,
                    extra={"job_id": job_id})
        self._persist(lambda: self.send_render(job_id, delay), "re-send", job_id)

    def take_up(self, job_id: str) -> bool:
        """Requeue a running job whose lease lapsed (its worker died, or lost Redis for
        longer than the lease), unless some other process already did; a job whose
        renders stopped this way ``max_lost_runs`` times ends ``error`` instead (a render
        that kills its process would otherwise do so forever).

        Returns:
            Whether this call took the job up.
        """
        lost = self._persist(lambda: self.store.take_up(job_id, LOST_RUN), "take-up", job_id)
        if lost < 0:
            return False
        limit = self.settings.max_lost_runs
        if lost >= limit:
            log.error("the render stopped without finishing %d times; giving up", lost,
                      extra={"job_id": job_id})
            self._fail(job_id, f"The render stopped without finishing {lost} times (the "
                               "worker process rendering it died each time); not retried")
        else:
            log.warning("its worker stopped before finishing; queued again (%d/%d)", lost,
                        limit, extra={"job_id": job_id})
            self._persist(lambda: self.send_render(job_id), "re-send", job_id)
        return True

    def _fail(self, job_id: str, message: str) -> None:
        if self._persist(lambda: self.store.finish(job_id, "error", {"error": message}),
                         "finish", job_id):
            self.metrics.finished.labels("error").inc()
            log.warning("job failed: %s", message, extra={"job_id": job_id})
            self._after_finish(job_id)

    def _after_finish(self, job_id: str) -> None:
        job = self._persist(lambda: self.store.get(job_id), "read", job_id)
        if job.upload:
            (self.settings.upload_dir / job.upload).unlink(missing_ok=True)
        if job.webhook_url:
            self._persist(lambda: self.send_webhook(job_id, 0), "webhook send", job_id)

    # -- webhook ---------------------------------------------------------------
    def webhook(self, job_id: str) -> None:
        """Deliver a finished job's webhook once (the body of ``zoomreel.webhook``).

        Never raises because of Redis (see :meth:`render`).
        """
        try:
            self._deliver(job_id)
        except redis.RedisError as exc:
            log.error("webhook: Redis did not answer (%s); it will be sent again once it "
                      "does", exc, extra={"job_id": job_id})

    def _deliver(self, job_id: str) -> None:
        from ..net import deliver, retry_delay

        try:
            job = self.store.get(job_id)
        except ZoomreelError:
            return
        if not self._webhook_due(job):
            return
        token = uuid.uuid4().hex
        if not self.store.lock_webhook(job_id, token):
            self.send_webhook(job_id, BUSY_DELAY_MS)
            return
        try:
            job = self.store.get(job_id)  # re-read under the lock
            if not self._webhook_due(job) or not job.webhook_url or not job.webhook:
                return
            payload = self.answer(job, self.store.queue_length())
            delivery = deliver(job.webhook_url, payload, msg_id=job.webhook["msg_id"],
                               secret=self.settings.webhook_secret,
                               allow_private=self.settings.allow_private_urls)
            attempts = job.webhook["attempts"] + 1
            if delivery.ok:
                self.store.webhook_result(job_id, "delivered", attempts, None)
                self._webhook_logged("delivered", job_id, attempts)
                return
            error = delivery.error or f"HTTP {delivery.status}"
            delay = retry_delay(attempts, delivery.retry_after) if delivery.retry else None
            if delay is None:
                self.store.webhook_result(job_id, "failed", attempts, error)
                self._webhook_logged("failed", job_id, attempts, error)
                return
            self.store.webhook_result(job_id, "pending", attempts, error)
            self._webhook_logged("retry", job_id, attempts, f"{error}; next in {delay:.0f} s")
            self.send_webhook(job_id, int(delay * 1000))
        finally:
            self.store.unlock_webhook(job_id)

    def _webhook_logged(self, outcome: str, job_id: str, attempts: int,
                        error: str | None = None) -> None:
        self.metrics.webhook_attempts.labels(outcome).inc()
        log.log(logging.INFO if outcome == "delivered" else logging.WARNING,
                "webhook %s after %d attempt(s)%s", outcome, attempts,
                f": {error}" if error else "", extra={"job_id": job_id})

    @staticmethod
    def _webhook_due(job: Job) -> bool:
        return (job.status in FINISHED and job.webhook is not None
                and job.webhook["state"] == "pending" and bool(job.webhook["msg_id"]))

    def send_render(self, job_id: str, delay_ms: int = 0) -> None:
        """Send a render message for ``job_id`` (after ``delay_ms``)."""
        _send(self.render_actor, job_id, delay_ms)

    def send_webhook(self, job_id: str, delay_ms: int = 0) -> None:
        """Send a webhook message for ``job_id`` (after ``delay_ms``)."""
        _send(self.webhook_actor, job_id, delay_ms)


#: The nice value of render threads: above the API's 0, so that on a machine that renders
#: and answers (serve) a busy CPU goes to the answers first; renders only lose time to them.
RENDER_NICENESS = 10


def _yield_to_answers() -> None:
    """Run this render thread, and the threads it starts (the encoder's, Numba's pool when
    it starts it), at :data:`RENDER_NICENESS` (Linux: a thread's own nice value). A no-op
    where threads have no nice value of their own, or already have a higher one."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < RENDER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, RENDER_NICENESS)
    except OSError:  # not allowed here: renders keep the process's priority
        pass


def _return_memory() -> None:
    """Give the memory a render freed back to the system.

    A render's large buffers are freed when it ends, but glibc keeps freed heap memory
    in its per-thread arenas: measured on a 54 MP image, a worker thread's process stayed
    at 395 MB after its second render and went down to 196 MB after malloc_trim. No-op
    where there is no glibc.
    """
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None


def _send(actor: dramatiq.Actor[Any, Any] | None, job_id: str, delay_ms: int) -> None:
    assert actor is not None, "declare_actors() first"
    actor.send_with_options(args=(job_id,), delay=delay_ms or None)


def declare_actors(broker: dramatiq.Broker, runner: JobRunner) -> JobRunner:
    """Declare the render and webhook actors on ``broker``, bound to ``runner``."""
    runner.render_actor = dramatiq.Actor(
        runner.render, broker=broker, actor_name="zoomreel.render", queue_name=RENDER_QUEUE,
        priority=0, options={"max_retries": 5},
    )
    runner.webhook_actor = dramatiq.Actor(
        runner.webhook, broker=broker, actor_name="zoomreel.webhook", queue_name=WEBHOOK_QUEUE,
        priority=0, options={"max_retries": 5},
    )
    return runner
