"""The Dramatiq broker, configured in this one place; the two actors declared on it; and
recovery of lost messages.

Messages carry a job id only. Redis keeps a worker's fetched-but-unacknowledged
messages in ``dramatiq:__acks__.<worker>.<queue>``; when a worker dies those would
wait for Dramatiq's heartbeat timeout plus a chance maintenance pass. Instead:

* embedded Redis (``serve`` owns the queue): every unacked message found at start-up
  belongs to a dead process and goes straight back to its queue;
* external Redis (shared by many workers): at start-up, messages of workers whose
  heartbeat is older than ``heartbeat_timeout`` go back, and the broker runs with a
  short heartbeat timeout (15 s) and frequent maintenance so that others recover too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware, Retries

from . import keys
from .fair import YIELD_DELAY_MS, FairShares
from .job import text

__all__ = [
    "NAMESPACE",
    "RENDER_QUEUE",
    "WEBHOOK_QUEUE",
    "EXTERNAL_HEARTBEAT_TIMEOUT_MS",
    "Messages",
    "create_broker",
    "recover_unacked",
    "queued_chunks",
    "queued_job_ids",
    "carried_job_ids",
    "OVERDUE_MS",
]

log = logging.getLogger(__name__)

NAMESPACE = keys.DRAMATIQ_NAMESPACE
RENDER_QUEUE = "render"
WEBHOOK_QUEUE = "webhooks"
EXTERNAL_HEARTBEAT_TIMEOUT_MS = 15_000
#: A delayed message still in its delay queue this long after its time has nobody to
#: move it (a consumer thread that died, or its messages lost with it): see
#: :func:`carried_job_ids`.
OVERDUE_MS = 30_000


def create_broker(client: redis.Redis, *, embedded: bool,
                  middleware: Iterable[Middleware] = ()) -> RedisBroker:
    """Build the Redis broker; actors are declared on it, never on a global broker.

    No TimeLimit middleware: renders may run for as long as they need. Retries only
    backs up the actors' own retry logic (e.g. when Redis itself blips mid-message).

    Args:
        client: the Redis client the broker uses.
        embedded: whether this process owns the Redis server (see module docs).
        middleware: more middleware, e.g. the entry point's thread policy for renders.
    """
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        namespace=NAMESPACE,
        middleware=[Retries(max_retries=5, min_backoff=1000, max_backoff=60_000),
                    *middleware],
        heartbeat_timeout=60_000 if embedded else EXTERNAL_HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=1000 if embedded else 20_000,
    )


class Messages:
    """The render and webhook actors on one broker, and sending their messages.

    Args:
        broker: the broker the actors are declared on.
        fair: who gets the next free render thread (fair.py); None = the queue's order.
    """

    def __init__(self, broker: dramatiq.Broker, fair: FairShares | None = None) -> None:
        self.broker = broker
        self.fair = fair
        self.render_actor: dramatiq.Actor[Any, Any] | None = None
        self.webhook_actor: dramatiq.Actor[Any, Any] | None = None
        self.chunk_actor: dramatiq.Actor[Any, Any] | None = None

    def declare(self, render: Callable[[str], None], webhook: Callable[[str], None]) -> None:
        """Declare ``zoomreel.render`` and ``zoomreel.webhook``, each taking a job id."""
        self.render_actor = dramatiq.Actor(
            self._fairly(render, chunk=False), broker=self.broker,
            actor_name="zoomreel.render", queue_name=RENDER_QUEUE, priority=0,
            options={"max_retries": 5})
        self.webhook_actor = dramatiq.Actor(
            webhook, broker=self.broker, actor_name="zoomreel.webhook",
            queue_name=WEBHOOK_QUEUE, priority=0, options={"max_retries": 5})

    def declare_chunk(self, chunk: Callable[[str, int], None]) -> None:
        """Declare ``zoomreel.chunk``, taking a job id and a chunk's number; on the
        render queue, so that render threads take chunks as they take jobs."""
        self.chunk_actor = dramatiq.Actor(
            self._fairly(chunk, chunk=True), broker=self.broker,
            actor_name="zoomreel.chunk", queue_name=RENDER_QUEUE, priority=0,
            options={"max_retries": 5})

    def _fairly(self, body: Callable[..., None], *, chunk: bool) -> Callable[..., None]:
        """``body`` (an actor's, on the render queue) run only when the fair shares
        (fair.py) give its message a thread; otherwise the message goes to the back of
        the queue, :data:`~zoomreel.jobs.fair.YIELD_DELAY_MS` later."""
        fair = self.fair
        if fair is None:
            return body
        resend: Callable[..., None] = self.send_chunk if chunk else self.send_render

        def fairly(job_id: str, *rest: Any) -> None:
            ticket = fair.enter(job_id, chunk)
            if ticket is None:
                try:
                    resend(job_id, *rest, delay_ms=YIELD_DELAY_MS)
                except redis.RedisError as exc:  # the healing pass re-sends lost messages
                    log.warning("a render message that yielded was lost (%s)", exc,
                                extra={"job_id": job_id})
                return
            try:
                body(job_id, *rest)
            finally:
                fair.leave(ticket)

        fairly.__name__ = fairly.__qualname__ = getattr(body, "__name__", "render")
        return fairly

    def send_chunk(self, job_id: str, index: int, delay_ms: int = 0) -> None:
        """Send a message to render chunk ``index`` of ``job_id`` (after ``delay_ms``)."""
        if self.chunk_actor is None:
            raise RuntimeError("Messages.declare_chunk() first")
        self.chunk_actor.send_with_options(args=(job_id, index), delay=delay_ms or None)

    def send_render(self, job_id: str, delay_ms: int = 0) -> None:
        """Send a render message for ``job_id`` (after ``delay_ms``)."""
        _send(self.render_actor, job_id, delay_ms)

    def send_webhook(self, job_id: str, delay_ms: int = 0) -> None:
        """Send a webhook message for ``job_id`` (after ``delay_ms``)."""
        _send(self.webhook_actor, job_id, delay_ms)


def _send(actor: dramatiq.Actor[Any, Any] | None, job_id: str, delay_ms: int) -> None:
    if actor is None:
        raise RuntimeError("Messages.declare() first")
    actor.send_with_options(args=(job_id,), delay=delay_ms or None)


def recover_unacked(client: redis.Redis, *, dead_after_ms: int | None = None) -> int:
    """Put messages that dead workers fetched but never acknowledged back on their queues.

    Args:
        client: the broker's Redis client.
        dead_after_ms: only workers silent for longer than this; None = every worker
            (safe only when no other worker can be alive: the embedded server at start).

    Returns:
        How many messages went back.
    """
    heartbeats = keys.heartbeats()
    now_ms = int(time.time() * 1000)
    if dead_after_ms is None:
        dead = None
    else:
        dead = {text(w) for w in client.zrangebyscore(heartbeats, 0, now_ms - dead_after_ms)}
    prefix = keys.acks_prefix()
    moved = 0
    for raw_key in client.scan_iter(match=keys.acks_pattern(), count=500):
        key = text(raw_key)
        worker_id, _, queue = key[len(prefix):].partition(".")
        if not queue or (dead is not None and worker_id not in dead):
            continue
        for raw_id in client.smembers(key):
            if client.hexists(keys.messages(queue), raw_id):
                client.rpush(keys.queue_list(queue), raw_id)
                moved += 1
        client.delete(key)
        client.zrem(heartbeats, worker_id)
    if moved:
        log.info("recovered %d unacknowledged message(s)", moved)
    return moved


def queued_chunks(client: redis.Redis, queue: str = RENDER_QUEUE) -> set[tuple[str, int]]:
    """(job id, chunk) that some chunk message of ``queue`` (or its delay queue) carries."""
    found: set[tuple[str, int]] = set()
    for name in (queue, keys.delay_queue(queue)):
        for raw in client.hvals(keys.messages(name)):
            try:
                args = json.loads(raw)["args"]
                if len(args) == 2:
                    found.add((str(args[0]), int(args[1])))
            except (ValueError, KeyError, TypeError):
                continue
    return found


def queued_job_ids(client: redis.Redis, queue: str) -> set[str]:
    """Job ids that some message of ``queue`` (or its delay queue) carries, acked or not."""
    ids: set[str] = set()
    for name in (queue, keys.delay_queue(queue)):
        for raw in client.hvals(keys.messages(name)):
            job_id, _ = _job_and_eta(raw)
            if job_id:
                ids.add(job_id)
    return ids


def carried_job_ids(client: redis.Redis, queue: str, stalled: Collection[str],
                    now_ms: int | None = None) -> set[str]:
    """Job ids that a live message of ``queue`` carries, whatever the broker's threads
    believe: one that waits in the queue, one in the delay queue whose time has not
    passed by :data:`OVERDUE_MS`, or one that a worker fetched (in its acknowledgement
    set) for a job not in ``stalled``.

    A worker fetches only what a thread is about to run, so a job that stayed queued
    for long (``stalled``) while a worker held its message was lost with the consumer
    thread that fetched it; a message whose time passed long ago was not moved because
    its delay queue's consumer died (consumers.py).

    Args:
        client: the broker's Redis client.
        queue: the queue (its delay queue is looked at too).
        stalled: ids of jobs unchanged for long; their fetched messages do not count.
        now_ms: the time, in ms since the epoch (default: now).
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ids: set[str] = set()
    for raw in client.hvals(keys.messages(keys.delay_queue(queue))):
        job_id, eta = _job_and_eta(raw)
        if job_id and (eta is None or eta > now_ms - OVERDUE_MS):
            ids.add(job_id)
    doubtful: dict[object, str] = {}
    for message_id, raw in client.hgetall(keys.messages(queue)).items():
        job_id, _ = _job_and_eta(raw)
        if job_id and job_id in stalled:
            doubtful[message_id] = job_id
        elif job_id:
            ids.add(job_id)
    if doubtful:
        waiting = set(client.lrange(keys.queue_list(queue), 0, -1))
        ids.update(job_id for message_id, job_id in doubtful.items() if message_id in waiting)
    return ids


def _job_and_eta(raw: bytes | str) -> tuple[str | None, int | None]:
    """A message's job id (its first argument) and its ``eta`` option (ms), if any."""
    try:
        message = json.loads(raw)
        args, eta = message["args"], message.get("options", {}).get("eta")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None
    return (str(args[0]) if args else None), (int(eta) if isinstance(eta, int | float) else None)
