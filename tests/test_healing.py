"""The service heals itself: Redis frozen or killed under running renders, a render that
kills its worker every time, SIGTERM in the middle of renders, Redis refusing writes
while retries wait. Real Redis, real processes.

These tests wait for real time to pass (a 20 s freeze, leases lapsing): they are slow by
nature, and every deadline in them is generous, for loaded machines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from loopback import LoopbackServer, send
from service_helpers import SMALL, Serve, alive, jpeg, zoomreel_script
from waiting import eventually

from zoomreel.jobs import EmbeddedRedis, Job, JobService, JobSettings
from zoomreel.jobs.keys import Keys

pytestmark = pytest.mark.system

LONG = {"length": 8, "frame_rate": 30, "width": 1280, "height": 720}


def _redis_pid(serve: Serve) -> int:
    return int((serve.data_dir / "redis" / "redis.pid").read_text().strip())


def _wait_rendering(serve: Serve, job_ids: list[str], timeout: float = 90.0) -> None:
    """Until every job is running with frames encoded."""
    def states() -> list[dict[str, Any]]:
        inners = [serve.status(job_id)["response"] for job_id in job_ids]
        for inner in inners:
            assert inner["job_status"] in ("queued", "running"), inner
        return inners

    eventually(states, timeout=timeout, what="every job rendering, frames encoded",
               until=lambda inners: all(i["job_status"] == "running"
                                        and i["progress"]["frames_done"] > 0 for i in inners))


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
    ended = eventually(lambda: {j: serve.status(j)["response"]["job_status"] for j in job_ids},
                       until=lambda states: set(states.values()) <= {"done", "error"},
                       timeout=timeout, interval=0.25, what="every job to end")
    assert set(ended.values()) == {"done"}, ended


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
        scripts_run = _scripts_run(url)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):  # the API's 503
                service.submit({"image_url": image, **SMALL})
            assert time.monotonic() - started < 5
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # Redis runs what it had been sent while frozen: the create, a script, too late
        eventually(lambda: _scripts_run(url), until=lambda calls: calls > scripts_run,
                   what="Redis to run the create it was sent while frozen")
        assert set(service.states_since(3600)) == {first.id}
        assert service.queue_length() == 1
    finally:
        service.close()
        server.stop()


def _scripts_run(url: str) -> int:
    """How many scripts (EVALSHA) the Redis server at ``url`` has run."""
    with redis.Redis.from_url(url) as client:
        return int(client.info("commandstats")["cmdstat_evalsha"]["calls"])


def test_redis_killed_is_restarted_and_every_job_ends_done(
        serve_factory: Any, image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=2)
    url = image_server.add("/heal/kill.jpg", jpeg(1280, 720, (200, 90, 30)))
    rendering, queued = _rendering_and_queued(serve, url)
    pid = _redis_pid(serve)
    with _Caller(serve, rendering[0], url) as caller:
        os.kill(pid, signal.SIGKILL)

        def back() -> bool:  # a new server on the same port answers the API again
            try:
                new = _redis_pid(serve)
            except (OSError, ValueError):  # being written
                return False
            return new != pid and bool(alive([new])) and serve.get("/health").status_code == 200

        eventually(back, timeout=10, interval=0.1, what="a new Redis server behind the API")
        assert not alive([pid])  # the dead server was reaped, not left defunct
        since = len(caller.answers)
        eventually(lambda: {name for name, code, _, _ in caller.answers[since:]
                            if code in (200, 202)},
                   until=lambda answered: answered == {"status", "health", "submit"},
                   what="every kind of call answered again after the restart")
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
    try:
        while True:
            log = open(tmp_path / f"worker{kills}.log", "w")
            worker = subprocess.Popen([zoomreel_script(), "worker", "--threads", "1"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
            # until it renders the job (kill it), or the job has ended
            job = eventually(partial(_job_of, submitter, job_id, worker, Path(log.name)),
                             until=lambda job, pid=worker.pid: job.status == "error" or (
                                 job.status == "running" and job.pid == pid),
                             timeout=60, interval=0.02, what="the worker to render the job")
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


def _job_of(service: JobService, job_id: str, worker: subprocess.Popen[bytes],
            log: Path) -> Job:
    """The job's record, while the worker lives and the job has not been rendered."""
    job = service.get(job_id)
    assert job.status != "done"
    assert worker.poll() is None, log.read_text()
    return job


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


