"""Chunked jobs (engine/jobs/chunks.py), end to end: real Redis, real ``zoomreel serve`` and
``zoomreel worker`` processes; every video decoded frame by frame with PyAV."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
import redis
from decoded import frames_on_the_path
from imagegen import encode, photo_like
from loopback import LoopbackServer
from s3server import DOWNLOAD, MotoS3, done_result, machines
from service_helpers import Serve, ServeFactory, Worker, serve_and_workers
from waiting import eventually

from zoomreel import RenderSpec, render_video
from zoomreel.frontends.rest.envelope import Answers
from zoomreel.jobs import JobService, JobSettings
from zoomreel.jobs.chunks import chunk_key, chunk_ranges
from zoomreel.jobs.keys import Keys

KEYS = Keys()  # the job store's keys, as the service makes them

IMAGE = photo_like(640, 360, seed=5)
#: 4 s at 15 fps: 60 frames, four chunks of 15 with ZOOMREEL_CHUNK_SECONDS=1.
JOB = {"length": 4, "frame_rate": 15, "zoom_speed": 30, "width": 320, "height": 180}


def _chunk_lines(lines: list[str], job_id: str) -> list[int]:
    """The chunks a process's log says it started, in order."""
    return [int(m.group(1)) for line in lines
            if (m := re.search(rf"\[job {job_id}\] chunk (\d+) \(frames", line))]


def _with_poster(filename: str) -> list[str]:
    """A finished video's file name and its poster's, sorted (the poster first)."""
    return sorted([filename, filename.rsplit(".", 1)[0] + ".jpg"])


def _keyframes(data: bytes) -> tuple[list[int], int, str]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        keys = [n for n, p in enumerate(p for p in container.demux(stream) if p.size)
                if p.is_keyframe]
        return keys, stream.frames, stream.codec_context.name


@contextlib.contextmanager
def _service(redis_url: str, data_dir: Path, **settings: Any) -> Iterator[JobService]:
    """The job system in this process, on the tests' Redis and ``data_dir`` (chunks of
    1 s), as a worker process has it; its render threads are stopped after."""
    service = JobService(redis.Redis.from_url(redis_url),
                         JobSettings(data_dir=data_dir, allow_private_urls=True, chunk_s=1,
                                     **settings),
                         embedded=False, answer=Answers().status)
    try:
        yield service
    finally:
        service.stop_workers()
        service.close()


@pytest.fixture
def photo(image_server: LoopbackServer) -> tuple[str, bytes]:
    data = encode(IMAGE, "JPEG", quality=95)
    return image_server.add(f"/chunked-{uuid.uuid4().hex}.jpg", data), data


@pytest.mark.system
def test_a_long_job_is_rendered_in_chunks_and_joined(
        serve_factory: ServeFactory, photo: tuple[str, bytes], tmp_path: Path) -> None:
    url, data = photo
    api = serve_factory(workers=2, env={"ZOOMREEL_CHUNK_SECONDS": "1"})
    job_id = api.submit(image_url=url, **JOB)
    result = done_result(api, job_id)
    assert sorted(_chunk_lines(api.lines, job_id)) == [0, 1, 2, 3]  # each once
    video = api.get(DOWNLOAD + result["filename"]).content
    keys, _, codec = _keyframes(video)
    assert codec == "h264" and keys[:4] == [0, 15, 30, 45]  # each chunk starts an IDR
    # against the exact path and against the single render of the same job
    spec = RenderSpec.from_request(JOB)
    single = tmp_path / "single.mp4"
    render_video(data, single, spec)
    decoded_image = av.open(io.BytesIO(data)).decode(video=0).__next__().to_image()
    assert decoded_image.size == IMAGE.size
    assert frames_on_the_path(video, single, spec, decoded_image, (320, 180)) == 60
    answer = api.status(job_id)["response"]
    assert answer["progress"]["frames_done"] == answer["progress"]["frames_total"] == 60
    # the chunks are gone once the job is done (just after); only the video stays
    eventually(lambda: not (api.data_dir / "chunks" / job_id).exists(),
               what="the parts to be removed once the job is done")
    names = _with_poster(result["filename"])  # the video and its poster
    assert sorted(p.name for p in (api.data_dir / "videos").iterdir()) == names
    assert names[0] in result["poster_url"]


