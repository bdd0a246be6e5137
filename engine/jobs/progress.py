"""What a job's record says about its progress: times, frames, ETA, when to poll.

The REST front end builds its answers (and the webhook body) from these.
"""

from __future__ import annotations

import time
from typing import Any

from .job import Job
from .states import JobState

__all__ = ["job_times", "progress_of", "poll_after"]


def job_times(job: Job, now: float | None = None) -> tuple[float, float, float]:
    """(queue_time, run_time, total_time) of a job, up to ``now`` while it is unfinished."""
    now = time.time() if now is None else now
    end = job.finished_at or now
    started = job.started_at
    if started is None:
        queue_time = end - job.created_at
        return queue_time, 0.0, queue_time
    queue_time = max(0.0, started - job.created_at)
    run_time = max(0.0, end - started)
    return queue_time, run_time, queue_time + run_time


def _eta(job: Job, now: float) -> float | None:
    if job.status != JobState.RUNNING or not job.run_started_at or job.frames_done <= 0:
        return None
    elapsed = now - job.run_started_at
    if elapsed <= 0:
        return None
    return max(0.0, (job.frames_total - job.frames_done) * elapsed / job.frames_done)


def progress_of(job: Job, now: float | None = None) -> dict[str, Any]:
    """Frames done and total, percent, and the estimated seconds left (None if unknown)."""
    now = time.time() if now is None else now
    total = job.frames_total
    done = total if job.status == JobState.DONE else min(job.frames_done, total)
    eta = 0.0 if job.status == JobState.DONE else _eta(job, now)
    return {
        "frames_done": done,
        "frames_total": total,
        "percent": round(100.0 * done / total, 1) if total else 0.0,
        "eta_seconds": None if eta is None else round(eta, 1),
    }


def poll_after(job: Job, now: float | None = None) -> int | None:
    """Seconds until a poll is worth it (Retry-After), None once the job has finished.

    Follows the documented polling advice: jobs with under 30 s left every 2-3 s,
    up to 2 minutes every 5-10 s, longer ones every 15-30 s.
    """
    if job.status not in (JobState.QUEUED, JobState.RUNNING):
        return None
    now = time.time() if now is None else now
    left = _eta(job, now)
    if left is None:  # not started or no frame yet: guess ~30 frames/s of work
        left = job.frames_total / 30.0
    if left < 30:
        return 2
    if left < 120:
        return 5
    return 15
