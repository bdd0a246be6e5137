"""The webhook task: the body of the ``zoomreel.webhook`` actor.

A finished job whose request named a ``webhook_url`` has its webhook ``pending``
(scripts.FINISH); each message tries one delivery. A webhook is sent only while its
state is ``pending`` and under a lock (two messages for one job never send at once);
once ``delivered`` or ``failed`` it stays so. A receiver that fails in a way that may
pass gets the message again later (net.retry_delay: backoff, ``Retry-After``). A
receiver with as many deliveries in flight as it may have (receivers.py) gets the
message again a moment later, unattempted: a receiver that hangs holds its own
deliveries, never the threads of the others.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from ..errors import ZoomreelError
from .broker import Messages
from .job import Job
from .metrics import JobMetrics
from .receivers import Receivers
from .settings import JobSettings
from .states import FINISHED, WebhookState
from .store import JobStore

__all__ = ["WebhookTask", "StatusAnswer"]

log = logging.getLogger(__name__)

#: Builds a job's status answer (the webhook body) from the job and the queue length.
StatusAnswer = Callable[[Job, int], dict[str, Any]]

#: A webhook being delivered by another process is looked at again this much later.
_LOCKED_DELAY_MS = 5_000


class WebhookTask:
    """Delivers one job's webhook per call.

    Args:
        store: the job store.
        settings: the webhook secret and the address rules.
        messages: where a retry's message is sent.
        answer: builds the webhook body of a finished job.
        metrics: where delivery attempts are counted.
        receivers: deliveries in flight per receiver in this process.
    """

    def __init__(self, store: JobStore, settings: JobSettings, messages: Messages,
                 answer: StatusAnswer, metrics: JobMetrics,
                 receivers: Receivers | None = None) -> None:
        self.store = store
        self.settings = settings
        self.messages = messages
        self.answer = answer
        self.metrics = metrics
        self.receivers = receivers or Receivers()

    def __call__(self, job_id: str) -> None:
        """Deliver ``job_id``'s webhook once, if it is due. Never raises because of
        Redis: the healing pass re-sends a pending webhook that no message carries."""
        try:
            self._deliver(job_id)
        except redis.RedisError as exc:
            log.error("webhook: Redis did not answer (%s); it will be sent again once it "
                      "does", exc, extra={"job_id": job_id})

    def _deliver(self, job_id: str) -> None:
        try:
            job = self.store.get(job_id)
        except ZoomreelError:
            return
        if not _due(job) or not job.webhook_url:
            return
        url = job.webhook_url
        if not self.receivers.take(url):  # its receiver is busy: later, unattempted
            self.messages.send_webhook(job_id, self.receivers.busy_delay_ms(url))
            return
        started = time.monotonic()
        try:
            self._deliver_locked(job_id)
        finally:
            self.receivers.give_back(url, time.monotonic() - started)

    def _deliver_locked(self, job_id: str) -> None:
        from ..net import deliver, retry_delay

        token = uuid.uuid4().hex
        if not self.store.lock_webhook(job_id, token):
            self.messages.send_webhook(job_id, _LOCKED_DELAY_MS)
            return
        try:
            job = self.store.get(job_id)  # re-read under the lock
            if not _due(job) or not job.webhook_url or not job.webhook:
                return
            payload = self.answer(job, self.store.queue_length())
            delivery = deliver(job.webhook_url, payload, msg_id=job.webhook["msg_id"],
                               secret=self.settings.webhook_secret,
                               allow_private=self.settings.allow_private_urls)
            attempts = job.webhook["attempts"] + 1
            if delivery.ok:
                self.store.webhook_result(job_id, WebhookState.DELIVERED, attempts, None)
                self._logged(WebhookState.DELIVERED, job_id, attempts)
                return
            error = delivery.error or f"HTTP {delivery.status}"
            delay = retry_delay(attempts, delivery.retry_after) if delivery.retry else None
            if delay is None:
                self.store.webhook_result(job_id, WebhookState.FAILED, attempts, error)
                self._logged(WebhookState.FAILED, job_id, attempts, error)
                return
            self.store.webhook_result(job_id, WebhookState.PENDING, attempts, error)
            self._logged("retry", job_id, attempts, f"{error}; next in {delay:.0f} s")
            self.messages.send_webhook(job_id, int(delay * 1000))
        finally:
            self.store.unlock_webhook(job_id)

    def _logged(self, outcome: str, job_id: str, attempts: int,
                error: str | None = None) -> None:
        self.metrics.webhook_attempts.labels(outcome).inc()
        log.log(logging.INFO if outcome == WebhookState.DELIVERED else logging.WARNING,
                "webhook %s after %d attempt(s)%s", outcome, attempts,
                f": {error}" if error else "", extra={"job_id": job_id})


def _due(job: Job) -> bool:
    return (job.status in FINISHED and job.webhook is not None
            and job.webhook["state"] == WebhookState.PENDING and bool(job.webhook["msg_id"]))