@pytest.mark.system
def test_chunking_off_renders_whole(serve_factory: ServeFactory,
                                    photo: tuple[str, bytes]) -> None:
    url, _ = photo
    api = serve_factory(workers=2, env={"ZOOMREEL_CHUNK_SECONDS": "0"})
    job_id = api.submit(image_url=url, **JOB)
    result = done_result(api, job_id)
    assert _chunk_lines(api.lines, job_id) == []
    assert sum(f"[job {job_id}] render started" in line for line in api.lines) == 1
    keys, _, _ = _keyframes(api.get(DOWNLOAD + result["filename"]).content)
    assert keys == [0]  # one GOP: not cut


@pytest.mark.system
def test_a_chunked_job_whose_image_fails_fails_once(
        serve_factory: ServeFactory, image_server: LoopbackServer) -> None:
    api = serve_factory(workers=2, env={"ZOOMREEL_CHUNK_SECONDS": "1"})
    url = image_server.add(f"/broken-{uuid.uuid4().hex}.jpg", b"\xff\xd8 not a JPEG at all")
    job_id = api.submit(image_url=url, **JOB)
    answer = api.wait(job_id)["response"]
    assert answer["job_status"] == "error"
    whole = serve_factory(workers=1, env={"ZOOMREEL_CHUNK_SECONDS": "0"})
    alone = whole.wait(whole.submit(image_url=url, **JOB))["response"]
    assert answer["error"] == alone["error"]  # the same reason as unchunked
    eventually(lambda: [line for line in api.lines if "job failed" in line],
               what="the failure to be logged")
    assert sum(f"[job {job_id}] job failed" in line for line in api.lines) == 1
    assert 1 <= len(_chunk_lines(api.lines, job_id)) <= 4


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str, serve_factory: ServeFactory,
                ) -> Iterator[tuple[Serve, list[Worker]]]:
    """serve (no render threads) and two ``zoomreel worker`` processes on one Redis and
    one data dir; chunks of 5 s, leases of 3 s."""
    env = {**os.environ, "ZOOMREEL_ALLOW_PRIVATE_URLS": "1", "ZOOMREEL_LEASE_SECONDS": "3",
           "ZOOMREEL_CHUNK_SECONDS": "5"}
    data = tmp_path / "data"
    with serve_and_workers(serve_factory, data, [data, data], redis_url, env) as made:
        yield made


