"""The job system: Redis job records, Dramatiq actors, the embedded Redis server.

Build a :class:`JobService` on a Redis client (it builds its own Dramatiq broker and
declares the actors on it), call :meth:`JobService.recover` and
:meth:`JobService.start_workers`, then :meth:`JobService.submit` jobs. Nothing here
knows the REST API: the front end hands the service the function that builds a status
answer, which is also what a webhook sends.

Where each rule lives:

| module | what |
|---|---|
| states.py | a job's and a webhook's states |
| keys.py | every Redis key |
| scripts.py | the Lua scripts that move a job between states |
| job.py, store.py | a job's record; the store that reads and moves records |
| broker.py | the Dramatiq broker, the two actors, lost-message recovery |
| consumers.py | Dramatiq workers whose consumer threads outlive Redis errors |
| lease.py | a render's lease; what happens when a worker dies |
| render_task.py | the render actor's body: claim, render, hand the end to outcomes.py |
| chunks.py | long jobs split into chunks many workers render at once, then joined |
| outcomes.py | how a render ends its job: stored and done, failed, retried (both kinds) |
| webhook_task.py | the webhook actor's body: deliver, retry |
| receivers.py | webhook receivers in flight: one that hangs delays only its own |
| finishes.py | waiting for a job to finish (the upstream toolkit's synchronous calls) |
| idempotency.py | Idempotency-Key: a retried submit answers the job of its first call |
| maintenance.py | recover at start, heal while running, retention sweep |
| disks.py | full disks: the data folder's free space, Redis refusing writes (MISCONF) |
| service.py | the façade the front ends call |
| settings.py, metrics.py, progress.py, redis_server.py | configuration, Prometheus
  metrics, progress and ETA, the embedded Redis server |

Uploads and videos are kept by a storage (:mod:`zoomreel.storage`: the data dir, or an
S3-compatible bucket), given to :class:`JobService`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import Job
    from .metrics import JobMetrics
    from .progress import job_times, poll_after, progress_of
    from .redis_server import EmbeddedRedis, find_redis_server
    from .service import JobService
    from .settings import JobSettings
    from .store import JobStore
    from .webhook_task import StatusAnswer

__all__ = [
    "EmbeddedRedis",
    "Job",
    "JobMetrics",
    "JobService",
    "JobSettings",
    "JobStore",
    "StatusAnswer",
    "find_redis_server",
    "job_times",
    "poll_after",
    "progress_of",
]

# Loaded when first used: importing zoomreel.jobs (its settings, say) stays cheap.
_LAZY = {
    "EmbeddedRedis": "redis_server", "find_redis_server": "redis_server",
    "Job": "job", "JobMetrics": "metrics", "JobService": "service",
    "JobSettings": "settings", "JobStore": "store", "StatusAnswer": "webhook_task",
    "job_times": "progress", "poll_after": "progress", "progress_of": "progress",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoomreel.jobs' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