class _Flaky:
    """A loopback route that answers ``status`` to its first request, then ``body``."""

    def __init__(self, server: LoopbackServer, path: str, status: int, body: bytes,
                 ctype: str) -> None:
        self.calls = 0
        self.path = path

        def answer(handler: Any) -> None:
            self.calls += 1
            if self.calls == 1:
                send(handler, status, b"not now", Content_Type="text/plain")
            else:
                send(handler, 200, body, Content_Type=ctype)

        server.routes[path] = answer
        self.url = server.url(path)


def _held_by_a_delay_consumer(client: redis.Redis, queue: str, job_id: str) -> bool:
    """Whether a delayed message of ``job_id``, its time still to come, has been fetched
    by a worker's delay-queue consumer (it sits in the consumer thread's memory)."""
    delay_queue = f"dramatiq:{queue}.DQ"
    held: set[bytes] = set()
    for key in client.scan_iter(match=f"dramatiq:__acks__.*.{queue}.DQ"):
        held |= set(client.smembers(key))
    now_ms = time.time() * 1000
    for message_id, raw in client.hgetall(delay_queue + ".msgs").items():
        message = json.loads(raw)
        if message["args"] == [job_id] and message_id in held:
            return bool(message["options"]["eta"] > now_ms)
    return False


def test_redis_refusing_writes_for_4_s_strands_no_render_retry_nor_webhook_retry(
        image_server: LoopbackServer, tmp_path: Path) -> None:
    """Redis refuses writes (NOREPLICAS, as MISCONF when its disk fills) while a render
    retry and a webhook retry wait in the delay queues: both go on once it accepts
    writes again, without a restart."""
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = JobSettings(data_dir=tmp_path, allow_private_urls=True)
    submitter = JobService.connect(url, settings, embedded=False, answer=lambda job, n: {})
    admin = redis.Redis.from_url(url)
    good = image_server.add("/heal/refused.jpg", jpeg(320, 180, (40, 160, 90)))
    image = _Flaky(image_server, "/heal/refused-503.jpg", 503, jpeg(320, 180), "image/jpeg")
    hook = _Flaky(image_server, "/heal/refused-hook", 500, b"ok", "text/plain")
    env = {**os.environ, "ZOOMREEL_REDIS_URL": url, "ZOOMREEL_DATA_DIR": str(tmp_path),
           "ZOOMREEL_ALLOW_PRIVATE_URLS": "1"}
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([zoomreel_script(), "worker", "--threads", "1"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        hooked = submitter.submit({"image_url": good, "webhook_url": hook.url, **SMALL})[0].id
        eventually(lambda: _held_by_a_delay_consumer(admin, "webhooks", hooked), timeout=90,
                   what="the webhook's retry held by the webhooks.DQ consumer")
        retried = submitter.submit({"image_url": image.url, **SMALL})[0].id
        eventually(lambda: _held_by_a_delay_consumer(admin, "render", retried), timeout=60,
                   what="the render's retry held by the render.DQ consumer")
        admin.config_set("min-replicas-to-write", 1)
        try:
            with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
                admin.set("zoomreel:probe", "1")  # writes are refused now
            refused = time.monotonic()
            eventually(lambda: "NOREPLICAS" in (tmp_path / "worker.log").read_text(),
                       timeout=30, what="the worker's consumers to meet the refusal")
            time.sleep(max(0.0, 4 - (time.monotonic() - refused)))  # the refusal lasts 4 s
        finally:
            admin.config_set("min-replicas-to-write", 0)
        recovered = time.monotonic()
        job = eventually(lambda: submitter.get(retried), timeout=60, interval=0.2,
                         until=lambda job: job.status in ("done", "error"),
                         what="the retried render to end")
        assert job.status == "done", job.error
        assert image.calls == 2
        hooked_job = eventually(lambda: submitter.get(hooked), timeout=60, interval=0.2,
                                until=lambda job: job.webhook and job.webhook["state"]
                                != "pending", what="the webhook's retry to be delivered")
        assert hooked_job.webhook is not None
        assert hooked_job.webhook["state"] == "delivered", hooked_job.webhook
        assert hook.calls == 2
        assert time.monotonic() - recovered < 60
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        admin.close()
        submitter.close()
        server.stop()
