"""The service heals itself: Redis frozen or killed under running renders, a render that
kills its worker every time, SIGTERM in the middle of renders. Real Redis, real processes.

These tests wait for real time to pass (a 20 s freeze, leases lapsing): they are slow by
nature, and every deadline in them is generous, for loaded machines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from loopback import LoopbackServer
from service_helpers import SMALL, Serve, alive, jpeg, zoomreel_script

from zoomreel.jobs import EmbeddedRedis, JobService, JobSettings
from zoomreel.jobs.keys import Keys

LONG = {"length": 8, "frame_rate": 30, "width": 1280, "height": 720}


def _redis_pid(serve: Serve) -> int:
    return int((serve.data_dir / "redis" / "redis.pid").read_text().strip())


def _wait_rendering(serve: Serve, job_ids: list[str], timeout: float = 90.0) -> None:
    """Until every job is running with frames encoded."""
    deadline = time.monotonic() + timeout
    for job_id in job_ids:
        while True:
            inner = serve.status(job_id)["response"]
            if inner["job_status"] == "running" and inner["progress"]["frames_done"] > 0:
                break
            assert inner["job_status"] in ("queued", "running"), inner
            assert time.monotonic() < deadline, inner
            time.sleep(0.05)


def _rendering_and_queued(serve: Serve, url: str) -> tuple[list[str], list[str]]:
    """Two long renders running (both of serve's render threads) and two small jobs
    waiting behind them."""
    rendering = [serve.submit(image_url=url, **LONG) for _ in range(2)]
    queued = [serve.submit(image_url=url, **SMALL) for _ in range(2)]
    _wait_rendering(serve, rendering)
    return rendering, queued


class _Caller:
    """Calls the API over and over from a side thread and keeps every answer: status
    code, Retry-After, seconds taken, or the exception of a dropped connection."""

    def __init__(self, serve: Serve, job_id: str, image_url: str) -> None:
        self.serve, self.job_id, self.image_url = serve, job_id, image_url
        self.answers: list[tuple[str, Any, str | None, float]] = []
        self.submitted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        s = self.serve
        calls: list[tuple[str, Callable[[], requests.Response]]] = [
            ("status", lambda: requests.post(s.url + "/v1/toolkit/job/status",
                                             headers=s.headers, json={"job_id": self.job_id},
                                             timeout=20)),
            ("health", lambda: requests.get(s.url + "/health", timeout=20)),
            ("submit", lambda: requests.post(s.url + "/v1/image/convert/video",
                                             headers=s.headers, timeout=20,
                                             json={"image_url": self.image_url, **SMALL})),
        ]
        i = 0
        while not self._stop.is_set():
            name, call = calls[i % len(calls)]
            i += 1
            started = time.monotonic()
            try:
                r = call()
            except requests.RequestException as exc:
                self.answers.append((name, exc, None, time.monotonic() - started))
                continue
            self.answers.append((name, r.status_code, r.headers.get("Retry-After"),
                                 time.monotonic() - started))
            if name == "submit" and r.status_code == 202:
                self.submitted.append(r.json()["job_id"])
            time.sleep(0.2)

    def __enter__(self) -> _Caller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def check(self) -> int:
        """Every answer a 2xx or a 503 with Retry-After; returns how many were 503s."""
        assert self.answers
        for name, code, retry_after, took in self.answers:
            assert isinstance(code, int), f"{name}: no answer ({code!r}) after {took:.1f} s"
            assert code in (200, 202, 503), (name, code)
            if code == 503:
                assert retry_after and int(retry_after) > 0, name
            assert took < 15, (name, code, took)
        return sum(code == 503 for _, code, _, _ in self.answers)


def _all_done(serve: Serve, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for job_id in job_ids:
        answer = serve.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))
        assert answer["response"]["job_status"] == "done", answer["response"]


def test_redis_frozen_20_s_every_job_still_ends_done(
        serve_factory: Any, image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=2)
    url = image_server.add("/heal/freeze.jpg", jpeg(1280, 720, (30, 90, 200)))
    rendering, queued = _rendering_and_queued(serve, url)
    pid = _redis_pid(serve)
    os.kill(pid, signal.SIGSTOP)
    try:
        with _Caller(serve, rendering[0], url) as caller:
            time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert caller.check() >= 3  # the API said so, promptly, while Redis was frozen
    _all_done(serve, rendering + queued + caller.submitted, timeout=180)
    assert _redis_pid(serve) == pid  # nothing was restarted
    # a submit answered 503 created nothing, even once Redis ran what it had been sent
    everything = serve.post("/v1/toolkit/jobs/status", json={"since_seconds": 3600})
    assert set(everything.json()["response"]) == set(rendering + queued + caller.submitted)


def test_a_submit_that_timed_out_in_a_frozen_redis_creates_nothing(
        image_server: LoopbackServer, tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    service = JobService.connect(url, JobSettings(data_dir=tmp_path, allow_private_urls=True),
                                 embedded=True, answer=lambda job, n: {})
    try:
        image = image_server.add("/heal/late.jpg", jpeg(320, 180))
        first, _ = service.submit({"image_url": image, **SMALL})  # connected, clock read
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):  # the API's 503
                service.submit({"image_url": image, **SMALL})
            assert time.monotonic() - started < 5
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        time.sleep(1)  # Redis has now run what it had been sent while frozen
        assert set(service.states_since(3600)) == {first.id}
        assert service.queue_length() == 1
    finally:
        service.close()
        server.stop()


def test_redis_killed_is_restarted_and_every_job_ends_done(
        serve_factory: Any, image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=2)
    url = image_server.add("/heal/kill.jpg", jpeg(1280, 720, (200, 90, 30)))
    rendering, queued = _rendering_and_queued(serve, url)
    pid = _redis_pid(serve)
    with _Caller(serve, rendering[0], url) as caller:
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while True:  # a new server on the same port answers the API again
            try:
                back = _redis_pid(serve)
            except (OSError, ValueError):
                back = pid
            if back != pid and alive([back]) and serve.get("/health").status_code == 200:
                break
            assert time.monotonic() - killed < 10, "Redis is not back 10 s after the kill"
            time.sleep(0.1)
        assert not alive([pid])  # the dead server was reaped, not left defunct
        time.sleep(2)
    caller.check()
    _all_done(serve, rendering + queued + caller.submitted, timeout=180)


def test_a_render_that_kills_its_worker_every_time_ends_error(
        redis_url: str, image_server: LoopbackServer, tmp_path: Path) -> None:
    settings = JobSettings(data_dir=tmp_path, allow_private_urls=True, lease_s=3)
    client = redis.Redis.from_url(redis_url)
    submitter = JobService(client, settings, embedded=False, answer=lambda job, n: {})
    url = image_server.add("/heal/crash.jpg", jpeg(1920, 1080, (90, 140, 60)))
    job_id = submitter.submit({"image_url": url, "length": 60, "frame_rate": 30})[0].id
    env = {**os.environ, "ZOOMREEL_REDIS_URL": redis_url, "ZOOMREEL_DATA_DIR": str(tmp_path),
           "ZOOMREEL_ALLOW_PRIVATE_URLS": "1", "ZOOMREEL_LEASE_SECONDS": "3"}
    kills = 0
    deadline = time.monotonic() + 150
    try:
        while True:
            log = open(tmp_path / f"worker{kills}.log", "w")  # noqa: SIM115
            worker = subprocess.Popen([zoomreel_script(), "worker", "--threads", "1"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
            while True:  # until it renders the job (kill it), or the job has ended
                job = submitter.get(job_id)
                if job.status == "running" and job.pid == worker.pid or job.status == "error":
                    break
                assert job.status != "done"
                assert worker.poll() is None, (tmp_path / f"worker{kills}.log").read_text()
                assert time.monotonic() < deadline, job
                time.sleep(0.02)
            if job.status == "error":
                break
            worker.kill()  # the "crash": the process dies in the middle of the render
            worker.wait()
            log.close()
            kills += 1
            assert kills <= 5, "the job is tried again and again"
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    assert kills == settings.max_lost_runs == 3
    assert job.lost_runs == 3
    assert "stopped without finishing 3 times" in (job.error or ""), job.error
    assert client.exists(Keys().lease(job_id)) == 0
    client.close()


def test_sigterm_with_renders_running_exits_fast_and_the_next_start_finishes_them(
        serve_factory: Any, image_server: LoopbackServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = serve_factory(data, workers=2)
    url = image_server.add("/heal/term.jpg", jpeg(1280, 720, (60, 200, 90)))
    rendering = [first.submit(image_url=url, **LONG) for _ in range(2)]
    queued = [first.submit(image_url=url, **SMALL)]
    _wait_rendering(first, rendering)
    started = time.monotonic()
    assert first.stop(timeout=30) == 0
    assert time.monotonic() - started < 10
    second = serve_factory(data, workers=2)
    _all_done(second, rendering + queued, timeout=120)
