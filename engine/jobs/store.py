"""JobStore: one Redis hash per job, and the few indexes the service needs.

Every state change that must not race (claim, finish, requeue) is one Lua script, so
two deliveries of the same message can never both move a job, and a job that is
``done`` or ``error`` never changes again.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from ..errors import JobNotFound

__all__ = ["Job", "JobStore", "FINISHED"]

FINISHED = ("done", "error")

_CLAIM = """
local st = redis.call('hget', KEYS[1], 'status')
if not st then return 'missing' end
if st == 'done' or st == 'error' then return st end
if not redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'busy' end
redis.call('hset', KEYS[1], 'status', 'running', 'pid', ARGV[3], 'run_started_at', ARGV[4])
if redis.call('hexists', KEYS[1], 'started_at') == 0 then
  redis.call('hset', KEYS[1], 'started_at', ARGV[4])
end
redis.call('zrem', KEYS[3], ARGV[5])
redis.call('zadd', KEYS[4], ARGV[4], ARGV[5])
return 'ok'
"""

_RENEW = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
if #ARGV > 2 then redis.call('hset', KEYS[2], 'frames_done', ARGV[3], 'frames_total', ARGV[4]) end
return 1
"""

_FINISH = """
local st = redis.call('hget', KEYS[1], 'status')
if not st or st == 'done' or st == 'error' then return 0 end
redis.call('hset', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3])
for i = 5, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('srem', KEYS[3], ARGV[1])
redis.call('zrem', KEYS[5], ARGV[1])
redis.call('zadd', KEYS[4], ARGV[3], ARGV[1])
redis.call('zadd', KEYS[7], ARGV[3], ARGV[1])
redis.call('del', KEYS[2])
local hook = redis.call('hget', KEYS[1], 'webhook_url')
if hook and hook ~= '' then
  redis.call('hset', KEYS[1], 'webhook_state', 'pending', 'webhook_attempts', 0,
             'webhook_msg_id', ARGV[4])
  redis.call('sadd', KEYS[6], ARGV[1])
end
return 1
"""

_REQUEUE = """
local st = redis.call('hget', KEYS[1], 'status')
if not st or st == 'done' or st == 'error' then return -1 end
if redis.call('get', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('del', KEYS[2])
redis.call('hset', KEYS[1], 'status', 'queued', 'last_error', ARGV[4])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[2])
redis.call('zadd', KEYS[4], ARGV[3], ARGV[2])
return redis.call('hincrby', KEYS[1], 'attempts', ARGV[5])
"""


