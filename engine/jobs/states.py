"""The states of a job and of its webhook, defined once (the Lua scripts get them from
here too: see scripts.py)."""

from __future__ import annotations

__all__ = ["QUEUED", "RUNNING", "DONE", "ERROR", "FINISHED",
           "HOOK_PENDING", "HOOK_DELIVERED", "HOOK_FAILED"]

#: Waiting for a worker (new, retried, or taken up after its worker died).
QUEUED = "queued"
#: Leased by a worker that renders it.
RUNNING = "running"
#: The video is complete. Final.
DONE = "done"
#: The job failed; its record says why. Final.
ERROR = "error"
#: The states a job never leaves.
FINISHED = (DONE, ERROR)

#: A finished job's webhook is still to be delivered (or retried).
HOOK_PENDING = "pending"
#: The receiver answered 2xx. Final.
HOOK_DELIVERED = "delivered"
#: Retries ran out, or the receiver refused for good. Final.
HOOK_FAILED = "failed"
