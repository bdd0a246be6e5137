"""How a render ends its job: the video stored and the job ``done``, the job failed, or
the render sent again later; and the storage steps renders share on the way.

Whole renders (render_task.py) and chunks (chunks.py) end jobs alike, so the service
makes one :class:`Outcomes` and gives it to both: neither task knows the other's
module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._backoff import backoff
from ..codecs import content_type_of
from ..errors import ImageError, RenderCancelled, StorageError
from ..storage import LocalStorage, Storage, chunk_key, poster_name, upload_key, video_key
from ._redis_retry import retry_redis
from .broker import Messages
from .job import Job
from .lease import Lease
from .metrics import JobMetrics
from .settings import JobSettings
from .states import JobState
from .store import JobStore

if TYPE_CHECKING:
    from ..render import RenderResult

__all__ = ["Outcomes", "INPUT_FAULT", "OUR_FAULT", "RENDERED_TWICE"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A failed job's ``error_code``: the input was at fault (an image that could not be
#: fetched or decoded, a field out of range) ...
INPUT_FAULT = 400
#: ... or zoomreel was (the encoder, a crash, a worker that died each time).
OUR_FAULT = 500
#: Logged when a render ends for a job that another render ended already.
RENDERED_TWICE = "render done, but the job had ended already (rendered twice)"

# A failed render is sent again this much later, doubled after each failure up to the cap.
_RETRY_FIRST_WAIT_MS = 2_000
_RETRY_LONGEST_WAIT_MS = 60_000
# A storage step that fails is tried again after 0.5 s, 1 s, 2 s ... up to 15 s.
_STORAGE_FIRST_WAIT_S = 0.5
_STORAGE_LONGEST_WAIT_S = 15.0


class Outcomes:
    """Ends jobs for the renders of one process (whole ones and chunks).

    Args:
        store: the job store.
        settings: retries, the storage's patience, the address rules.
        messages: where render, chunk and webhook messages are sent.
        shutdown: set when the process stops.
        metrics: where finished jobs and renders are counted.
        storage: where uploads are read and videos stored; default the data dir.
    """

    def __init__(self, store: JobStore, settings: JobSettings, messages: Messages,
                 shutdown: threading.Event, metrics: JobMetrics,
                 storage: Storage | None = None) -> None:
        self.store = store
        self.settings = settings
        self.messages = messages
        self.shutdown = shutdown
        self.metrics = metrics
        self.storage = storage or LocalStorage(settings.data_dir)

    # -- the ends ---------------------------------------------------------------------
    def finish_rendered(self, job_id: str, lease: Lease, result: RenderResult,
                        seconds: float) -> None:
        """Store the finished video ``result`` (and its poster, if it has one) and end
        its job ``done``."""
        out = Path(result.path)
        poster = None if result.poster is None else Path(result.poster)
        try:
            self._store_video(job_id, lease, out)
        except BaseException:
            if poster is not None:
                poster.unlink(missing_ok=True)
            raise
        if poster is not None:
            try:
                self._store_poster(job_id, lease, poster, out)
            except BaseException:  # nothing half-made stays stored
                with contextlib.suppress(StorageError, OSError):
                    self.storage.delete(video_key(out.name))
                raise
        fields = {
            "size": result.size_bytes, "duration": result.duration, "width": result.width,
            "height": result.height, "frame_rate": result.frame_rate,
            "frames_done": result.frames, "pid": os.getpid(),
            "storage": "" if self.storage.kind == LocalStorage.kind else self.storage.kind,
        }
        if poster is not None:
            fields["poster"] = poster_name(out.name)
        if result.focus_used is not None:  # focus "auto": what it closed in on
            fields["focus_used"] = json.dumps(result.focus_used.to_json())
        # A finish retried after a stall may find the job done by its first try: the
        # webhook message is then re-sent by the healing pass (the job stays pending).
        if retry_redis(lambda: self.store.finish(job_id, JobState.DONE, fields), "finish",
                       job_id, self.shutdown):
            self.metrics.render_done(result.frames, seconds)
            log.info("render done: %d frames in %.1f s (%.0f frames/s), %d bytes",
                     result.frames, seconds, result.frames / max(seconds, 1e-9),
                     result.size_bytes, extra={"job_id": job_id})
            self._after_finish(job_id)
        else:  # at-least-once delivery let two renders run to the end: worth knowing
            log.warning(RENDERED_TWICE, extra={"job_id": job_id})

    def fail(self, job_id: str, message: str, code: int) -> None:
        """End the job ``error`` with ``message`` (unless it has ended already).

        Args:
            code: :data:`INPUT_FAULT` or :data:`OUR_FAULT` (the job's ``error_code``).
        """
        fields = {"error": message, "error_code": code}
        if retry_redis(lambda: self.store.finish(job_id, JobState.ERROR, fields), "finish",
                       job_id, self.shutdown):
            self.metrics.finished.labels(JobState.ERROR).inc()
            log.warning("job failed: %s", message, extra={"job_id": job_id})
            self._after_finish(job_id)

    def retry_or_fail(self, job_id: str, attempts: int, message: str, code: int,
                      send_again: Callable[[int], None], what: str = "render") -> None:
        """After a failure that may pass: send the render again later (backoff), or,
        once ``transient_retries`` are spent, end the job ``error``.

        Args:
            attempts: the failed attempts so far, as the give-back counted them (below
                0: the render was no longer the caller's, and nothing is done).
            message: what went wrong, the job's error if it fails.
            code: :data:`INPUT_FAULT` or :data:`OUR_FAULT`.
            send_again: sends the render's message, delayed by the given milliseconds.
            what: names the render in the log (``render``, ``chunk 3``).
        """
        if attempts < 0:
            return
        if attempts > self.settings.transient_retries:
            self.fail(job_id, message, code)
            return
        delay_ms = int(backoff(attempts, _RETRY_FIRST_WAIT_MS, _RETRY_LONGEST_WAIT_MS))
        log.warning("%s will be retried (attempt %d): %s", what, attempts, message,
                    extra={"job_id": job_id})
        retry_redis(lambda: send_again(delay_ms), "re-send", job_id, self.shutdown)

    def _after_finish(self, job_id: str) -> None:
        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        retry_redis(lambda: self.remove_chunks(job), "remove chunks", job_id, self.shutdown)
        for name in job.uploads:
            try:
                self.storage.delete(upload_key(name))
            except StorageError as exc:  # the sweep removes it later (an upload no job owns)
                log.warning("the upload stays for now: %s", exc, extra={"job_id": job_id})
        if job.webhook_url:
            retry_redis(lambda: self.messages.send_webhook(job_id, 0), "webhook send",
                        job_id, self.shutdown)

    def remove_chunks(self, job: Job) -> bool:
        """Remove a finished (or expired) job's chunks (chunks.py): their record, leases
        and parts.

        Returns False when a part could not be deleted: the record then stays, so that
        the retention sweep (maintenance.py) finds the job's parts and tries again.
        """
        keys = self.store.keys
        raw = self.store.client.hget(keys.chunks(job.id), "count")
        if raw is None:
            return True
        extension = os.path.splitext(job.filename)[1]
        deleted = [self.delete_part(chunk_key(job.id, n, extension)) for n in range(int(raw))]
        if not all(deleted):
            return False
        if isinstance(self.storage, LocalStorage):  # the parts' folder, now empty
            with contextlib.suppress(OSError):
                (self.storage.root / chunk_key(job.id, 0, "")).parent.rmdir()
        self.store.client.delete(keys.chunks(job.id),
                                 *(keys.chunk_lease(job.id, n) for n in range(int(raw))))
        return True

    def delete_part(self, key: str) -> bool:
        """Delete a chunk's stored part; False (logged) when the storage failed."""
        try:
            self.storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("a chunk stays in storage for now: %s", exc)
            return False
        return True

    # -- storage steps on the way -------------------------------------------------------
    def source_of(self, job: Job, lost: threading.Event) -> bytes:
        """The job's image: its upload's bytes, or fetched from its URL.

        Raises:
            ImageError: the upload is gone. FetchError: the URL failed.
        """
        from ..net import fetch_url

        if job.upload:  # as bytes: no message may show the server's folders
            found = self.load_upload(job.id, job.upload, lost)
            if found is None:
                raise ImageError("The uploaded image is gone (removed before its render)")
            return found
        return fetch_url(job.request["image_url"], max_bytes=self.settings.max_image_bytes,
                         allow_private=self.settings.allow_private_urls)

    def load_upload(self, job_id: str, name: str, lost: threading.Event) -> bytes | None:
        """The bytes of the job's upload ``name`` (None when it is gone)."""
        key = upload_key(name)
        return self.with_storage(job_id, lost, "reading the upload",
                                 lambda: self.storage.load_bytes(key))

    def _store_poster(self, job_id: str, lease: Lease, poster: Path, video: Path) -> None:
        """Store the poster JPEG ``poster`` of the video ``video`` beside it (as
        ``videos/<name>.jpg``); the local file is gone afterwards."""
        key = video_key(poster_name(video.name))
        try:
            if poster != self.storage.local_path(key):
                self.with_storage(job_id, lease.lost, "storing the poster",
                                  lambda: self.storage.save_file(key, poster, "image/jpeg"))
        except BaseException:
            poster.unlink(missing_ok=True)
            raise

    def _store_video(self, job_id: str, lease: Lease, out: Path) -> None:
        """Store the rendered file ``out`` (see Storage.save_file); a copy left in the
        scratch folder by a failure is removed."""
        key = video_key(out.name)
        content_type = content_type_of(out.name) or "application/octet-stream"
        try:
            self.with_storage(job_id, lease.lost, "storing the video",
                              lambda: self.storage.save_file(key, out, content_type))
        except BaseException:
            out.unlink(missing_ok=True)
            raise

    def with_storage(self, job_id: str, lost: threading.Event, what: str,
                     step: Callable[[], T]) -> T:
        """``step()``, tried again with backoff while storage fails, for
        ``storage_retry_s`` in all (``lost``: set once the job was taken from us).

        Raises:
            StorageError: it still failed then.
            RenderCancelled: the process stops, or the job was taken from us, meanwhile.
        """
        deadline = time.monotonic() + self.settings.storage_retry_s
        failed = 0
        while True:
            try:
                return step()
            except StorageError as exc:
                failed += 1
                delay = backoff(failed, _STORAGE_FIRST_WAIT_S, _STORAGE_LONGEST_WAIT_S)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                log.warning("%s failed, tried again in %.1f s: %s", what, min(delay, left),
                            exc, extra={"job_id": job_id})
                if self.shutdown.wait(min(delay, left)) or lost.is_set():
                    raise RenderCancelled(f"{what}: stopped while storage failed") from exc