def _f(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _i(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


@dataclass(frozen=True)
class Job:
    """A snapshot of one job record.

    Attributes:
        id: the job id (uuid4).
        status: ``queued``, ``running``, ``done`` or ``error``.
        request: the validated request fields (RenderSpec fields, image_url, ...).
        client_id: the request's optional ``id``, echoed in answers.
        queue_id: a number unique to the job, in submission order.
        pid: process id of the worker that ran it, None while queued.
        created_at: submission time (epoch seconds); started_at, finished_at likewise.
        frames_done: frames encoded so far; frames_total: frames in the video.
        filename: the video's file name in the storage folder.
        result: size, duration, width, height, frame_rate once done.
        error: what went wrong, once ``error``.
        webhook: delivery state (state, attempts, last_error, msg_id) or None.
    """

    id: str
    status: str
    request: dict[str, Any]
    client_id: Any
    queue_id: int
    pid: int | None
    created_at: float
    started_at: float | None
    run_started_at: float | None
    finished_at: float | None
    frames_done: int
    frames_total: int
    filename: str
    base_url: str | None
    upload: str | None
    webhook_url: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    webhook: dict[str, Any] | None

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Job:
        """Build a Job from its Redis hash (decoded strings)."""
        result = None
        if data.get("status") == "done":
            result = {
                "size": _i(data.get("size")),
                "duration": _f(data.get("duration")),
                "width": _i(data.get("width")),
                "height": _i(data.get("height")),
                "frame_rate": _i(data.get("frame_rate")),
            }
        webhook = None
        if data.get("webhook_url"):
            webhook = {
                "state": data.get("webhook_state") or "pending",
                "attempts": int(data.get("webhook_attempts") or 0),
                "last_error": data.get("webhook_last_error") or None,
                "msg_id": data.get("webhook_msg_id") or None,
            }
        return cls(
            id=data["id"],
            status=data["status"],
            request=json.loads(data.get("request") or "{}"),
            client_id=json.loads(data.get("client_id") or "null"),
            queue_id=int(data.get("queue_id") or 0),
            pid=_i(data.get("pid")),
            created_at=float(data["created_at"]),
            started_at=_f(data.get("started_at")),
            run_started_at=_f(data.get("run_started_at")),
            finished_at=_f(data.get("finished_at")),
            frames_done=int(data.get("frames_done") or 0),
            frames_total=int(data.get("frames_total") or 0),
            filename=data.get("filename", ""),
            base_url=data.get("base_url") or None,
            upload=data.get("upload") or None,
            webhook_url=data.get("webhook_url") or None,
            result=result,
            error=data.get("error") or None,
            attempts=int(data.get("attempts") or 0),
            webhook=webhook,
        )


class JobStore:
    """Job records in Redis.

    Args:
        client: a Redis client (any decode setting; values are decoded here).
        prefix: namespace of every key this store writes.
    """

    def __init__(self, client: redis.Redis, prefix: str = "zoomreel") -> None:
        self.client = client
        self.prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)
        self._requeue = client.register_script(_REQUEUE)

    # -- keys ------------------------------------------------------------------
    def _job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    @property
    def _queued(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def _active(self) -> str:
        return f"{self.prefix}:active"

    @property
    def _finished(self) -> str:
        return f"{self.prefix}:finished"

    @property
    def _hooks(self) -> str:
        return f"{self.prefix}:webhooks:pending"

    @property
    def _updated(self) -> str:  # every job, scored by the time its state last changed
        return f"{self.prefix}:updated"

    # -- records ---------------------------------------------------------------
    def create(self, request: dict[str, Any], *, client_id: Any = None, frames_total: int,
               filename_prefix: str = "video", extension: str = ".mp4",
               base_url: str | None = None, upload: str | None = None,
               webhook_url: str | None = None) -> Job:
        """Store a new queued job and return it (the caller then sends its message).

        The video's file name is ``<filename_prefix>_<UTC stamp>_<id8><extension>``;
        ``extension`` is the codec's (``.mp4``, ``.webm``).
        """
        job_id = str(uuid.uuid4())
        now = time.time()
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(now))
        queue_id = int(self.client.incr(f"{self.prefix}:queue_id"))
        record: dict[Any, Any] = {
            "id": job_id, "status": "queued", "request": json.dumps(request),
            "client_id": json.dumps(client_id), "queue_id": queue_id, "created_at": repr(now),
            "frames_done": 0, "frames_total": frames_total,
            "filename": f"{filename_prefix}_{stamp}_{job_id[:8]}{extension}",
            "base_url": base_url or "", "upload": upload or "", "webhook_url": webhook_url or "",
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._job(job_id), mapping=record)
        pipe.sadd(self._active, job_id)
        pipe.zadd(self._queued, {job_id: now})
        pipe.zadd(self._updated, {job_id: now})
        pipe.execute()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job's current record.

        Raises:
            JobNotFound: no such job (or it expired).
        """
        raw = self.client.hgetall(self._job(job_id))
        if not raw or b"status" not in raw and "status" not in raw:
            raise JobNotFound(job_id)
        return Job.from_hash({_s(k): _s(v) for k, v in raw.items()})

    def queue_length(self) -> int:
        """How many jobs wait for a worker."""
        return int(self.client.zcard(self._queued))

    def states_since(self, since: float, limit: int = 10_000) -> dict[str, str]:
        """``{job_id: status}`` of the jobs whose state changed at or after ``since``
        (epoch seconds), the most recent ``limit`` of them."""
        ids = [_s(x) for x in self.client.zrevrangebyscore(
            self._updated, "+inf", since, start=0, num=limit)]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self._job(job_id), "status")
        return {job_id: _s(status)
                for job_id, status in zip(ids, pipe.execute(), strict=True) if status}

    def active_ids(self) -> list[str]:
        """Ids of every job that is queued or running."""
        return sorted(_s(x) for x in self.client.smembers(self._active))

    def pending_webhook_ids(self) -> list[str]:
        """Ids of finished jobs whose webhook is still to be delivered."""
        return sorted(_s(x) for x in self.client.smembers(self._hooks))

    # -- the render's life -----------------------------------------------------
    def claim(self, job_id: str, token: str, lease_ms: int, pid: int) -> str:
        """Take the job for rendering: ``ok``, ``busy``, ``missing``, ``done`` or ``error``."""
        keys = [self._job(job_id), self._lease(job_id), self._queued, self._updated]
        return _s(self._claim(keys=keys, args=[token, lease_ms, pid, repr(time.time()), job_id]))

    def renew(self, job_id: str, token: str, lease_ms: int,
              progress: tuple[int, int] | None = None) -> bool:
        """Extend the lease (and record progress); False when the lease was lost."""
        args: list[Any] = [token, lease_ms]
        if progress is not None:
            args += [progress[0], progress[1]]
        return bool(self._renew(keys=[self._lease(job_id), self._job(job_id)], args=args))

    def finish(self, job_id: str, status: str, fields: dict[str, Any]) -> bool:
        """Mark the job ``done`` or ``error`` with ``fields``; False if it already was."""
        assert status in FINISHED
        keys = [self._job(job_id), self._lease(job_id), self._active, self._finished,
                self._queued, self._hooks, self._updated]
        args: list[Any] = [job_id, status, repr(time.time()), "msg_" + uuid.uuid4().hex]
        for name, value in fields.items():
            args += [name, "" if value is None else value]
        return bool(self._finish(keys=keys, args=args))

    def requeue(self, job_id: str, token: str, error: str, *, count: bool = True) -> int:
        """Give the job back to the queue (a retry); returns attempts so far, -1 if not ours."""
        keys = [self._job(job_id), self._lease(job_id), self._queued, self._updated]
        args = [token, job_id, repr(time.time()), error, 1 if count else 0]
        return int(self._requeue(keys=keys, args=args))

    def clear_leases(self) -> int:
        """Drop every lease (embedded start-up: no worker of an earlier run is alive)."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}:lease:*", count=500))
        return int(self.client.delete(*keys)) if keys else 0

    # -- webhooks --------------------------------------------------------------
    def lock_webhook(self, job_id: str, token: str, ttl_ms: int = 60_000) -> bool:
        """Take the right to deliver this job's webhook now."""
        return bool(self.client.set(f"{self.prefix}:hooklock:{job_id}", token, nx=True, px=ttl_ms))

    def unlock_webhook(self, job_id: str) -> None:
        """Release :meth:`lock_webhook`."""
        self.client.delete(f"{self.prefix}:hooklock:{job_id}")

    def webhook_result(self, job_id: str, state: str, attempts: int,
                       last_error: str | None) -> None:
        """Record one delivery attempt; ``delivered`` and ``failed`` are final."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._job(job_id), mapping={
            "webhook_state": state, "webhook_attempts": attempts,
            "webhook_last_error": last_error or "",
        })
        if state != "pending":
            pipe.srem(self._hooks, job_id)
        pipe.execute()

    # -- retention -------------------------------------------------------------
    def expired(self, older_than: float) -> list[Job]:
        """Finished jobs whose finish time is before ``older_than`` (epoch seconds)."""
        ids = [_s(x) for x in self.client.zrangebyscore(self._finished, 0, older_than)]
        jobs = []
        for job_id in ids:
            try:
                jobs.append(self.get(job_id))
            except JobNotFound:
                self.client.zrem(self._finished, job_id)
        return jobs

    def delete(self, job_id: str) -> None:
        """Remove a job's record and index entries."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._job(job_id), self._lease(job_id))
        for key in (self._finished, self._queued, self._updated):
            pipe.zrem(key, job_id)
        pipe.srem(self._active, job_id)
        pipe.srem(self._hooks, job_id)
        pipe.execute()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
