"""The job system: Redis job records, Dramatiq actors, the embedded Redis server.

Build a :class:`JobService` on a Redis client (it configures the Dramatiq broker and
declares the actors, in that order), call :meth:`JobService.recover` and
:meth:`JobService.start_workers`, then :meth:`JobService.submit` jobs.
"""

from __future__ import annotations

from engine.jobs.answers import DONE_MESSAGE, envelope, status_envelope
from engine.jobs.redis_server import EmbeddedRedis, find_redis_server
from engine.jobs.service import SUBMIT_DEFAULTS, JobService
from engine.jobs.settings import JobSettings
from engine.jobs.store import Job, JobStore

__all__ = [
    "DONE_MESSAGE",
    "EmbeddedRedis",
    "Job",
    "JobService",
    "JobSettings",
    "JobStore",
    "SUBMIT_DEFAULTS",
    "envelope",
    "find_redis_server",
    "status_envelope",
]
