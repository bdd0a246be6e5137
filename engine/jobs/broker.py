"""The Dramatiq broker, configured in this one place, and recovery of lost messages.

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

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries

from .store import _s

__all__ = [
    "NAMESPACE",
    "RENDER_QUEUE",
    "WEBHOOK_QUEUE",
    "EXTERNAL_HEARTBEAT_TIMEOUT_MS",
    "create_broker",
    "recover_unacked",
    "queued_job_ids",
]

log = logging.getLogger(__name__)

NAMESPACE = "dramatiq"
RENDER_QUEUE = "render"
WEBHOOK_QUEUE = "webhooks"
EXTERNAL_HEARTBEAT_TIMEOUT_MS = 15_000


def create_broker(client: redis.Redis, *, embedded: bool) -> RedisBroker:
    """Build the Redis broker; actors are declared on it, never on a global broker.

    No TimeLimit middleware: renders may run for as long as they need. Retries only
    backs up the actors' own retry logic (e.g. when Redis itself blips mid-message).

    Args:
        client: the Redis client the broker uses.
        embedded: whether this process owns the Redis server (see module docs).
    """
    return RedisBroker(
        client=client,
        namespace=NAMESPACE,
        middleware=[Retries(max_retries=5, min_backoff=1000, max_backoff=60_000)],
        heartbeat_timeout=60_000 if embedded else EXTERNAL_HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=1000 if embedded else 20_000,
    )


def recover_unacked(client: redis.Redis, *, dead_after_ms: int | None = None) -> int:
    """Put messages that dead workers fetched but never acknowledged back on their queues.

    Args:
        client: the broker's Redis client.
        dead_after_ms: only workers silent for longer than this; None = every worker
            (safe only when no other worker can be alive: the embedded server at start).

    Returns:
        How many messages went back.
    """
    heartbeats = f"{NAMESPACE}:__heartbeats__"
    now_ms = int(time.time() * 1000)
    if dead_after_ms is None:
        dead = None
    else:
        dead = {_s(w) for w in client.zrangebyscore(heartbeats, 0, now_ms - dead_after_ms)}
    prefix = f"{NAMESPACE}:__acks__."
    moved = 0
    for raw_key in client.scan_iter(match=prefix + "*", count=500):
        key = _s(raw_key)
        rest = key[len(prefix):]
        worker_id, _, queue = rest.partition(".")
        if not queue or (dead is not None and worker_id not in dead):
            continue
        queue_key = f"{NAMESPACE}:{queue}"
        for raw_id in client.smembers(key):
            if client.hexists(queue_key + ".msgs", raw_id):
                client.rpush(queue_key, raw_id)
                moved += 1
        client.delete(key)
        client.zrem(heartbeats, worker_id)
    if moved:
        log.info("recovered %d unacknowledged message(s)", moved)
    return moved


def queued_job_ids(client: redis.Redis, queue: str) -> set[str]:
    """Job ids that some message of ``queue`` (or its delay queue) carries, acked or not."""
    ids: set[str] = set()
    for name in (queue, queue + ".DQ"):
        for raw in client.hvals(f"{NAMESPACE}:{name}.msgs"):
            try:
                args = json.loads(raw)["args"]
            except (ValueError, KeyError, TypeError):
                continue
            if args:
                ids.add(str(args[0]))
    return ids

