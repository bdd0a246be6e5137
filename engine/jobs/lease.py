"""What happens when a worker dies: the render's lease, and taking a job up again.

A worker that claims a job (scripts.CLAIM) holds a lease on it: a Redis key that
expires ``lease_s`` after its last renewal. While it renders, :class:`Lease` renews it
from a side thread, and every progress write renews it too (scripts.RENEW).

A worker that dies (killed, crashed, its machine gone, or cut off from Redis for longer
than the lease) stops renewing, and its job is left ``running`` without a lease: it has
*lapsed*. Whoever notices first takes it up (:func:`take_up`, atomic in scripts.TAKE_UP,
so of all the processes that notice, exactly one does): the job goes back to the queue
with its ``lost_runs`` counted, and a new render message is sent. It is noticed

* by a render message for it (a redelivery of the dead worker's message), whose claim
  answers scripts.LAPSED;
* by the healing pass every few seconds in every worker process (maintenance.py), which
  looks for running jobs without a lease (JobStore.lapsed_ids);
* at start-up (maintenance.recover); an embedded serve first drops every lease, since no
  worker of its earlier run can be alive.

A job whose renders stopped this way ``max_lost_runs`` times ends ``error``: a render
that kills its process (an image that exhausts memory, say) would do so forever.

A renewal that fails (Redis stalled) is tried again next round; a lease that lapsed
meanwhile is taken again by the renewal if nobody took the job up (scripts.RENEW), so a
render survives a Redis stall shorter than the healing pass's notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from ._redis_retry import retry_redis
from .store import JobStore

__all__ = ["Lease", "take_up", "LOST_RUN"]

log = logging.getLogger(__name__)

#: The job's last_error when it is taken up after its worker vanished.
LOST_RUN = "its worker stopped before finishing the render"


class Lease:
    """Keeps a job's lease alive from a side thread; notices when it was lost.

    Args:
        store: the job store.
        job_id: the leased job.
        token: the claim's token (the lease's value).
        lease_ms: the lease's lifetime; it is renewed five times per lifetime.
        renew: renews the lease, False once it is not the caller's; default the job's
            (``store.renew``). A chunk's lease passes its own (chunks.py).
        name: the renewing thread's name; default ``lease-<job_id>``.
    """

    def __init__(self, store: JobStore, job_id: str, token: str, lease_ms: int, *,
                 renew: Callable[[], bool] | None = None, name: str | None = None) -> None:
        self.store, self.job_id, self.token, self.lease_ms = store, job_id, token, lease_ms
        self._renew = renew or (lambda: self.store.renew(job_id, token, lease_ms))
        #: Set once the job is no longer this lease's (someone took it up).
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"lease-{job_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.lease_ms / 5000):
            try:
                if not self._renew():
                    self.lost.set()
                    return
            except redis.RedisError as exc:
                log.warning("could not renew the lease: %s", exc, extra={"job_id": self.job_id})

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # A renewal blocked on a stalled Redis must not hold the render thread; once it
        # returns it finds the job finished or given back and stops.
        self._thread.join(timeout=1.0)


def take_up(store: JobStore, job_id: str, *, max_lost_runs: int,
            resend: Callable[[str], None], give_up: Callable[[str, str], None],
            shutdown: threading.Event) -> bool:
    """Requeue a lapsed job and re-send its render, unless some other process already
    did; after ``max_lost_runs`` lost runs, end it instead.

    Args:
        store: the job store.
        job_id: the job, ``running`` without a lease.
        max_lost_runs: lost runs after which the job ends ``error``.
        resend: sends the job's render message.
        give_up: ends the job ``error`` with a message (``give_up(job_id, message)``).
        shutdown: set when the process stops (Redis steps are then tried once).

    Returns:
        Whether this call took the job up.
    """
    lost = retry_redis(lambda: store.take_up(job_id, LOST_RUN), "take-up", job_id, shutdown)
    if lost < 0:
        return False
    if lost >= max_lost_runs:
        log.error("the render stopped without finishing %d times; giving up", lost,
                  extra={"job_id": job_id})
        give_up(job_id, f"The render stopped without finishing {lost} times (the worker "
                        "process rendering it died each time); not retried")
    else:
        log.warning("its worker stopped before finishing; queued again (%d/%d)", lost,
                    max_lost_runs, extra={"job_id": job_id})
        retry_redis(lambda: resend(job_id), "re-send", job_id, shutdown)
    return True
