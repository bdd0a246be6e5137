"""``zoomreel serve`` as a whole: crash recovery, clean shutdown, many jobs at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import (
    API_KEY,
    SMALL,
    alive,
    ended,
    jpeg,
    probe,
    redis_servers_on,
    zoomreel_script,
)
from waiting import eventually

pytestmark = pytest.mark.system


def test_kill_9_mid_render_then_restart_finishes_every_job(
        serve_factory: Any, image_server: LoopbackServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = serve_factory(data, workers=1, api_key=None)  # key generated and kept in data
    key = first.key
    assert (data / "api_key").read_text().strip() == key
    url = image_server.add("/serve/crash.jpg", jpeg(1920, 1080, (90, 140, 60)))
    long_job = first.submit(image_url=url, length=20, frame_rate=30, width=1920, height=1080)
    small = [first.submit(image_url=url, **SMALL) for _ in range(3)]

    def progress() -> dict[str, Any]:
        inner = first.status(long_job)["response"]
        assert inner["job_status"] != "done", "render finished before the kill"
        return dict(inner)

    eventually(progress, timeout=60, what="the long job really rendering",
               until=lambda inner: inner["job_status"] == "running"
               and inner["progress"]["frames_done"] > 0)
    # the small jobs may have run on the spare render thread meanwhile (fair.py): in
    # whatever state the kill finds them, each ends done once after the restart
    tree = first.tree()
    assert len(tree) >= 2  # serve, its redis-server (and its API processes)

    first.kill9()
    ended(tree)

    second = serve_factory(data, workers=1, api_key=None)
    assert second.key == key  # the generated key is kept in the data dir
    results = eventually(lambda: {j: second.status(j) for j in [long_job, *small]},
                         until=lambda answers: all(
                             a["response"]["job_status"] in ("done", "error")
                             for a in answers.values()),
                         timeout=60, interval=0.25, what="every job to end after the restart")
    for job_id, answer in results.items():
        inner = answer["response"]
        assert inner["job_status"] == "done", inner
        video = second.get(f"/v1/storage/download/{inner['response']['filename']}")
        info = probe(video.content)
        expected = 600 if job_id == long_job else 15
        assert info["frames"] == expected
    assert not list((data / "videos").glob(".*.part"))  # the killed render's partial file
    assert second.stop() == 0


@pytest.mark.parametrize(("processes", "tree_size"), [("1", 2), ("3", 5)])
def test_sigterm_shuts_down_cleanly(serve_factory: Any, processes: str,
                                    tree_size: int) -> None:
    # serve answering HTTP itself, or through API processes
    serve = serve_factory(workers=1, env={"ZOOMREEL_HTTP_PROCESSES": processes})
    tree = serve.tree()
    assert len(tree) == tree_size  # serve, its redis-server (and its API processes)
    started = time.monotonic()
    assert serve.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    ended(tree)  # the embedded Redis and the API processes stopped too
    assert any("shutting down" in line for line in serve.lines)
    assert (serve.data_dir / "redis").is_dir()
    assert any(p.name.startswith("appendonly") for p in (serve.data_dir / "redis").iterdir())


def test_twenty_jobs_at_once_each_get_their_own_file(serve_factory: Any,
                                                     image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=2)
    jobs = []
    for i in range(20):
        color = (20 + 11 * i, 230 - 9 * i, (60 * i) % 250)
        url = image_server.add(f"/serve/many-{i}.jpg", jpeg(320, 180, color))
        length = 1 + i % 2  # 15 or 30 frames
        jobs.append((url, color, length))

    def submit(job: tuple[str, tuple[int, int, int], int]) -> str:
        r = requests.post(serve.url + "/v1/image/convert/video", headers=serve.headers,
                          timeout=30, json={**SMALL, "image_url": job[0], "length": job[2],
                                            "id": job[0]})
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(submit, jobs))
    assert len(set(ids)) == 20
    filenames = set()
    for job_id, (url, color, length) in zip(ids, jobs, strict=True):
        answer = serve.wait(job_id, timeout=120)
        assert answer["id"] == url
        inner = answer["response"]
        assert inner["job_status"] == "done", inner
        filenames.add(inner["response"]["filename"])
        info = probe(serve.get(f"/v1/storage/download/{inner['response']['filename']}").content)
        assert info["frames"] == 15 * length
        assert all(abs(a - b) < 12 for a, b in zip(info["color"], color, strict=True)), (
            info["color"], color)
    assert len(filenames) == 20


def test_a_second_serve_on_a_data_dir_in_use_is_refused(
        serve_factory: Any, image_server: LoopbackServer, tmp_path: Path) -> None:
    # it used to stop the first's Redis, which the first's supervisor started again: two
    # Redis servers on one append-only file, and 404 for the first's jobs
    data = tmp_path / "data"
    first = serve_factory(data, workers=0, env={"ZOOMREEL_HTTP_PROCESSES": "2"})
    url = image_server.add("/serve/locked.jpg", jpeg(320, 180))
    jobs = [first.submit(image_url=url, **SMALL) for _ in range(3)]
    tree = sorted(first.tree())
    names = sorted(p.name for p in data.iterdir())
    env = {k: v for k, v in os.environ.items() if k != "ZOOMREEL_REDIS_URL"}
    done = subprocess.run(
        [zoomreel_script(), "serve", "--port", "0", "--data-dir", str(data)],
        env={**env, "ZOOMREEL_API_KEY": API_KEY}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert first.proc is not None
    assert done.stderr.splitlines() == [
        f"error: the data dir {data.resolve()} is in use by another zoomreel serve (pid "
        f"{first.proc.pid}): stop that one, or give this one another --data-dir"]
    # the first goes on as it was: the same processes (its Redis never stopped), the
    # same files, every job it accepted
    assert sorted(first.tree()) == tree
    assert sorted(p.name for p in data.iterdir()) == names
    assert [first.status(job)["response"]["job_status"] for job in jobs] == ["queued"] * 3
    assert first.stop() == 0


def test_a_kill_9ed_serve_never_keeps_its_data_dir(serve_factory: Any,
                                                   image_server: LoopbackServer,
                                                   tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = serve_factory(data, workers=0)
    job = first.submit(image_url=image_server.add("/serve/kill9.jpg", jpeg(320, 180)),
                       **SMALL)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)  # serve alone, the lock's holder
    first.proc.wait()
    second = serve_factory(data, workers=0)  # at once: the kernel let go of the lock
    assert second.status(job)["response"]["job_status"] == "queued"
    assert second.proc is not None
    assert (data / "serve.lock").read_text().strip() == str(second.proc.pid)


def test_kill_9_with_redis_frozen_leaves_one_redis_and_every_job(
        serve_factory: Any, image_server: LoopbackServer, tmp_path: Path) -> None:
    # the frozen Redis used to live on (a SIGTERM pending until SIGCONT) beside the new
    # serve's, both on one append-only file
    data = tmp_path / "data"
    first = serve_factory(data, workers=1)
    url = image_server.add("/serve/frozen.jpg", jpeg(640, 360, (40, 160, 90)))
    jobs = [first.submit(image_url=url, length=4, frame_rate=30, width=640, height=360),
            *(first.submit(image_url=url, **SMALL) for _ in range(4))]
    old = int((data / "redis" / "redis.pid").read_text())
    assert redis_servers_on(data / "redis") == [old]
    tree = first.tree()
    os.kill(old, signal.SIGSTOP)
    eventually(lambda: Path(f"/proc/{old}/stat").read_text().rsplit(")", 1)[1].split()[0],
               until=lambda state: state == "T", timeout=5, what="Redis to stop")
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)  # serve alone: its Redis is frozen
    first.proc.wait()

    second = serve_factory(data, workers=1)
    servers = redis_servers_on(data / "redis")
    assert len(servers) == 1 and servers[0] != old, servers
    assert not alive([old])
    ended(tree)  # nothing of the first serve is left
    states = {job: second.status(job)["response"]["job_status"] for job in jobs}
    assert set(states.values()) <= {"queued", "running", "done"}, states
    for job in jobs:
        inner = second.wait(job, timeout=120)["response"]
        assert inner["job_status"] == "done", inner
    assert redis_servers_on(data / "redis") == servers
