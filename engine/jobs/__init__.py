"""The job system: Redis job records, Dramatiq actors, the embedded Redis server.

Build a :class:`JobService` on a Redis client (it builds its own Dramatiq broker and
declares the actors on it), call :meth:`JobService.recover` and
:meth:`JobService.start_workers`, then :meth:`JobService.submit` jobs. Nothing here
knows the REST API: the front end hands the service the function that builds a status
answer, which is also what a webhook sends.
"""

from __future__ import annotations

from .actors import StatusAnswer
from .metrics import JobMetrics
from .progress import job_times, poll_after, progress_of
from .redis_server import EmbeddedRedis, find_redis_server
from .service import JobService
from .settings import JobSettings
from .store import Job, JobStore

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
