"""The states of a job and of its webhook, defined once (the Lua scripts get them from
here too: see scripts.py).

Their values are what Redis stores and what clients read in ``job_status`` and
``webhook.state``: they never change.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobState", "FINISHED", "WebhookState"]


class JobState(StrEnum):
    """Where a job is."""

    #: Waiting for a worker (new, retried, or taken up after its worker died).
    QUEUED = "queued"
    #: Leased by a worker that renders it.
    RUNNING = "running"
    #: The video is complete. Final.
    DONE = "done"
    #: The job failed; its record says why. Final.
    ERROR = "error"


#: The states a job never leaves.
FINISHED = (JobState.DONE, JobState.ERROR)


class WebhookState(StrEnum):
    """Where a finished job's webhook delivery is."""

    #: Still to be delivered (or retried).
    PENDING = "pending"
    #: The receiver answered 2xx. Final.
    DELIVERED = "delivered"
    #: Retries ran out, or the receiver refused for good. Final.
    FAILED = "failed"
