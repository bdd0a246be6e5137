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

from ..errors import JobNotFound, QueueFullError

__all__ = ["Job", "JobStore", "FINISHED"]

FINISHED = ("done", "error")

# Queue limits are checked and the job created in one step, so that concurrent submits
# can never pass a limit. A job's owner (the hash of its API key) has a queue of its own,
# zoomreel:queued:<owner>, kept beside the main one by every script that moves a job.
# ARGV[5] is the moment (Redis's clock, seconds) after which the caller no longer waits
# for the answer: a script that runs later (it sat in a frozen server) creates nothing,
# since the caller has answered that nothing was created.
_CREATE = """
local deadline = tonumber(ARGV[5])
if deadline > 0 then
  local now = redis.call('time')
  if tonumber(now[1]) + tonumber(now[2]) / 1000000 > deadline then return {'late'} end
end
local limit, per_owner = tonumber(ARGV[3]), tonumber(ARGV[4])
if limit > 0 and redis.call('zcard', KEYS[3]) >= limit then return {'full'} end
if per_owner > 0 and redis.call('zcard', KEYS[5]) >= per_owner then return {'owner_full'} end
local queue_id = redis.call('incr', KEYS[6])
for i = 6, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('hset', KEYS[1], 'queue_id', queue_id)
redis.call('sadd', KEYS[2], ARGV[1])
redis.call('zadd', KEYS[3], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[4], ARGV[2], ARGV[1])
if per_owner >= 0 then redis.call('zadd', KEYS[5], ARGV[2], ARGV[1]) end
return {'ok', queue_id, redis.call('zcard', KEYS[3])}
"""

# The owner's own queue, from inside a script: its name is derived from the job's record.
_OWNER_QUEUE = """
local function owner_queue(job_key, prefix)
  local owner = redis.call('hget', job_key, 'owner')
  if owner and owner ~= '' then return prefix .. ':queued:' .. owner end
  return nil
end
"""

_CLAIM = _OWNER_QUEUE + """
local st = redis.call('hget', KEYS[1], 'status')
if not st then return 'missing' end
if st == 'done' or st == 'error' then return st end
local holder = redis.call('get', KEYS[2])
if holder == ARGV[1] then  -- the same claim again (a retry after a stall): still ours
  redis.call('pexpire', KEYS[2], ARGV[2])
  return 'ok'
end
if holder then return 'busy' end
if st == 'running' then return 'lapsed' end  -- its worker vanished: see _TAKE_UP
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('hset', KEYS[1], 'status', 'running', 'pid', ARGV[3], 'run_started_at', ARGV[4],
           'lease_token', ARGV[1])
if redis.call('hexists', KEYS[1], 'started_at') == 0 then
  redis.call('hset', KEYS[1], 'started_at', ARGV[4])
end
redis.call('zrem', KEYS[3], ARGV[5])
local mine = owner_queue(KEYS[1], ARGV[6])
if mine then redis.call('zrem', mine, ARGV[5]) end
redis.call('zadd', KEYS[4], ARGV[4], ARGV[5])
return 'ok'
"""

# A lease that lapsed while Redis stalled (or while the renewer could not reach it) is
# taken again if nobody took the job up meanwhile: the render simply goes on.
_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
elseif holder or redis.call('hget', KEYS[2], 'status') ~= 'running'
    or redis.call('hget', KEYS[2], 'lease_token') ~= ARGV[1] then
  return 0
else
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if #ARGV > 2 then redis.call('hset', KEYS[2], 'frames_done', ARGV[3], 'frames_total', ARGV[4]) end
return 1
"""

_FINISH = _OWNER_QUEUE + """
local st = redis.call('hget', KEYS[1], 'status')
if not st or st == 'done' or st == 'error' then return 0 end
redis.call('hset', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3])
for i = 6, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('srem', KEYS[3], ARGV[1])
redis.call('zrem', KEYS[5], ARGV[1])
local mine = owner_queue(KEYS[1], ARGV[5])
if mine then redis.call('zrem', mine, ARGV[1]) end
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

