"""Every Redis key the job system reads or writes, one function each.

The job store's keys live under a prefix (``zoomreel`` by default); Dramatiq's under its
namespace (``dramatiq``). Nothing else builds a key name: the Lua scripts get theirs as
KEYS (or, for the owner's queue, which a script finds from the job's record, as a prefix
passed in ARGV, built by :meth:`Keys.queued_by` here too).

| key | type | what |
|---|---|---|
| ``<p>:job:<id>`` | hash | the job's record (see :class:`zoomreel.jobs.Job`) |
| ``<p>:lease:<id>`` | string, expires | the render's lease: the token of its holder |
| ``<p>:chunks:<id>`` | hash | a chunked job's chunks (see chunks.py) |
| ``<p>:lease:<id>:<n>`` | string, expires | chunk n's lease: the token of its holder |
| ``<p>:queued`` | sorted set | queued jobs, by the time they were (re)queued |
| ``<p>:queued:<owner>`` | sorted set | the same, for one API key (per-key limit) |
| ``<p>:active`` | set | queued or running jobs |
| ``<p>:finished`` | sorted set | done or failed jobs, by finish time (retention) |
| ``<p>:updated`` | sorted set | every job, by the time its state last changed |
| ``<p>:webhooks:pending`` | set | finished jobs whose webhook is still to deliver |
| ``<p>:queue_id`` | counter | the last queue id given |
| ``<p>:hooklock:<id>`` | string, expires | the right to deliver the job's webhook now |
| ``<p>:resent:<kind>:<id>`` | string, expires | a lost message was re-sent lately |
| ``<p>:idempotency:<owner>:<key>`` | hash, expires | an Idempotency-Key's job and fingerprint |
| ``<p>:finishes`` | pub/sub channel | a job's id, published when it finishes |
| ``dramatiq:<queue>[.DQ][.msgs]`` | list, hash | Dramatiq's queues and messages |
| ``dramatiq:__acks__.<worker>.<queue>`` | set | messages a worker fetched, not acked |
| ``dramatiq:__heartbeats__`` | sorted set | Dramatiq workers, by last heartbeat |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "DRAMATIQ_NAMESPACE", "acks_pattern", "acks_prefix", "delay_queue",
           "heartbeats", "messages", "queue_list"]

#: Dramatiq's key namespace, set on the broker (broker.py).
DRAMATIQ_NAMESPACE = "dramatiq"


@dataclass(frozen=True)
class Keys:
    """The job store's keys under ``prefix``."""

    prefix: str = "zoomreel"

    def job(self, job_id: str) -> str:
        """The job's record (a hash)."""
        return f"{self.prefix}:job:{job_id}"

    def lease(self, job_id: str) -> str:
        """The job's render lease (expires unless renewed)."""
        return f"{self.prefix}:lease:{job_id}"

    def chunks(self, job_id: str) -> str:
        """A chunked job's chunks: their count and first frames, and each one's state."""
        return f"{self.prefix}:chunks:{job_id}"

    def chunk_lease(self, job_id: str, index: int) -> str:
        """The lease of the job's chunk ``index`` (matched by :meth:`lease_pattern`)."""
        return f"{self.prefix}:lease:{job_id}:{index}"

    def lease_pattern(self) -> str:
        """SCAN pattern of every lease."""
        return self.lease("*")

    @property
    def queued(self) -> str:
        """Queued jobs (its ZCARD is the queue's length)."""
        return f"{self.prefix}:queued"

    def queued_by(self, owner: str) -> str:
        """One owner's (API key's) queued jobs; ``queued_by("")`` is the prefix the Lua
        scripts append an owner to."""
        return f"{self.prefix}:queued:{owner}"

    @property
    def active(self) -> str:
        """Jobs queued or running."""
        return f"{self.prefix}:active"

    @property
    def finished(self) -> str:
        """Finished jobs by finish time."""
        return f"{self.prefix}:finished"

    @property
    def updated(self) -> str:
        """Every job, by the time its state last changed."""
        return f"{self.prefix}:updated"

    @property
    def webhooks_pending(self) -> str:
        """Finished jobs whose webhook is still to be delivered."""
        return f"{self.prefix}:webhooks:pending"

    @property
    def queue_id(self) -> str:
        """The counter that numbers jobs in submission order."""
        return f"{self.prefix}:queue_id"

    @property
    def finishes(self) -> str:
        """The channel a finished job's id is published on (finishes.py listens)."""
        return f"{self.prefix}:finishes"

    def idempotency(self, owner: str, key: str) -> str:
        """What one owner's ``Idempotency-Key`` made: the job's id and the fingerprint of
        the request that made it (idempotency.py)."""
        return f"{self.prefix}:idempotency:{owner}:{key}"

    def hook_lock(self, job_id: str) -> str:
        """Held while one process delivers the job's webhook."""
        return f"{self.prefix}:hooklock:{job_id}"

    def resent(self, kind: str, job_id: str) -> str:
        """Set when a lost ``kind`` (render, webhooks) message of the job was re-sent."""
        return f"{self.prefix}:resent:{kind}:{job_id}"


def messages(queue: str) -> str:
    """Dramatiq's hash of a queue's messages (id -> encoded message)."""
    return f"{DRAMATIQ_NAMESPACE}:{queue}.msgs"


def delay_queue(queue: str) -> str:
    """The name of a queue's delay queue (messages sent with a delay wait there)."""
    return f"{queue}.DQ"


def queue_list(queue: str) -> str:
    """Dramatiq's list of a queue's message ids ready to be fetched."""
    return f"{DRAMATIQ_NAMESPACE}:{queue}"


def heartbeats() -> str:
    """Dramatiq's workers, scored by their last heartbeat (ms)."""
    return f"{DRAMATIQ_NAMESPACE}:__heartbeats__"


def acks_prefix() -> str:
    """Prefix of the sets of messages a worker fetched and has not acknowledged:
    ``<prefix><worker id>.<queue>``."""
    return f"{DRAMATIQ_NAMESPACE}:__acks__."


def acks_pattern() -> str:
    """SCAN pattern of every worker's unacknowledged set."""
    return acks_prefix() + "*"
