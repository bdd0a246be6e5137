"""The documented JSON answers, built from job records.

The REST front end answers with these and the webhook actor posts them, so a webhook
receiver gets exactly what the status route would have said.
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.jobs.store import Job

__all__ = [
    "DONE_MESSAGE",
    "envelope",
    "job_times",
    "progress_of",
    "status_response",
    "status_envelope",
    "poll_after",
    "download_url",
]

DONE_MESSAGE = "Video conversion completed successfully"


def envelope(code: int, *, message: str, build_number: str, id: Any = None,
             job_id: str | None = None, response: Any = None, run_time: float = 0.0,
             queue_time: float = 0.0, total_time: float | None = None, pid: int | None = None,
             queue_id: int | None = None, queue_length: int = 0) -> dict[str, Any]:
    """The envelope every /v1 JSON answer shares (times in seconds, 3 decimals)."""
    if total_time is None:
        total_time = run_time + queue_time
    return {
        "code": code,
        "id": id,
        "job_id": job_id,
        "response": response,
        "message": message,
        "run_time": round(run_time, 3),
        "queue_time": round(queue_time, 3),
        "total_time": round(total_time, 3),
        "pid": os.getpid() if pid is None else pid,
        "queue_id": queue_id,
        "queue_length": queue_length,
        "build_number": build_number,
    }


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
    if job.status != "running" or not job.run_started_at or job.frames_done <= 0:
        return None
    elapsed = now - job.run_started_at
    if elapsed <= 0:
        return None
    return max(0.0, (job.frames_total - job.frames_done) * elapsed / job.frames_done)


def progress_of(job: Job, now: float | None = None) -> dict[str, Any]:
    """Frames done and total, percent, and the estimated seconds left (None if unknown)."""
    now = time.time() if now is None else now
    total = job.frames_total
    done = total if job.status == "done" else min(job.frames_done, total)
    eta = 0.0 if job.status == "done" else _eta(job, now)
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
    if job.status not in ("queued", "running"):
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


def download_url(job: Job, base_url: str | None) -> str:
    """Absolute URL of a job's video under ``base_url`` (or the one stored at submit)."""
    base = (base_url or job.base_url or "").rstrip("/")
    return f"{base}/v1/storage/download/{job.filename}"


def status_response(job: Job, *, base_url: str | None = None,
                    now: float | None = None) -> dict[str, Any]:
    """The status answer's ``response`` object for one job."""
    inner: Any = None
    if job.status == "done" and job.result is not None:
        inner = {
            "download_url": download_url(job, base_url),
            "filename": job.filename,
            "message": DONE_MESSAGE,
            **job.result,
        }
    answer: dict[str, Any] = {
        "job_status": job.status,
        "job_id": job.id,
        "queue_id": job.queue_id,
        "process_id": job.pid,
        "response": inner,
        "progress": progress_of(job, now),
    }
    if job.status == "error":
        answer["error"] = job.error or "The job failed"
    if job.webhook is not None:
        answer["webhook"] = {
            "state": job.webhook["state"],
            "attempts": job.webhook["attempts"],
            "last_error": job.webhook["last_error"],
        }
    return answer


def status_envelope(job: Job, *, queue_length: int, build_number: str,
                    base_url: str | None = None) -> dict[str, Any]:
    """The whole 200 status answer for one job (also the webhook's body)."""
    now = time.time()
    queue_time, run_time, total_time = job_times(job, now)
    return envelope(
        200, message="success", build_number=build_number, id=job.client_id, job_id=job.id,
        response=status_response(job, base_url=base_url, now=now), run_time=run_time,
        queue_time=queue_time, total_time=total_time,
        pid=job.pid if job.pid is not None else os.getpid(), queue_id=job.queue_id,
        queue_length=queue_length,
    )
