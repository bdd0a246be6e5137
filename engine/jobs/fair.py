"""Fair scheduling: which job gets the next free render thread of a process.

The render queue is one Dramatiq queue in arrival order. Without a rule, a long job split
into chunks (chunks.py) puts all its chunk messages ahead of anything submitted later, and
one API key's backlog ahead of another key's first job: a 1 s job could wait for ten
minutes. So every render-queue message (a job's render, a chunk) passes
:meth:`FairShares.enter` before it runs, with what Redis says of its job:

* a process runs at most ``slots`` renders (its render threads) plus :data:`SPARE`
  more; its Dramatiq worker has that many threads;
* a free slot goes to the message that comes first, except that an API key holding half
  the slots or more (rounded up) yields while another key's jobs wait, and a job yields
  to a job of its own key that waits holding no thread if it holds one already or
  arrived later (so a key's jobs start in their order, however often re-sent);
* the spare thread goes only to a *short* job (at most :data:`SHORT_WORK` pixels in all
  its frames: 10 s of 1080p) holding no thread here, whose key holds none here while
  other keys' jobs wait. A short job submitted while long ones hold every slot so starts
  at once, and a backlog of long jobs cannot take the spare;
* a message refused is sent again :data:`YIELD_DELAY_MS` later, to the back of the
  queue (its job stays ``queued``, or its chunk unstarted): nothing is claimed, nothing
  rendered is lost.

No render is ever paused or cut: the long job loses at most the CPU the short jobs use
while they share the cores with it. The rule is each process's own (the CPU it governs
is); the waiting jobs it weighs are Redis's (the ``queued`` sets) and the messages it
refused lately.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from .job import text
from .keys import Keys
from .states import JobState

__all__ = ["FairShares", "Running", "Ticket", "admit", "SPARE", "SHORT_WORK",
           "YIELD_DELAY_MS"]

#: Render threads a process runs beyond its slots, kept for short jobs.
SPARE = 1
#: A job at most this many pixels in all (frames x width x height) is short: 10 s of 1080p.
SHORT_WORK = 300 * 1920 * 1080
#: A message that must yield is sent again this much later.
YIELD_DELAY_MS = 500
#: A job whose message was refused this recently still counts as waiting.
_WAITING_S = 2.0


@dataclass(frozen=True, eq=False)
class Running:
    """A render or chunk holding a thread of this process."""

    job_id: str
    owner: str


@dataclass(frozen=True)
class Ticket:
    """What :meth:`FairShares.enter` gave: a thread held (``running``) or not needed."""

    running: Running | None


def admit(job_id: str, owner: str, short: bool, running: Sequence[Running], slots: int, *,
          others_wait: bool, waiting: Sequence[tuple[str, str, float]] = (),
          arrived: float = 0.0, spare: int = SPARE) -> bool:
    """The rule (see the module's docs): may this job's message take a thread now?

    Args:
        job_id: the message's job.
        owner: its API key's hash ("" = no key: the key rules do not apply).
        short: whether the job is short (a whole job of at most :data:`SHORT_WORK`).
        running: the renders and chunks holding threads of this process.
        slots: the process's render threads.
        others_wait: whether jobs of other keys wait.
        waiting: (job, owner, arrived) of other messages refused lately.
        arrived: when the job was queued (a render) or split (a chunk).
        spare: threads beyond ``slots`` kept for short jobs.
    """
    holds = {r.job_id for r in running}
    held_by_key = sum(1 for r in running if r.owner == owner) if owner else 0
    key_waits = bool(owner) and others_wait
    if len(running) < slots:
        if key_waits and held_by_key >= math.ceil(slots / 2):
            return False
        # a job of the key that waits holding none goes first if this one holds a
        # thread already or arrived later: FIFO within a key, whatever the re-sends
        return not any(o == owner and j not in holds and (job_id in holds or a < arrived)
                       for j, o, a in waiting if j != job_id)
    if len(running) >= slots + spare:
        return False
    return short and job_id not in holds and not (key_waits and held_by_key > 0)


class FairShares:
    """One process's render threads, shared fairly (see the module's docs).

    Args:
        client: the workers' Redis client.
        keys: the job store's keys.
        slots: render threads (set by ``JobService.start_workers``).
    """

    def __init__(self, client: redis.Redis, keys: Keys, slots: int = 0) -> None:
        self.client = client
        self.keys = keys
        self.slots = slots
        self._lock = threading.Lock()
        self._running: list[Running] = []
        self._refused: dict[str, tuple[str, float, float]] = {}  # job: owner, arrived, when

    def enter(self, job_id: str, chunk: bool) -> Ticket | None:
        """A thread for the message of ``job_id`` (a chunk's if ``chunk``), or None
        when it must yield. A message whose job is not waiting to render (finished, or
        a render message of a running job) needs none: its ticket holds nothing."""
        k = self.keys
        try:
            owner_raw, status, frames, request, run_started = self.client.hmget(
                k.job(job_id), ["owner", "status", "frames_total", "request",
                                "run_started_at"])
            owner = text(owner_raw or "")
            if text(status or "") != (JobState.RUNNING if chunk else JobState.QUEUED):
                return Ticket(None)
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(k.queued)
            pipe.zcard(k.queued_by(owner))
            pipe.zscore(k.queued, job_id)
            queued, mine, score = pipe.execute()
        except redis.RedisError:
            return Ticket(None)  # the actor meets Redis's trouble its own way
        short = not chunk and _work(frames, request) <= SHORT_WORK
        arrived = float(text(run_started or "0")) if chunk else float(score or 0)
        others_queued = int(queued) - (int(mine) if owner else 0) > 0
        now = time.monotonic()
        with self._lock:
            self._refused = {j: (o, a, t) for j, (o, a, t) in self._refused.items()
                             if now - t < _WAITING_S and j != job_id}
            waiting = [(j, o, a) for j, (o, a, _) in self._refused.items()]
            others_wait = others_queued or any(o != owner for _, o, _ in waiting)
            if not admit(job_id, owner, short, self._running, self.slots,
                         others_wait=others_wait, waiting=waiting, arrived=arrived):
                self._refused[job_id] = (owner, arrived, now)
                return None
            held = Running(job_id, owner)
            self._running.append(held)
        return Ticket(held)

    def leave(self, ticket: Ticket) -> None:
        """Give back the thread ``ticket`` holds."""
        if ticket.running is not None:
            with self._lock:
                self._running.remove(ticket.running)

    def holding(self) -> list[Running]:
        """The renders and chunks holding threads now (a copy)."""
        with self._lock:
            return list(self._running)


#: Pixels a frame of a job that gives no size: the default output is 1920x1080 or
#: 1080x1920, chosen from the image (an ``orientation`` of ``square`` is smaller).
DEFAULT_FRAME_PIXELS = 1920 * 1080


def _work(frames: bytes | str | None, request: bytes | str | None) -> float:
    """A job's pixels in all (frames x width x height); infinite when unknown. A job that
    gives no size (the documented default, reels too) counts as 1080p."""
    try:
        fields = json.loads(request or "")
        if "width" in fields and "height" in fields:
            pixels = int(fields["width"]) * int(fields["height"])
        else:
            pixels = DEFAULT_FRAME_PIXELS
        return int(text(frames or "")) * pixels
    except (ValueError, KeyError, TypeError, AttributeError):
        return math.inf
