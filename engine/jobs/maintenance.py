"""Keeping the job system whole: recovery at start, healing while running, retention.

Safe in any number of processes at once (every worker process runs it):

* **recover** (once, at start): messages that dead workers fetched go back to their
  queues; lapsed jobs are taken up (lease.py); a job or webhook that no message carries
  is sent again. An embedded serve owns its Redis, so no worker of an earlier run can be
  alive: it drops every lease and every partial video first.
* **heal** (every few seconds): lapsed jobs are taken up; a queued job or pending webhook
  that no live message has carried for a while is re-sent, by one process: its message
  was lost to a Redis outage, or is held by a consumer thread that died (a delayed
  message long past its time, a fetched one never run: broker.carried_job_ids), whatever
  the broker's threads believe; messages fetched by workers silent for too long go back;
  this process's dead consumer threads are started again (consumers.py).
* **sweep** (every minute): finished jobs older than the retention go, with their
  videos (from the storage, and from the data dir where a job done before the storage
  changed left one) and any chunks their finish left; temporary files of killed renders
  and uploads that no job owns go too, and chunk files whose process died once their
  lease is gone (chunks.py). A storage that does not answer keeps the job for the next
  sweep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import redis

from ..errors import StorageError
from ..storage import UPLOADS, LocalStorage, Storage, upload_key, video_key
from .broker import (
    RENDER_QUEUE,
    WEBHOOK_QUEUE,
    Messages,
    carried_job_ids,
    queued_job_ids,
    recover_unacked,
)
from .chunks import ChunkTask
from .outcomes import Outcomes
from .render_task import RenderTask
from .settings import JobSettings
from .store import JobStore

__all__ = ["Maintenance"]

log = logging.getLogger(__name__)

#: A job or webhook that no message carries is re-sent once it has been so this long
#: (a message is sent just after its job is stored: give it time to appear).
ORPHAN_AFTER_S = 10.0
#: A job unchanged this long whose message a worker fetched but never ran was lost with
#: the consumer thread that fetched it (broker.carried_job_ids).
STALLED_AFTER_S = 30.0
#: Temporary files (a killed render's ``.<name>.part``, an upload whose job was never
#: stored) are removed once this old; a running render or a submit never takes this long
#: to touch its file.
_STALE_FILE_S = 86400.0
_SWEEP_EVERY_S = 60.0


class Maintenance:
    """Recovery, healing and retention of one job store.

    Args:
        client: the broker's Redis client (Dramatiq's keys).
        store: the job store.
        settings: folders, retention, the lease's length.
        messages: where re-sent messages go.
        render_task: takes lapsed jobs up (and ends those lost too often).
        chunk_task: takes up chunks whose worker died; knows their scratch files.
        outcomes: removes the chunks a finish left.
        heartbeat_timeout_ms: a Dramatiq worker silent this long is dead.
        storage: where uploads and videos are kept; default the data dir.
    """

    def __init__(self, client: redis.Redis, store: JobStore, settings: JobSettings,
                 messages: Messages, render_task: RenderTask, chunk_task: ChunkTask,
                 outcomes: Outcomes, heartbeat_timeout_ms: int,
                 storage: Storage | None = None) -> None:
        self.storage = storage or LocalStorage(settings.data_dir)
        self.client = client
        self.store = store
        self.settings = settings
        self.messages = messages
        self.render_task = render_task
        self.chunk_task = chunk_task
        self.outcomes = outcomes
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self._threads: list[threading.Thread] = []
        #: Restarts this process's dead consumer threads; returns how many (see start).
        self.revive: Callable[[], int] = lambda: 0

    def recover(self, *, owns_redis: bool, dead_after_ms: int) -> int:
        """Start-up recovery. Returns how many jobs and webhooks had to be re-sent.

        Args:
            owns_redis: no other process can be using this Redis (embedded serve).
            dead_after_ms: otherwise, the silence after which a worker is dead.
        """
        if owns_redis:
            recover_unacked(self.client)
            self.store.clear_leases()
            self._remove_stale_files(older_than=time.time())
            self.chunk_task.remove_strays(older_than=time.time())
        else:
            recover_unacked(self.client, dead_after_ms=dead_after_ms)
        for job_id in self.store.lapsed_ids():
            self.render_task.take_up(job_id)
        resent = 0
        for queue, ids, send in self._carried():
            carried = queued_job_ids(self.client, queue)
            for job_id in ids:
                if job_id not in carried:
                    send(job_id)
                    resent += 1
        return resent

    def heal(self) -> int:
        """One healing pass. Returns how many jobs and webhooks were taken up or re-sent."""
        healed = self.revive()
        for job_id in self.store.lapsed_ids():
            healed += self.render_task.take_up(job_id)
        recover_unacked(self.client, dead_after_ms=self.heartbeat_timeout_ms)
        healed += self.chunk_task.heal(self.store.active_ids())  # dead workers, lost messages
        now = time.time()
        ttl_ms = int(ORPHAN_AFTER_S * 3000)
        for queue, ids, send in self._carried(queued_only=True):
            waiting = self.store.unchanged_since(ids, now - ORPHAN_AFTER_S)
            if not waiting:
                continue
            stalled = set(self.store.unchanged_since(waiting, now - STALLED_AFTER_S))
            carried = carried_job_ids(self.client, queue, stalled)
            for job_id in waiting:
                if job_id not in carried and self.store.mark_resent(job_id, queue, ttl_ms):
                    log.warning("re-sending the lost %s message", queue,
                                extra={"job_id": job_id})
                    send(job_id)
                    healed += 1
        return healed

    def _carried(self, queued_only: bool = False,
                 ) -> list[tuple[str, list[str], Callable[[str], None]]]:
        """(queue, ids of the jobs that need a message of it, how to send one)."""
        jobs = self.store.queued_ids() if queued_only else self.store.active_ids()
        return [(RENDER_QUEUE, jobs, self.messages.send_render),
                (WEBHOOK_QUEUE, self.store.pending_webhook_ids(), self.messages.send_webhook)]

    def sweep(self, now: float | None = None) -> int:
        """Remove finished jobs older than the retention, with their videos (none with
        retention 0, keep forever), and stale temporary files. Returns the jobs removed."""
        now = time.time() if now is None else now
        removed = 0
        if self.settings.retention_s > 0:
            for job in self.store.expired(now - self.settings.retention_s):
                if not self.outcomes.remove_chunks(job):
                    continue  # parts left by a finish that could not delete them
                if job.filename:
                    names = [job.filename, *([job.poster] if job.poster else [])]
                    try:
                        for name in names:
                            self.storage.delete(video_key(name))
                    except StorageError as exc:
                        log.warning("retention: the video stays until the storage "
                                    "answers: %s", exc, extra={"job_id": job.id})
                        continue
                    for name in names:
                        (self.settings.storage_dir / name).unlink(missing_ok=True)
                self.store.delete(job.id)
                removed += 1
        self._remove_stale_files(older_than=time.time() - _STALE_FILE_S)
        # a dead process's chunk files: once its lease is gone
        self.chunk_task.remove_strays(older_than=time.time() - self.settings.lease_s)
        return removed

    def _remove_stale_files(self, older_than: float) -> None:
        """Delete killed renders' temporary files and uploads no unfinished job owns,
        last changed before ``older_than``."""
        _remove_old(self.settings.storage_dir.glob(".*.part"), older_than)
        scratch = self.storage.scratch
        if scratch != self.settings.storage_dir and scratch.is_dir():
            _remove_old(scratch.iterdir(), older_than)  # renders not stored: all stale
        if self.storage.kind != LocalStorage.kind:
            # a bucket may be shared by several deployments: only its stale uploads go
            older_than = min(older_than, time.time() - _STALE_FILE_S)
        owned = {upload_key(name) for job in map(self.store.get, self.store.active_ids())
                 for name in job.uploads}
        try:
            for key, modified in list(self.storage.list(UPLOADS)):
                if key not in owned and modified < older_than:
                    self.storage.delete(key)
        except StorageError as exc:
            log.warning("stale uploads stay until the storage answers: %s", exc)

    # -- threads ---------------------------------------------------------------
    def start(self, shutdown: threading.Event, revive: Callable[[], int] | None = None,
              ) -> None:
        """Run the healing pass and the sweep from threads of their own until ``shutdown``.

        Args:
            shutdown: set when the process stops.
            revive: restarts this process's dead consumer threads; run by each healing
                pass, returning how many it restarted.
        """
        if revive is not None:
            self.revive = revive
        heal_every = min(5.0, self.settings.lease_s / 3)
        for name, every, step in (("healer", heal_every, self.heal),
                                  ("sweeper", _SWEEP_EVERY_S, self.sweep)):
            thread = threading.Thread(target=_repeat, args=(name, every, step, shutdown),
                                      daemon=True, name=name)
            thread.start()
            self._threads.append(thread)


def _repeat(name: str, every: float, step: Callable[[], int],
            shutdown: threading.Event) -> None:
    while not shutdown.wait(every):
        try:
            step()
        except redis.RedisError as exc:
            log.warning("%s pass skipped: Redis did not answer (%s)", name, exc)
        except Exception:
            log.exception("%s pass failed", name)


def _remove_old(paths: Iterable[Path], older_than: float) -> None:
    for path in paths:
        try:
            if path.stat().st_mtime < older_than:
                path.unlink()
        except OSError:
            pass
