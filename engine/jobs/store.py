"""JobStore: one Redis hash per job, and the few indexes the service needs.

The keys are listed in keys.py, the scripts that move a job between states in
scripts.py; this class is their one user.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from ..errors import IdempotencyConflict, JobNotFound, QueueFullError
from . import scripts
from .job import Job, decode_job, text
from .keys import Keys
from .scripts import ClaimResult, CreateResult
from .states import FINISHED, JobState, WebhookState

__all__ = ["JobStore"]


class JobStore:
    """Job records in Redis.

    Args:
        client: a Redis client (any decode setting; values are decoded here).
        prefix: namespace of every key this store writes.
    """

    def __init__(self, client: redis.Redis, prefix: str = "zoomreel") -> None:
        self.client = client
        self.keys = Keys(prefix)
        self._owners = self.keys.queued_by("")  # the scripts append an owner to it
        self._create = client.register_script(scripts.CREATE)
        self._claim = client.register_script(scripts.CLAIM)
        self._renew = client.register_script(scripts.RENEW)
        self._finish = client.register_script(scripts.FINISH)
        self._requeue = client.register_script(scripts.REQUEUE)
        self._take_up = client.register_script(scripts.TAKE_UP)
        self._clock: tuple[float, float] | None = None  # (offset, when measured)

    # -- records ---------------------------------------------------------------
    def create(self, request: dict[str, Any], *, client_id: Any = None, frames_total: int,
               filename_prefix: str = "video", extension: str = ".mp4",
               base_url: str | None = None, upload: str | None = None,
               webhook_url: str | None = None, owner: str | None = None,
               max_queued: int = 0, max_queued_per_owner: int = 0,
               deadline: float | None = None, endpoint: str = "",
               upstream: bool = False, job_id: str | None = None,
               idempotency: tuple[str, str, float] | None = None) -> tuple[Job, int]:
        """Store a new queued job, in one round trip; return it and the queue's length
        after it (the caller then sends its message).

        The video's file name is ``<filename_prefix>_<UTC stamp>_<id8><extension>``;
        ``extension`` is the codec's (``.mp4``, ``.webm``).

        Args:
            owner: who submitted it (a hash of their API key), for the per-owner limit.
            max_queued: queued jobs allowed in all; 0 = no limit.
            max_queued_per_owner: queued jobs allowed per owner; 0 = no limit.
            deadline: when the caller stops waiting (``time.time()``): Redis creates
                nothing after it, so a caller whose call timed out knows that nothing
                was created, even if a stalled Redis runs the call later.
            job_id: the new job's id; None = a new uuid4.
            idempotency: (the caller's idempotency key, the request's fingerprint, how
                long the key is remembered in seconds): when the key (of this owner)
                made a job for this fingerprint, that job is returned (its id differs
                from ``job_id``) and nothing is created.

        Raises:
            IdempotencyConflict: the key made a job for another fingerprint.
            QueueFullError: a limit is reached (checked and created in one step).
            redis.TimeoutError: Redis ran the call after ``deadline``; nothing was created.
        """
        job_id = job_id or str(uuid.uuid4())
        now = time.time()
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(now))
        record: dict[Any, Any] = {
            "id": job_id, "status": JobState.QUEUED, "request": json.dumps(request),
            "client_id": json.dumps(client_id), "created_at": repr(now),
            "frames_done": 0, "frames_total": frames_total,
            "filename": f"{filename_prefix}_{stamp}_{job_id[:8]}{extension}",
            "base_url": base_url or "", "upload": upload or "", "webhook_url": webhook_url or "",
            "owner": owner or "", "endpoint": endpoint, "upstream": "1" if upstream else "",
        }
        k = self.keys
        key, fingerprint, ttl = idempotency or ("", "", 0.0)
        keys = [k.job(job_id), k.active, k.queued, k.updated, k.queued_by(owner or ""),
                k.queue_id, k.idempotency(owner or "", key)]
        redis_deadline = 0.0 if deadline is None else deadline + self._clock_offset()
        args: list[Any] = [job_id, repr(now), max_queued,
                           max_queued_per_owner if owner else -1, repr(redis_deadline),
                           fingerprint, max(1, round(ttl * 1000)), k.job("")]
        for name, value in record.items():
            args += [name, value]
        answer = self._create(keys=keys, args=args)
        outcome = CreateResult(text(answer[0]))
        if outcome == CreateResult.LATE:
            self._clock = None  # measure again: the clocks may have moved apart
            raise redis.TimeoutError("Redis answered too late; the job was not created")
        if outcome == CreateResult.FULL:
            raise QueueFullError(self.queue_length())
        if outcome == CreateResult.OWNER_FULL:
            raise QueueFullError(int(self.client.zcard(keys[4])), per_key=True)
        if outcome == CreateResult.CONFLICT:
            raise IdempotencyConflict(key)
        if outcome == CreateResult.REPLAYED:
            return self.get(text(answer[1])), int(answer[2])
        record["queue_id"] = answer[1]
        return decode_job(job_id, record), int(answer[2])

    def _clock_offset(self) -> float:
        """Redis's clock minus this machine's, in seconds, measured once a minute."""
        measured = self._clock
        if measured is None or time.monotonic() - measured[1] > 60.0:
            before = time.time()
            seconds, micros = self.client.time()
            after = time.time()
            measured = self._clock = (seconds + micros / 1e6 - (before + after) / 2,
                                      time.monotonic())
        return measured[0]

    def get(self, job_id: str) -> Job:
        """The job's current record.

        Raises:
            JobNotFound: no such job (or it expired).
        """
        return decode_job(job_id, self.client.hgetall(self.keys.job(job_id)))

    def counts(self) -> tuple[int, int]:
        """(queued, unfinished): jobs waiting, and jobs waiting or running."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.keys.queued)
        pipe.scard(self.keys.active)
        queued, unfinished = pipe.execute()
        return int(queued), int(unfinished)

    def get_with_queue_length(self, job_id: str) -> tuple[Job, int]:
        """The job's record and the queue's length, in one round trip (the status route).

        Raises:
            JobNotFound: no such job (or it expired).
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.job(job_id))
        pipe.zcard(self.keys.queued)
        raw, length = pipe.execute()
        return decode_job(job_id, raw), int(length)

    def queue_length(self) -> int:
        """How many jobs wait for a worker."""
        return int(self.client.zcard(self.keys.queued))

    def states_since(self, since: float, limit: int = 10_000) -> dict[str, str]:
        """``{job_id: status}`` of the jobs whose state changed at or after ``since``
        (epoch seconds), the most recent ``limit`` of them."""
        ids = [text(x) for x in self.client.zrevrangebyscore(
            self.keys.updated, "+inf", since, start=0, num=limit)]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.job(job_id), "status")
        return {job_id: text(status)
                for job_id, status in zip(ids, pipe.execute(), strict=True) if status}

    def active_ids(self) -> list[str]:
        """Ids of every job that is queued or running."""
        return sorted(text(x) for x in self.client.smembers(self.keys.active))

    def pending_webhook_ids(self) -> list[str]:
        """Ids of finished jobs whose webhook is still to be delivered."""
        return sorted(text(x) for x in self.client.smembers(self.keys.webhooks_pending))

    # -- the render's life -----------------------------------------------------
    def claim(self, job_id: str, token: str, lease_ms: int, pid: int) -> ClaimResult:
        """Take the job for rendering (see scripts.CLAIM)."""
        keys = [self.keys.job(job_id), self.keys.lease(job_id), self.keys.queued,
                self.keys.updated]
        return ClaimResult(text(self._claim(
            keys=keys, args=[token, lease_ms, pid, repr(time.time()), job_id, self._owners])))

    def renew(self, job_id: str, token: str, lease_ms: int,
              progress: tuple[int, int] | None = None) -> bool:
        """Extend the lease (and record progress); False when the lease was lost."""
        args: list[Any] = [token, lease_ms]
        if progress is not None:
            args += [progress[0], progress[1]]
        return bool(self._renew(keys=[self.keys.lease(job_id), self.keys.job(job_id)],
                                args=args))

    def finish(self, job_id: str, status: JobState, fields: dict[str, Any]) -> bool:
        """Mark the job ``done`` or ``error`` with ``fields``; False if it already was.

        Raises:
            ValueError: ``status`` is not a final state.
        """
        if status not in FINISHED:
            raise ValueError(f"a job can only finish as {' or '.join(FINISHED)}, not {status!r}")
        k = self.keys
        keys = [k.job(job_id), k.lease(job_id), k.active, k.finished, k.queued,
                k.webhooks_pending, k.updated, k.finishes]
        args: list[Any] = [job_id, status, repr(time.time()), "msg_" + uuid.uuid4().hex,
                           self._owners]
        for name, value in fields.items():
            args += [name, "" if value is None else value]
        return bool(self._finish(keys=keys, args=args))

    def requeue(self, job_id: str, token: str, error: str, *, count: bool = True) -> int:
        """Give the job back to the queue (a retry); returns attempts so far, -1 if not ours."""
        keys = [self.keys.job(job_id), self.keys.lease(job_id), self.keys.queued,
                self.keys.updated]
        args = [token, job_id, repr(time.time()), error, 1 if count else 0, self._owners]
        return int(self._requeue(keys=keys, args=args))

    def take_up(self, job_id: str, error: str) -> int:
        """Requeue a running job whose lease lapsed, atomically: of all callers, only one
        gets a count (the job's lost runs so far); the others get -1."""
        keys = [self.keys.job(job_id), self.keys.lease(job_id), self.keys.queued,
                self.keys.updated]
        return int(self._take_up(keys=keys, args=[job_id, repr(time.time()), error,
                                                  self._owners]))

    def lapsed_ids(self) -> list[str]:
        """Ids of running jobs without a lease: their worker is gone (see :meth:`take_up`)."""
        ids = self.active_ids()
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.job(job_id), "status")
            pipe.exists(self.keys.lease(job_id))
        answers = pipe.execute()
        return [job_id for job_id, status, leased
                in zip(ids, answers[::2], answers[1::2], strict=True)
                if status is not None and text(status) == JobState.RUNNING and not leased]

    def unchanged_since(self, ids: list[str], before: float) -> list[str]:
        """Those of ``ids`` whose state last changed before ``before`` (epoch seconds)."""
        if not ids:
            return []
        scores = self.client.zmscore(self.keys.updated, ids)
        return [job_id for job_id, score in zip(ids, scores, strict=True)
                if score is not None and score < before]

    def queued_ids(self) -> list[str]:
        """Ids of the jobs waiting for a worker."""
        return sorted(text(x) for x in self.client.zrange(self.keys.queued, 0, -1))

    def mark_resent(self, job_id: str, kind: str, ttl_ms: int) -> bool:
        """Take the right to re-send ``kind`` (render, webhook) for a job whose message
        was lost; one process wins, and nobody re-sends again for ``ttl_ms``."""
        return bool(self.client.set(self.keys.resent(kind, job_id), "1", nx=True, px=ttl_ms))

    def clear_leases(self) -> int:
        """Drop every lease (embedded start-up: no worker of an earlier run is alive)."""
        keys = list(self.client.scan_iter(match=self.keys.lease_pattern(), count=500))
        return int(self.client.delete(*keys)) if keys else 0

    # -- webhooks --------------------------------------------------------------
    def lock_webhook(self, job_id: str, token: str, ttl_ms: int = 60_000) -> bool:
        """Take the right to deliver this job's webhook now."""
        return bool(self.client.set(self.keys.hook_lock(job_id), token, nx=True, px=ttl_ms))

    def unlock_webhook(self, job_id: str) -> None:
        """Release :meth:`lock_webhook`."""
        self.client.delete(self.keys.hook_lock(job_id))

    def webhook_result(self, job_id: str, state: WebhookState, attempts: int,
                       last_error: str | None) -> None:
        """Record one delivery attempt; ``delivered`` and ``failed`` are final."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.job(job_id), mapping={
            "webhook_state": state, "webhook_attempts": attempts,
            "webhook_last_error": last_error or "",
        })
        if state != WebhookState.PENDING:
            pipe.srem(self.keys.webhooks_pending, job_id)
        pipe.execute()

    # -- retention -------------------------------------------------------------
    def expired(self, older_than: float) -> list[Job]:
        """Finished jobs whose finish time is before ``older_than`` (epoch seconds)."""
        ids = [text(x) for x in self.client.zrangebyscore(self.keys.finished, 0, older_than)]
        jobs = []
        for job_id in ids:
            try:
                jobs.append(self.get(job_id))
            except JobNotFound:
                self.client.zrem(self.keys.finished, job_id)
        return jobs

    def delete(self, job_id: str) -> None:
        """Remove a job's record and index entries."""
        k = self.keys
        owner = text(self.client.hget(k.job(job_id), "owner") or "")
        pipe = self.client.pipeline(transaction=True)
        if owner:
            pipe.zrem(k.queued_by(owner), job_id)
        pipe.delete(k.job(job_id), k.lease(job_id), k.chunks(job_id))
        for key in (k.finished, k.queued, k.updated):
            pipe.zrem(key, job_id)
        pipe.srem(k.active, job_id)
        pipe.srem(k.webhooks_pending, job_id)
        pipe.execute()
