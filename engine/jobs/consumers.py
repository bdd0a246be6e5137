"""Dramatiq workers whose consumer threads outlive any Redis error.

Dramatiq's consumer thread (one per queue and per delay queue, ``render.DQ`` say)
survives a lost connection, but not an error *answer*: when Redis refuses writes for a
moment (``MISCONF`` when its disk is full, ``NOREPLICAS``), the fetch or the move of a
delayed message fails with a ``ResponseError``, the thread tries to give back the
delayed messages it holds, fails again, and exits. The process keeps its heartbeat, so
nobody else takes those messages up: a render retry or a webhook retry waiting there
would stay ``queued`` / ``pending`` until a restart.

:class:`SteadyWorker` runs :class:`SteadyConsumer` threads instead: a close that fails
keeps the delayed messages in memory (they are moved at their time once Redis takes
writes again) and the thread restarts its consumer, as Dramatiq does after a lost
connection. :meth:`SteadyWorker.revive` replaces any consumer thread that died anyway;
whatever a dead thread held is re-sent by the healing pass (maintenance.py), which
trusts no thread.
"""

from __future__ import annotations

import logging
from queue import Empty

from dramatiq import Worker
from dramatiq.common import q_name
from dramatiq.worker import ConsumerThread

__all__ = ["SteadyConsumer", "SteadyWorker"]

log = logging.getLogger(__name__)


class SteadyConsumer(ConsumerThread):
    """A consumer thread that never dies of a Redis error while it is running."""

    def close(self) -> None:
        """Give the held delayed messages back and close the connection; when Redis
        refuses, keep them (moved at their time once it accepts) and go on."""
        held = []
        while True:
            try:
                held.append(self.delay_queue.get_nowait())
            except Empty:
                break
        try:
            if self.consumer:
                self.requeue_messages(item.message for item in held)
                self.consumer.close()
        except Exception as exc:
            for item in held:
                self.delay_queue.put(item)
                self.delay_queue.task_done()  # the count stays as it was before the drain
            log.warning("consumer of %s: Redis refused to take its messages back (%s); "
                        "kept, the consumer restarts", self.queue_name, exc)


class SteadyWorker(Worker):
    """A Dramatiq worker whose consumer threads are :class:`SteadyConsumer`."""

    def _add_consumer(self, queue_name: str, *, delay: bool = False) -> None:
        # Dramatiq's own, with the thread's class replaced.
        if queue_name in self.consumers:
            return
        if self.consumer_whitelist and q_name(queue_name) not in self.consumer_whitelist:
            return
        consumer = self.consumers[queue_name] = SteadyConsumer(
            broker=self.broker, queue_name=queue_name,
            prefetch=self.delay_prefetch if delay else self.queue_prefetch,
            work_queue=self.work_queue, worker_timeout=self.worker_timeout)
        consumer.start()

    def revive(self) -> int:
        """Replace every consumer thread that died; returns how many were."""
        revived = 0
        for queue_name, consumer in list(self.consumers.items()):
            if consumer.is_alive() or not consumer.running:  # alive, or stopped on purpose
                continue
            log.error("the consumer of %s had died; started again", queue_name)
            del self.consumers[queue_name]
            self._add_consumer(queue_name, delay=queue_name.endswith(".DQ"))
            revived += 1
        return revived