@pytest.mark.system
def test_a_worker_killed_mid_chunk_leaves_that_chunk_to_the_other(
        two_workers: tuple[Serve, list[Worker]], photo: tuple[str, bytes],
        redis_url: str) -> None:
    api, workers = two_workers
    url, _ = photo
    job = {"length": 20, "frame_rate": 30, "width": 1280, "height": 720}  # 4 chunks of 5 s
    job_id = api.submit(image_url=url, **job)
    chunks = redis.Redis.from_url(redis_url, decode_responses=True)
    progress: list[dict[str, Any]] = []

    def mid_chunk() -> int | None:
        progress.append(api.status(job_id)["response"]["progress"])
        started = _chunk_lines(workers[0].lines, job_id)
        if not started:
            return None
        state = chunks.hgetall(KEYS.chunks(job_id))
        n = started[-1]
        return n if int(state.get(f"frames:{n}", 0)) > 0 and f"done:{n}" not in state else None

    killed = eventually(mid_chunk, until=lambda n: n is not None, timeout=120,
                        what="the first worker to be in the middle of a chunk")
    assert killed is not None
    workers[0].kill9()
    assert f"done:{killed}" not in chunks.hgetall(KEYS.chunks(job_id))

    def ended() -> dict[str, Any]:
        answer = api.status(job_id)
        progress.append(answer["response"]["progress"])
        return answer

    answer = eventually(ended, timeout=300, interval=0.2,
                        until=lambda a: a["response"]["job_status"] in ("done", "error"),
                        what="the job to end")
    assert answer["response"]["job_status"] == "done", answer
    first, second = (_chunk_lines(w.lines, job_id) for w in workers)
    assert killed in second  # rendered again, by the survivor
    assert sorted(first + second) == sorted([0, 1, 2, 3, killed])  # nothing else twice
    video = api.get(DOWNLOAD + answer["response"]["response"]["filename"]).content
    keys, _, _ = _keyframes(video)
    assert [r.start for r in chunk_ranges(600, 30, 5)] == [0, 150, 300, 450]
    assert {0, 150, 300, 450} <= set(keys)
    with av.open(io.BytesIO(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 600
    # progress: every chunk's frames counted, 600 in all, an ETA while running
    assert {p["frames_total"] for p in progress} == {600}
    running = [p["frames_done"] for p in progress if 0 < p["frames_done"] < 600]
    assert len(set(running)) >= 3 and max(running) > 150  # more than one chunk's worth
    assert any(p["eta_seconds"] is not None for p in progress if 0 < p["frames_done"] < 600)
    assert progress[-1]["frames_done"] == 600
    eventually(lambda: not chunks.exists(KEYS.chunks(job_id)),  # just after the job's end
               what="the chunk record to be removed")
    # the killed render's file (the encoder's ``..chunk-<job>-<n>-<token>.mp4.*.part``)
    # goes with the next sweep of a process on this machine: its lease is long gone
    with _service(redis_url, api.data_dir, lease_s=3) as service:
        service.sweep_expired()
    videos = api.data_dir / "videos"
    assert sorted(p.name for p in videos.iterdir()) == _with_poster(
        answer["response"]["response"]["filename"])


@pytest.mark.system
def test_chunks_travel_through_the_bucket_between_machines(
        tmp_path: Path, redis_url: str, s3: MotoS3, serve_factory: ServeFactory,
        photo: tuple[str, bytes]) -> None:
    """Two workers with data dirs of their own share only Redis and the bucket."""
    with machines(tmp_path, redis_url, s3, serve_factory,
                  ZOOMREEL_CHUNK_SECONDS="1") as (api, workers, bucket):
        url, _ = photo
        job_id = api.submit(image_url=url, **JOB)
        result = done_result(api, job_id)
        started = [_chunk_lines(w.lines, job_id) for w in workers]
        assert sorted(started[0] + started[1]) == [0, 1, 2, 3]
        video = api.get(DOWNLOAD + result["filename"]).content
        keys, _, _ = _keyframes(video)
        assert keys[:4] == [0, 15, 30, 45]
        with av.open(io.BytesIO(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 60
        eventually(lambda: s3.keys(bucket, "chunks/"), until=lambda keys: keys == [],
                   what="the parts to be removed once the job is done")
        assert s3.keys(bucket, "videos/") == [
            f"videos/{name}" for name in _with_poster(result["filename"])]


@pytest.mark.system
def test_serve_killed_mid_chunked_job_renders_only_the_rest_after_a_restart(
        serve_factory: ServeFactory, photo: tuple[str, bytes], tmp_path: Path) -> None:
    """The embedded default: serve and its own Redis killed -9 while chunks render."""
    url, _ = photo
    data = tmp_path / "data"
    env = {"ZOOMREEL_CHUNK_SECONDS": "1"}
    job = {"length": 8, "frame_rate": 15, "width": 1280, "height": 720}  # 8 chunks of 15
    first = serve_factory(data, workers=2, env=env)
    job_id = first.submit(image_url=url, **job)
    # two render threads, each starting its next chunk once its last is counted done:
    # four started means two done at least
    eventually(lambda: _chunk_lines(first.lines, job_id), until=lambda s: len(s) >= 4,
               interval=0.01, timeout=120, what="four chunks to start")
    before = _chunk_lines(first.lines, job_id)
    first.kill9()
    assert len(before) < 8, "every chunk started before the kill"

    second = serve_factory(data, workers=2, env=env)
    result = done_result(second, job_id)
    after = _chunk_lines(second.lines, job_id)
    assert set(before) | set(after) == set(range(8))
    assert len(after) <= 6  # the chunks done before the kill were kept, not rendered again
    video = second.get(DOWNLOAD + result["filename"]).content
    keys, frames, codec = _keyframes(video)
    assert (frames, codec) == (120, "h264") and keys == list(range(0, 120, 15))
    # the killed renders' files went with the restart, the parts with the job's end
    eventually(lambda: not (data / "chunks" / job_id).exists(),
               what="the parts to be removed once the job is done")
    assert sorted(p.name for p in (data / "videos").iterdir()) == _with_poster(
        result["filename"])


@pytest.mark.system
def test_a_joiner_killed_mid_join_leaves_the_join_to_another_worker(
        tmp_path: Path, redis_url: str, s3: MotoS3, serve_factory: ServeFactory,
        photo: tuple[str, bytes]) -> None:
    """Twelve parts to fetch from the bucket: the joiner is killed between its
    "joining" line and the job's end; the other worker takes the job up once its lease
    lapses and joins the parts, rendering none again."""
    job = {**JOB, "length": 12}  # 180 frames, 12 chunks of 15
    with machines(tmp_path, redis_url, s3, serve_factory, ZOOMREEL_CHUNK_SECONDS="1",
                  ZOOMREEL_LEASE_SECONDS="3") as (api, workers, bucket):
        url, _ = photo
        job_id = api.submit(image_url=url, **job)
        line = f"[job {job_id}] all 12 chunks rendered; joining"

        def joiner() -> Worker | None:
            return next((w for w in workers if any(line in x for x in w.lines)), None)

        killed = eventually(joiner, until=lambda w: w is not None, interval=0.001,
                            timeout=120, what="a worker to start joining")
        assert killed is not None
        killed.kill9()
        assert api.status(job_id)["response"]["job_status"] == "running", \
            "the join ended before the kill landed"
        survivor = next(w for w in workers if w is not killed)
        result = done_result(api, job_id)
        assert any(line in x for x in survivor.lines)  # the survivor joined
        assert any(f"[job {job_id}] joined 12 chunks" in x for x in survivor.lines)
        started = [n for w in workers for n in _chunk_lines(w.lines, job_id)]
        assert sorted(started) == list(range(12))  # no chunk rendered twice
        video = api.get(DOWNLOAD + result["filename"]).content
        keys, frames, _ = _keyframes(video)
        assert frames == 180 and keys == list(range(0, 180, 15))
        eventually(lambda: s3.keys(bucket, "chunks/"), until=lambda keys: keys == [],
                   what="the parts to be removed once the job is done")


@pytest.mark.system
def test_retention_removes_the_chunks_a_finish_left(
        redis_url: str, tmp_path: Path, photo: tuple[str, bytes]) -> None:
    url, _ = photo
    with _service(redis_url, tmp_path, retention_s=3600) as service:
        job, _ = service.submit({**JOB, "image_url": url})
        service.start_workers(2)
        done = eventually(lambda: service.get(job.id), timeout=120,
                          until=lambda j: j.status in ("done", "error"), what="the job to end")
        client = redis.Redis.from_url(redis_url)
        assert done.status == "done" and client.hget(KEYS.job(job.id), "chunks") == b"4"
        # the finishing worker removes the chunks just after the job is done ...
        eventually(lambda: client.exists(KEYS.chunks(job.id)), until=lambda n: n == 0,
                   timeout=30, what="the finishing worker to remove the chunks")
        # ... and this is what a worker killed between the two leaves
        client.hset(KEYS.chunks(job.id), mapping={"count": 4, "starts": "0,15,30,45",
                                                  "ndone": 4})
        client.set(KEYS.chunk_lease(job.id, 3), "a dead render's")
        parts = [tmp_path / chunk_key(job.id, n, ".mp4") for n in range(4)]
        parts[0].parent.mkdir(parents=True)
        for part in parts:
            part.write_bytes(b"part")
        assert service.sweep_expired() == 0  # not old enough yet: all stays
        assert all(p.exists() for p in parts) and client.exists(KEYS.chunks(job.id))
        assert service.sweep_expired(now=time.time() + 3601) == 1
        assert not parts[0].parent.exists()
        assert not client.exists(KEYS.chunks(job.id), KEYS.chunk_lease(job.id, 3))
        assert not (tmp_path / "videos" / done.filename).exists()


@pytest.mark.system
def test_the_sweep_removes_chunk_files_only_once_their_process_is_gone(
        redis_url: str, tmp_path: Path) -> None:
    with _service(redis_url, tmp_path, lease_s=3) as service:
        scratch = service.render_task.storage.scratch
        scratch.mkdir(parents=True)
        client = redis.Redis.from_url(redis_url)
        client.set(KEYS.chunk_lease("j1", 0), "0" * 24 + "aaaaaaaa")  # a live render's
        client.set(KEYS.lease("j2"), "chunks-" + "0" * 24 + "cccccccc")  # a live joiner's
        names = {
            "..chunk-j1-0-aaaaaaaa.mp4.1234abcd.part": True,   # its render holds the lease
            "..chunk-j1-0-bbbbbbbb.mp4.1234abcd.part": False,  # an earlier, dead render
            ".chunk-j1-1-bbbbbbbb.mp4": False,                 # rendered, never stored
            ".join-j2-0-cccccccc.mp4": True,                   # the live join's part
            ".join-j2-1-dddddddd.mp4": False,                  # a dead joiner's
            ".chunk-j-with-dashes-2-eeeeeeee.mov": False,      # job ids may hold dashes
            "video-j1.mp4": True,                              # not a chunk's: never
        }
        for name in names:
            (scratch / name).write_bytes(b"x")
        fresh = scratch / ".chunk-j3-0-ffffffff.mp4"  # its claim is a moment old
        fresh.write_bytes(b"x")
        for name in names:
            then = time.time() - 10
            os.utime(scratch / name, (then, then))
        service.sweep_expired()
        kept = {p.name for p in scratch.iterdir()}
        assert kept == {n for n, keep in names.items() if keep} | {fresh.name}


@pytest.mark.unit
def test_chunk_ranges_are_even_and_cover_the_path():
    ranges = chunk_ranges(120 * 30, 30, 60)
    assert [(r.start, r.stop) for r in ranges] == [(0, 1800), (1800, 3600)]
    assert chunk_ranges(100, 15, 0) == [range(100)]
    assert chunk_ranges(60, 15, 60) == [range(60)]
    assert chunk_ranges(80, 15, 4) == [range(80)]  # 1.33 chunks' worth: one chunk
    for total, rate, seconds in [(70, 15, 1), (18000, 30, 60), (18001, 30, 60), (7, 1, 2)]:
        ranges = chunk_ranges(total, rate, seconds)
        assert ranges[0].start == 0 and ranges[-1].stop == total
        assert [r.start for r in ranges[1:]] == [r.stop for r in ranges[:-1]]
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1  # one length, to a frame
        assert len(ranges) == round(total / (seconds * rate))


@pytest.mark.system
def test_a_split_is_read_as_it_was_recorded_by_this_version_or_an_earlier_one(
        redis_url: str, tmp_path: Path) -> None:
    """Workers may be configured with other chunk lengths, or be of an earlier version
    (equal chunks, the last taking the rest): every worker renders the recorded ranges."""
    spec = RenderSpec.from_request({"length": 5, "frame_rate": 15})  # 75 frames
    client = redis.Redis.from_url(redis_url)
    client.hset(KEYS.chunks("now"), mapping={"count": 3, "starts": "0,23,46"})
    client.hset(KEYS.chunks("before"), mapping={"count": 3, "size": 20})
    with _service(redis_url, tmp_path) as service:
        chunks = service.render_task.chunks
        assert chunks is not None
        assert chunks.recorded("now", spec) == [range(0, 23), range(23, 46), range(46, 75)]
        assert chunks.recorded("before", spec) == [range(0, 20), range(20, 40), range(40, 75)]
