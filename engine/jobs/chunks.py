"""Chunked renders: one long video rendered by many workers at once, then joined.

The path is a function of the frame number, so any worker can render any range of
frames. A job whose video is longer than ``chunk_s`` (JobSettings) is split when a worker
claims it (:meth:`ChunkTask.split`):

* its chunks are recorded in ``<p>:chunks:<id>`` (scripts.SPLIT): consecutive frame
  ranges of one length to a frame (:func:`zoomreel.join.chunk_ranges`), by their first
  frames; the job's lease becomes a marker without expiry, since from now on each chunk
  has a lease of its own;
* one ``zoomreel.chunk`` message per chunk goes on the render queue, so that any render
  thread of any worker takes one; each renders its frames with the job's settings
  (``render_video(..., frames=...)``, a file that starts with an IDR frame) and stores
  it as ``chunks/<id>/<n><ext>`` (the bucket, or the data dir);
* a chunk is counted done once however often it is rendered (scripts.CHUNK_DONE:
  delivery is at-least-once); whoever completes the last one gets the job's lease back
  and joins the parts by remuxing their packets (:func:`zoomreel.join.join_videos`, no
  re-encode), checks the frame count, stores the video and finishes the job.

Progress is the sum of the chunks' frames (scripts.CHUNK_RENEW), so the ETA follows. A
chunk whose worker dies is taken up alone (its lease lapses: scripts.CHUNK_TAKE_UP, by
the healing pass or by a redelivery of its message); after ``max_lost_runs`` such stops
the job fails. A chunk failing for a reason in the input fails the job (once: FINISH
moves a job once); the other chunks then stop at their next progress write. A joiner
that dies leaves the job's lease to lapse: the job is taken up as any job, and its next
claim finds every chunk done and joins them. Finished jobs remove their chunks.

AV1 is rendered whole (zoomreel.join.JOINABLE says why).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from ..codecs import CODECS
from ..errors import (
    RenderCancelled,
    RenderError,
    StorageError,
    TransientFetchError,
    ZoomreelError,
)
from ..join import JOINABLE, chunk_ranges
from ..spec import AUTO, RenderSpec
from ..storage import chunk_key, poster_name
from ..subject import FocusBy, Subject
from . import scripts
from ._redis_retry import retry_redis
from .broker import Messages, queued_chunks
from .job import Job, text
from .lease import Lease
from .outcomes import INPUT_FAULT, OUR_FAULT, Outcomes
from .reels import Framed, ReelSources
from .scripts import ChunkClaimResult, ChunkDoneResult
from .settings import JobSettings
from .store import JobStore

if TYPE_CHECKING:
    from ..render import RenderResult

__all__ = ["ChunkTask", "chunk_ranges", "chunk_key", "JOINABLE"]

log = logging.getLogger(__name__)

#: The local scratch files of chunks: ``.chunk-<job>-<n>-<token>`` (a chunk rendered,
#: not stored yet; the encoder's ``..chunk-...part`` while it renders) and
#: ``.join-<job>-<n>-<token>`` (a part fetched from the bucket for the join). The token
#: is the last 8 characters (hex digits) of the lease their process held (the chunk's,
#: or the job's for a join): a file whose lease is gone belongs to a process that died.
_SCRATCH = re.compile(r"^\.{1,2}(chunk|join)-(.+)-(\d+)-([0-9a-f]{8})\.")


def _scratch_name(kind: str, job_id: str, index: int, token: str, extension: str) -> str:
    return f".{kind}-{job_id}-{index}-{token[-8:]}{extension}"


class ChunkTask:
    """Splits long jobs, renders their chunks (the ``zoomreel.chunk`` actor's body),
    joins them.

    Args:
        store: the job store.
        settings: chunk length, retries, the lease's length.
        messages: where chunk messages are sent.
        shutdown: set when the process stops; running chunks give themselves back.
        outcomes: ends the jobs (stored and done, failed, sent again), as whole
            renders do; its storage holds the parts.
    """

    def __init__(self, store: JobStore, settings: JobSettings, messages: Messages,
                 shutdown: threading.Event, outcomes: Outcomes) -> None:
        self.store = store
        self.settings = settings
        self.messages = messages
        self.shutdown = shutdown
        self.outcomes = outcomes
        self.storage = outcomes.storage
        self.lease_ms = int(settings.lease_s * 1000)
        k = self.store.keys
        client = self.store.client
        self.keys = k
        self._split = client.register_script(scripts.SPLIT)
        self._claim = client.register_script(scripts.CHUNK_CLAIM)
        self._renew = client.register_script(scripts.CHUNK_RENEW)
        self._done = client.register_script(scripts.CHUNK_DONE)
        self._release = client.register_script(scripts.CHUNK_RELEASE)
        self._take_up = client.register_script(scripts.CHUNK_TAKE_UP)

    def ranges(self, spec: Framed) -> list[range]:
        """The chunks of ``spec``'s video (one: rendered whole)."""
        if spec.codec not in JOINABLE:
            return [range(spec.total_frames)]
        return chunk_ranges(spec.total_frames, spec.frame_rate, self.settings.chunk_s)

    def is_split(self, job_id: str) -> bool:
        """Whether the job was split into chunks (its render messages are then not
        needed while it runs: its chunks' messages carry it)."""
        return bool(self.store.client.exists(self.keys.chunks(job_id)))

    def recorded(self, job_id: str, spec: Framed) -> list[range]:
        """The chunks the job was split into (as recorded: workers may be configured
        with other chunk lengths)."""
        count, first_frames, size = self.store.client.hmget(
            self.keys.chunks(job_id), ["count", "starts", "size"])
        if count is None or (first_frames is None and size is None):
            raise RenderCancelled("the job's chunks are gone")  # it ended meanwhile
        total = spec.total_frames
        if first_frames is not None:
            starts = [int(v) for v in text(first_frames).split(",")]
        else:  # split by an earlier version: equal chunks, the last taking the rest
            starts = [n * int(text(size)) for n in range(int(count))]
        return [range(a, b) for a, b in zip(starts, [*starts[1:], total], strict=True)]

    # -- splitting (the render actor, having claimed the job) ----------------------
    def split(self, job: Job, spec: Framed, token: str, lease: Lease) -> bool:
        """Split the claimed ``job`` into chunks and send their messages, or, if every
        chunk is done already (its joiner died), join them; False when the job is
        rendered whole."""
        ranges = self.ranges(spec)
        if len(ranges) == 1:
            return False
        k = self.keys
        marker = "chunks-" + token
        done = int(retry_redis(lambda: self._split(
            keys=[k.job(job.id), k.lease(job.id), k.chunks(job.id)],
            args=[token, len(ranges), ",".join(str(r.start) for r in ranges), marker]),
            "split", job.id, self.shutdown))
        lease.lost.set()  # the job's lease is the marker now: its renewals stop
        if done < 0:
            return True
        ranges = self.recorded(job.id, spec)  # a split before, with other settings, holds
        if done >= len(ranges):  # every chunk rendered: its joiner died
            self._join_leased(job.id, self._joiner(job.id))
            return True
        log.info("render split into %d chunks of %d frames", len(ranges), len(ranges[0]),
                 extra={"job_id": job.id})
        states = self.store.client.hgetall(k.chunks(job.id))
        done_ones = {text(name) for name in states}
        for n in range(len(ranges)):
            if f"done:{n}" not in done_ones:
                self._send(job.id, n)
        return True

    def _send(self, job_id: str, index: int) -> None:
        retry_redis(lambda: self.messages.send_chunk(job_id, index), "send chunk", job_id,
                    self.shutdown)

    # -- a chunk (the chunk actor) ----------------------------------------------------
    def __call__(self, job_id: str, index: int) -> None:
        """Render chunk ``index`` of ``job_id``. Never raises because of Redis (as
        RenderTask)."""
        try:
            self._claim_and_render(job_id, int(index))
        except redis.RedisError as exc:
            log.error("chunk %s: Redis did not answer (%s); it is taken up again once it "
                      "does", index, exc, extra={"job_id": job_id})

    def _keys(self, job_id: str, index: int) -> list[str]:
        k = self.keys
        return [k.job(job_id), k.chunks(job_id), k.chunk_lease(job_id, index)]

    def _claim_and_render(self, job_id: str, index: int) -> None:
        token = uuid.uuid4().hex
        claimed = ChunkClaimResult(text(retry_redis(lambda: self._claim(
            keys=self._keys(job_id, index),
            args=[index, token, self.lease_ms, self.settings.max_lost_runs]),
            "claim chunk", job_id, self.shutdown)))
        if claimed == ChunkClaimResult.LOST:
            self.outcomes.fail(job_id, f"The render stopped without finishing "
                               f"{self.settings.max_lost_runs} times (the worker process "
                               "rendering it died each time); not retried", OUR_FAULT)
            return
        if claimed != ChunkClaimResult.CLAIMED:  # done, gone, or a live render holds it
            return
        lease = Lease(self.store, job_id, token, self.lease_ms, name=f"lease-{job_id}-{index}",
                      renew=lambda: self._renew_chunk(job_id, index, token, None))
        with lease:
            try:
                self._render_chunk(job_id, index, token, lease.lost)
            except RenderCancelled:
                if not lease.lost.is_set():
                    self._release_chunk(job_id, index, token, count=False)
                    self.messages.send_chunk(job_id, index)
            except redis.RedisError:
                raise
            except StorageError as exc:
                self.outcomes.fail(job_id, str(exc), OUR_FAULT)
            except (TransientFetchError, RenderError) as exc:
                self._retry_or_fail(job_id, index, token, str(exc), INPUT_FAULT if isinstance(
                    exc, TransientFetchError) else OUR_FAULT)
            except ZoomreelError as exc:  # the input: every chunk would fail alike
                self.outcomes.fail(job_id, str(exc), INPUT_FAULT)
            except Exception as exc:
                log.exception("chunk %d failed unexpectedly", index, extra={"job_id": job_id})
                self._retry_or_fail(job_id, index, token,
                                    f"Internal error while rendering: {exc}", OUR_FAULT)

    def _renew_chunk(self, job_id: str, index: int, token: str, frames: int | None) -> bool:
        k = self.keys
        args: list[str | int] = [token, self.lease_ms, index]
        if frames is not None:
            args.append(frames)
        return bool(self._renew(keys=[k.chunk_lease(job_id, index), k.job(job_id),
                                      k.chunks(job_id)], args=args))

    def _render_chunk(self, job_id: str, index: int, token: str, lost: threading.Event,
                      ) -> None:
        from ..render import render_video

        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        if job.is_reel:
            with self._sources(job, lost) as sources:
                extent = sources.extent()
                frames = self.recorded(job_id, extent)[index]
                self._render_part(job, index, token, lost, frames, extent.codec,
                                  lambda out, progress, cancel: sources.render(
                                      out, frames=frames, progress=progress, cancel=cancel))
            return
        spec = RenderSpec.from_request(job.request)
        frames = self.recorded(job_id, spec)[index]
        source = self.outcomes.source_of(job, lost)
        self._render_part(job, index, token, lost, frames, spec.codec,
                          lambda out, progress, cancel: render_video(
                              source, out, spec, progress=progress, frames=frames,
                              cancel=cancel))

    def _sources(self, job: Job, lost: threading.Event) -> ReelSources:
        return ReelSources(job, lambda name: self.outcomes.load_upload(job.id, name, lost),
                           self.settings, self.storage.scratch, lost)

    def _render_part(self, job: Job, index: int, token: str, lost: threading.Event,
                     frames: range, codec: str,
                     render: Callable[[Path, Callable[[int, int], None], Callable[[], bool]],
                                      RenderResult]) -> None:
        """Render chunk ``index`` (``frames``) with ``render(out, progress, cancel)``,
        store it and count it done; the last one joins."""
        job_id = job.id
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5 or done >= total:
                last[0] = now
                try:
                    if not self._renew_chunk(job_id, index, token, done):
                        lost.set()
                except redis.RedisError:
                    pass

        extension = CODECS[codec].extension
        scratch = self.storage.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        out = scratch / _scratch_name("chunk", job_id, index, token, extension)
        log.info("chunk %d (frames %d-%d) started", index, frames.start, frames.stop - 1,
                 extra={"job_id": job_id})
        rendered = render(out, progress, lambda: self.shutdown.is_set() or lost.is_set())
        if index == 0 and rendered.focus_used is not None:  # for the join's result
            self._record_focus(job_id, rendered.focus_used)
        key = chunk_key(job_id, index, extension)
        try:
            self.storage.save_file(key, out, "application/octet-stream")
        finally:
            out.unlink(missing_ok=True)
        join_token = uuid.uuid4().hex
        k = self.keys
        counted = ChunkDoneResult(text(retry_redis(lambda: self._done(
            keys=[k.job(job_id), k.chunks(job_id), k.chunk_lease(job_id, index),
                  k.lease(job_id)],
            args=[index, len(frames), join_token, self.lease_ms]),
            "chunk done", job_id, self.shutdown)))
        if counted == ChunkDoneResult.NOT_WANTED:  # the job ended meanwhile
            self.outcomes.delete_part(key)
        elif counted == ChunkDoneResult.LAST:
            self._join_leased(job_id, join_token)

    def _release_chunk(self, job_id: str, index: int, token: str, *, count: bool) -> int:
        k = self.keys
        return int(self._release(keys=[k.chunks(job_id), k.chunk_lease(job_id, index)],
                                 args=[index, token, 1 if count else 0]))

    def _retry_or_fail(self, job_id: str, index: int, token: str, message: str,
                       code: int) -> None:
        attempts = retry_redis(
            lambda: self._release_chunk(job_id, index, token, count=True),
            "release chunk", job_id, self.shutdown)
        self.outcomes.retry_or_fail(
            job_id, attempts, message, code,
            lambda delay_ms: self.messages.send_chunk(job_id, index, delay_ms),
            what=f"chunk {index}")

    # -- the join ----------------------------------------------------------------------
    def _joiner(self, job_id: str) -> str:
        """The job's lease token (a claim's, held by the caller)."""
        return text(self.store.client.hget(self.keys.job(job_id), "lease_token") or "")

    def _join_leased(self, job_id: str, token: str) -> None:
        """Join the job's parts while holding its lease (``token``), then finish it."""
        with Lease(self.store, job_id, token, self.lease_ms) as lease:
            try:
                self._join(job_id, lease)
            except RenderCancelled:
                return  # lease lost or shutdown: whoever takes the job up joins
            except (StorageError, RenderError) as exc:
                self.outcomes.fail(job_id, str(exc), OUR_FAULT)
            except ZoomreelError as exc:  # a reel's track that cannot be fetched or decoded
                self.outcomes.fail(job_id, str(exc), INPUT_FAULT)

    def _join(self, job_id: str, lease: Lease) -> None:
        job = retry_redis(lambda: self.store.get(job_id), "read", job_id, self.shutdown)
        if job.is_reel:
            with self._sources(job, lease.lost) as sources:
                self._join_parts(job, lease, sources.extent(), sources)
            return
        self._join_parts(job, lease, RenderSpec.from_request(job.request), None)

    def _join_parts(self, job: Job, lease: Lease, spec: Framed,
                    sources: ReelSources | None) -> None:
        """Join the job's stored parts into its video (a reel's track added), take its
        poster from it, and finish the job."""
        from .._frames import poster_frame_of, poster_of_video
        from ..join import join_videos

        job_id = job.id
        extension = CODECS[spec.codec].extension
        ranges = self.recorded(job_id, spec)
        storage = self.storage
        scratch = storage.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        fetched: list[str] = []
        parts: list[str] = []
        started = time.monotonic()
        log.info("all %d chunks rendered; joining them", len(ranges),
                 extra={"job_id": job_id})
        try:
            for n in range(len(ranges)):
                key = chunk_key(job_id, n, extension)
                local = storage.local_path(key)
                if local is None:
                    local = scratch / _scratch_name("join", job_id, n, lease.token,
                                                    extension)
                    fetched.append(str(local))
                    self._fetch(job_id, lease, key, local)
                parts.append(str(local))
            out = scratch / job.filename
            with_track = sources is not None and sources.has_track
            joined = scratch / _scratch_name("join", job_id, len(ranges), lease.token,
                                             extension) if with_track else out
            result = join_videos(parts, joined, frame_rate=spec.frame_rate,
                                 expected_frames=spec.total_frames)
        finally:
            for path_text in fetched:
                Path(path_text).unlink(missing_ok=True)
        if sources is not None and with_track:
            from ..audio import add_track

            try:
                with sources.named_errors():
                    add_track(joined, sources.track(), out, frame_rate=spec.frame_rate,
                              audio_codec=CODECS[spec.codec].audio)
            finally:
                joined.unlink(missing_ok=True)
            result = dataclasses.replace(result, path=str(out), size_bytes=out.stat().st_size)
        at = (sources.poster_frame() if sources is not None
              else poster_frame_of(range(spec.total_frames)))
        poster = poster_of_video(out, at, spec.frame_rate, scratch / poster_name(job.filename))
        result = dataclasses.replace(result, poster=poster)
        log.info("joined %d chunks in %.2f s", len(parts), time.monotonic() - started,
                 extra={"job_id": job_id})
        if isinstance(spec, RenderSpec) and spec.focus == AUTO:  # chunk 0 kept the subject
            result = dataclasses.replace(result, focus_used=self._recorded_focus(job_id))
        # the render's time: from the split to the joined video, every chunk included
        self.outcomes.finish_rendered(job_id, lease, result,
                                  time.time() - (job.run_started_at or time.time()))

    def _record_focus(self, job_id: str, subject: Subject) -> None:
        """Keep chunk 0's subject on the job's record (only while the record exists)."""
        key = self.keys.job(job_id)
        value = json.dumps(subject.to_json())
        retry_redis(lambda: self.store.client.exists(key)
                    and self.store.client.hset(key, "focus_used", value),
                    "record focus", job_id, self.shutdown)

    def _recorded_focus(self, job_id: str) -> Subject | None:
        raw = retry_redis(lambda: self.store.client.hget(self.keys.job(job_id), "focus_used"),
                          "read focus", job_id, self.shutdown)
        if not raw:
            return None
        found = json.loads(text(raw))
        return Subject(found["x"], found["y"], FocusBy(found["by"]))

    def _fetch(self, job_id: str, lease: Lease, key: str, path: Path) -> None:
        """Copy the stored part ``key`` to the local file ``path``."""
        storage = self.storage

        def load() -> bytes | None:
            return storage.load_bytes(key)

        data = self.outcomes.with_storage(job_id, lease.lost, "reading a chunk", load)
        if data is None:
            raise RenderError(f"A part of the video ({key}) is missing")
        path.write_bytes(data)

    # -- clean-up and healing ----------------------------------------------------------
    def remove_strays(self, older_than: float) -> int:
        """Delete this machine's scratch files of chunks and joins whose process died
        (their lease is gone or another's) and that were last written before
        ``older_than``; returns how many. A live render or join holds its lease and
        writes its file all the time, so neither test can remove its file."""
        scratch = self.storage.scratch
        try:
            entries = [(e, m) for e in os.scandir(scratch) if (m := _SCRATCH.match(e.name))]
        except (FileNotFoundError, NotADirectoryError):
            return 0
        removed = 0
        for entry, match in entries:
            kind, job_id, index, token = match.groups()
            lease = (self.keys.chunk_lease(job_id, int(index)) if kind == "chunk"
                     else self.keys.lease(job_id))
            holder = text(self.store.client.get(lease) or "")
            try:
                if holder.endswith(token) or entry.stat().st_mtime >= older_than:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            log.info("removed %s, left by a process that died", entry.name,
                     extra={"job_id": job_id})
            removed += 1
        return removed

    def heal(self, job_ids: list[str]) -> int:
        """Take up chunks of the running jobs among ``job_ids`` whose render stopped
        without a word, and re-send chunk messages that were lost; returns how many."""
        healed = 0
        carried: set[tuple[str, int]] | None = None
        for job_id in job_ids:
            raw = self.store.client.hgetall(self.keys.chunks(job_id))
            states = {text(a): text(b) for a, b in raw.items()}
            for n in range(int(states.get("count", 0))):
                if f"done:{n}" in states:
                    continue
                if f"started:{n}" in states:
                    if int(self._take_up(keys=self._keys(job_id, n), args=[n])) < 0:
                        continue
                    log.warning("chunk %d's worker stopped; it is rendered again alone", n,
                                extra={"job_id": job_id})
                else:
                    if carried is None:
                        carried = queued_chunks(self.store.client)
                    if (job_id, n) in carried or not self.store.mark_resent(
                            f"{job_id}:{n}", "chunk", self.lease_ms * 3):
                        continue
                self.messages.send_chunk(job_id, n)
                healed += 1
        return healed
