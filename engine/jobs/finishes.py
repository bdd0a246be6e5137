"""Waiting for jobs to finish, woken by one notification, not polled per request.

scripts.FINISH publishes a finished job's id on one channel (keys.py). Each process
that has requests waiting runs one thread subscribed to it; a waiting request holds a
``threading.Event`` and no Redis connection. What a subscription can miss (messages
published while it reconnects after a Redis restart) is caught by one pipelined check
of every waited-for job, on each (re)subscription and every ``recheck_s`` seconds:
per process, never per request.

A process lets at most ``max_waiting`` requests wait at once (each holds one of the
HTTP server's threads): the next is refused before its job is created.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import redis

from ..errors import ServiceStopping, TooManyWaiting
from .job import Job, text
from .states import FINISHED
from .store import JobStore

__all__ = ["Finishes", "DEFAULT_MAX_WAITING"]

log = logging.getLogger(__name__)

#: Requests one process lets wait for their job at once.
DEFAULT_MAX_WAITING = 64


class Finishes:
    """Threads wait here for jobs to finish.

    Args:
        client: a Redis client for the subscription (one connection, per process).
        store: the job store (the channel's name, the jobs' records).
        max_waiting: requests that may wait at once.
        recheck_s: how often the waited-for jobs are looked at anyway.
    """

    def __init__(self, client: redis.Redis, store: JobStore, *,
                 max_waiting: int = DEFAULT_MAX_WAITING, recheck_s: float = 15.0) -> None:
        self.client = client
        self.store = store
        self.max_waiting = max_waiting
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._events: dict[str, set[threading.Event]] = {}
        self._slots = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``max_waiting`` places while a request submits and waits.

        Raises:
            TooManyWaiting: every place is taken.
        """
        with self._lock:
            if self._slots >= self.max_waiting:
                raise TooManyWaiting(self._slots)
            self._slots += 1
        try:
            yield
        finally:
            with self._lock:
                self._slots -= 1

    @property
    def waiting(self) -> int:
        """Requests waiting (or about to) now."""
        return self._slots

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it is finished, or as it is after ``timeout`` seconds.

        Raises:
            ServiceStopping: :meth:`close` was called meanwhile.
            JobNotFound: the job is gone.
        """
        event = threading.Event()
        with self._lock:
            self._events.setdefault(job_id, set()).add(event)
        self._start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                job = self.store.get(job_id)  # also what finished before we listened
                if job.status in FINISHED:
                    return job
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    break
                event.wait(left)
                event.clear()
                if self._closed.is_set():
                    break
            if self._closed.is_set():
                raise ServiceStopping(job_id)
            return job
        finally:
            with self._lock:
                events = self._events.get(job_id, set())
                events.discard(event)
                if not events:
                    self._events.pop(job_id, None)

    def close(self) -> None:
        """Wake every waiting request (it raises ServiceStopping) and stop listening."""
        self._closed.set()
        with self._lock:
            for events in self._events.values():
                for event in events:
                    event.set()

    # -- the listening thread ----------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._listen, daemon=True,
                                                name="finishes")
                self._thread.start()

    def _wake(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                for event in self._events.get(job_id, ()):
                    event.set()

    def _recheck(self) -> None:
        """Wake the waiters of every waited-for job that has finished (one round trip)."""
        with self._lock:
            ids = list(self._events)
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.store.keys.job(job_id), "status")
        states = pipe.execute()
        self._wake([job_id for job_id, state in zip(ids, states, strict=True)
                    if state is None or text(state) in FINISHED])

    def _listen(self) -> None:
        while not self._closed.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.store.keys.finishes)
                self._recheck()  # what finished while we were not subscribed
                checked = time.monotonic()
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._wake([text(message["data"])])
                    if time.monotonic() - checked >= self.recheck_s:
                        self._recheck()
                        checked = time.monotonic()
            except redis.RedisError as exc:
                log.warning("job-finished notifications interrupted (%s); listening again",
                            exc)
                self._closed.wait(1.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
