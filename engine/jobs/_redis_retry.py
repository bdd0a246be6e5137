"""Bookkeeping steps of a worker that wait out a Redis stall or restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from .._backoff import backoff

__all__ = ["retry_redis", "PATIENCE_S"]

log = logging.getLogger(__name__)

#: How long a bookkeeping step waits for Redis to answer again.
PATIENCE_S = 120.0
# The wait after the first failed try (seconds), doubled after each one up to the cap.
_FIRST_WAIT_S = 0.1
_LONGEST_WAIT_S = 2.0

T = TypeVar("T")


def retry_redis(call: Callable[[], T], what: str, job_id: str, shutdown: threading.Event,
                patience_s: float = PATIENCE_S) -> T:
    """Run one Redis step, again and again while Redis does not answer (a stall, a
    restart), for up to ``patience_s``; during shutdown, once more at most.

    Each step is idempotent (a claim or finish retried is the same step again).

    Raises:
        redis.RedisError: Redis did not answer in time.
    """
    deadline = time.monotonic() + patience_s
    failed = 0
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            failed += 1
            delay = backoff(failed, _FIRST_WAIT_S, _LONGEST_WAIT_S)
            if shutdown.is_set() or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: Redis did not answer (%s); trying again", what, exc,
                        extra={"job_id": job_id})
        if shutdown.wait(delay):
            return call()  # one last try, then give up