_REQUEUE = _OWNER_QUEUE + """
local st = redis.call('hget', KEYS[1], 'status')
if not st or st == 'done' or st == 'error' then return -1 end
if redis.call('get', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('del', KEYS[2])
redis.call('hset', KEYS[1], 'status', 'queued', 'last_error', ARGV[4], 'lease_token', '')
redis.call('zadd', KEYS[3], ARGV[3], ARGV[2])
local mine = owner_queue(KEYS[1], ARGV[6])
if mine then redis.call('zadd', mine, ARGV[3], ARGV[2]) end
redis.call('zadd', KEYS[4], ARGV[3], ARGV[2])
return redis.call('hincrby', KEYS[1], 'attempts', ARGV[5])
"""


# A running job whose lease lapsed lost its worker (killed, crashed, cut off from Redis for
# longer than the lease): back to the queue, counted, by exactly one caller.
_TAKE_UP = _OWNER_QUEUE + """
if redis.call('hget', KEYS[1], 'status') ~= 'running' then return -1 end
if redis.call('exists', KEYS[2]) == 1 then return -1 end
redis.call('hset', KEYS[1], 'status', 'queued', 'last_error', ARGV[3], 'lease_token', '')
redis.call('zadd', KEYS[3], ARGV[2], ARGV[1])
local mine = owner_queue(KEYS[1], ARGV[4])
if mine then redis.call('zadd', mine, ARGV[2], ARGV[1]) end
redis.call('zadd', KEYS[4], ARGV[2], ARGV[1])
return redis.call('hincrby', KEYS[1], 'lost_runs', 1)
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
        attempts: transient failures retried so far.
        webhook: delivery state (state, attempts, last_error, msg_id) or None.
        lost_runs: renders that stopped without a word (their worker died or lost
            Redis for longer than the lease) and were taken up again.
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
    lost_runs: int = 0

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
            lost_runs=int(data.get("lost_runs") or 0),
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
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)
        self._requeue = client.register_script(_REQUEUE)
        self._take_up = client.register_script(_TAKE_UP)
        self._clock: tuple[float, float] | None = None  # (offset, when measured)

    # -- keys ------------------------------------------------------------------
    def _job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    @property
    def _queued(self) -> str:
        return f"{self.prefix}:queued"

    @property
    def queued_key(self) -> str:
        """The sorted set of queued jobs (its ZCARD is the queue's length)."""
        return self._queued

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
               webhook_url: str | None = None, owner: str | None = None,
               max_queued: int = 0, max_queued_per_owner: int = 0,
               deadline: float | None = None) -> tuple[Job, int]:
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

        Raises:
            QueueFullError: a limit is reached (checked and created in one step).
            redis.TimeoutError: Redis ran the call after ``deadline``; nothing was created.
        """
        job_id = str(uuid.uuid4())
        now = time.time()
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(now))
        record: dict[Any, Any] = {
            "id": job_id, "status": "queued", "request": json.dumps(request),
            "client_id": json.dumps(client_id), "created_at": repr(now),
            "frames_done": 0, "frames_total": frames_total,
            "filename": f"{filename_prefix}_{stamp}_{job_id[:8]}{extension}",
            "base_url": base_url or "", "upload": upload or "", "webhook_url": webhook_url or "",
            "owner": owner or "",
        }
        keys = [self._job(job_id), self._active, self._queued, self._updated,
                f"{self.prefix}:queued:{owner or ''}", f"{self.prefix}:queue_id"]
        redis_deadline = 0.0 if deadline is None else deadline + self._clock_offset()
        args: list[Any] = [job_id, repr(now), max_queued,
                           max_queued_per_owner if owner else -1, repr(redis_deadline)]
        for name, value in record.items():
            args += [name, value]
        answer = self._create(keys=keys, args=args)
        outcome = _s(answer[0])
        if outcome == "late":
            self._clock = None  # measure again: the clocks may have moved apart
            raise redis.TimeoutError("Redis answered too late; the job was not created")
        if outcome == "full":
            raise QueueFullError(self.queue_length())
        if outcome == "owner_full":
            raise QueueFullError(int(self.client.zcard(keys[4])), per_key=True)
        record["queue_id"] = answer[1]
        return _decode(job_id, record), int(answer[2])

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
        return _decode(job_id, self.client.hgetall(self._job(job_id)))

    def counts(self) -> tuple[int, int]:
        """(queued, unfinished): jobs waiting, and jobs waiting or running."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self._queued)
        pipe.scard(self._active)
        queued, unfinished = pipe.execute()
        return int(queued), int(unfinished)

    def get_with_queue_length(self, job_id: str) -> tuple[Job, int]:
        """The job's record and the queue's length, in one round trip (the status route).

        Raises:
            JobNotFound: no such job (or it expired).
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self._job(job_id))
        pipe.zcard(self._queued)
        raw, length = pipe.execute()
        return _decode(job_id, raw), int(length)

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
        return _s(self._claim(keys=keys, args=[token, lease_ms, pid, repr(time.time()), job_id,
                                               self.prefix]))

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
        args: list[Any] = [job_id, status, repr(time.time()), "msg_" + uuid.uuid4().hex,
                           self.prefix]
        for name, value in fields.items():
            args += [name, "" if value is None else value]
        return bool(self._finish(keys=keys, args=args))

    def requeue(self, job_id: str, token: str, error: str, *, count: bool = True) -> int:
        """Give the job back to the queue (a retry); returns attempts so far, -1 if not ours."""
        keys = [self._job(job_id), self._lease(job_id), self._queued, self._updated]
        args = [token, job_id, repr(time.time()), error, 1 if count else 0, self.prefix]
        return int(self._requeue(keys=keys, args=args))

    def take_up(self, job_id: str, error: str) -> int:
        """Requeue a running job whose lease lapsed, atomically: of all callers, only one
        gets a count (the job's lost runs so far); the others get -1."""
        keys = [self._job(job_id), self._lease(job_id), self._queued, self._updated]
        return int(self._take_up(keys=keys, args=[job_id, repr(time.time()), error,
                                                  self.prefix]))

    def lapsed_ids(self) -> list[str]:
        """Ids of running jobs without a lease: their worker is gone (see :meth:`take_up`)."""
        ids = self.active_ids()
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self._job(job_id), "status")
            pipe.exists(self._lease(job_id))
        answers = pipe.execute()
        return [job_id for job_id, status, leased
                in zip(ids, answers[::2], answers[1::2], strict=True)
                if status is not None and _s(status) == "running" and not leased]

    def unchanged_since(self, ids: list[str], before: float) -> list[str]:
        """Those of ``ids`` whose state last changed before ``before`` (epoch seconds)."""
        if not ids:
            return []
        scores = self.client.zmscore(self._updated, ids)
        return [job_id for job_id, score in zip(ids, scores, strict=True)
                if score is not None and score < before]

    def queued_ids(self) -> list[str]:
        """Ids of the jobs waiting for a worker."""
        return sorted(_s(x) for x in self.client.zrange(self._queued, 0, -1))

    def mark_resent(self, job_id: str, kind: str, ttl_ms: int) -> bool:
        """Take the right to re-send ``kind`` (render, webhook) for a job whose message
        was lost; one process wins, and nobody re-sends again for ``ttl_ms``."""
        key = f"{self.prefix}:resent:{kind}:{job_id}"
        return bool(self.client.set(key, "1", nx=True, px=ttl_ms))

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
        owner = _s(self.client.hget(self._job(job_id), "owner") or "")
        pipe = self.client.pipeline(transaction=True)
        if owner:
            pipe.zrem(f"{self.prefix}:queued:{owner}", job_id)
        pipe.delete(self._job(job_id), self._lease(job_id))
        for key in (self._finished, self._queued, self._updated):
            pipe.zrem(key, job_id)
        pipe.srem(self._active, job_id)
        pipe.srem(self._hooks, job_id)
        pipe.execute()


def _decode(job_id: str, raw: dict[Any, Any]) -> Job:
    """A job from its HGETALL answer. Raises JobNotFound for an empty or partial one."""
    if not raw or b"status" not in raw and "status" not in raw:
        raise JobNotFound(job_id)
    return Job.from_hash({_s(k): _s(v) for k, v in raw.items()})


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
