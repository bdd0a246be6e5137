"""Maintenance of the files the job system keeps: uploads always have a job, and what is
left behind by a killed process is swept (real Redis, real folders)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis
from service_helpers import SMALL, jpeg
from waiting import eventually

from zoomreel.frontends.rest.envelope import Answers
from zoomreel.jobs import JobService, JobSettings
from zoomreel.jobs.broker import OVERDUE_MS, RENDER_QUEUE, carried_job_ids

pytestmark = pytest.mark.system

DAY = 86400.0


@pytest.fixture
def service(redis_url: str, tmp_path: Path) -> Iterator[JobService]:
    """A service without workers: jobs stay queued."""
    client = redis.Redis.from_url(redis_url)
    made = JobService(client, JobSettings(data_dir=tmp_path, allow_private_urls=True),
                      embedded=True, answer=Answers().status)
    yield made
    made.close()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_upload_belongs_to_its_job_from_the_start(service: JobService) -> None:
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    assert job.upload and (service.settings.upload_dir / job.upload).read_bytes() == jpeg()
    assert service.get(job.id).upload == job.upload


def test_an_upload_that_cannot_be_written_leaves_no_job(service: JobService) -> None:
    service.settings.upload_dir.parent.mkdir(parents=True, exist_ok=True)
    service.settings.upload_dir.write_text("a file where the folder should be")
    with pytest.raises(OSError):
        service.submit(dict(SMALL), upload=jpeg())
    assert service.store.active_ids() == [] and service.queue_length() == 0
    assert service.states_since(60) == {}


def test_the_sweep_removes_old_uploads_no_job_owns(service: JobService) -> None:
    job, _ = service.submit(dict(SMALL), upload=jpeg())
    assert job.upload
    owned = service.settings.upload_dir / job.upload
    orphan = service.settings.upload_dir / "0123abcd.img"  # a kill before its job existed
    fresh = service.settings.upload_dir / "4567abcd.img"   # a submit writing right now
    orphan.write_bytes(b"x")
    fresh.write_bytes(b"y")
    _age(orphan, 2 * DAY)
    _age(owned, 2 * DAY)  # waited long in the queue: still its job's
    partial = service.settings.storage_dir / ".video_x.mp4.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"z")
    _age(partial, 2 * DAY)
    service.sweep_expired()
    assert not orphan.exists() and not partial.exists()
    assert owned.exists() and fresh.exists()


def test_a_job_finishes_only_in_a_final_state(service: JobService) -> None:
    job, _ = service.submit({**SMALL, "image_url": "http://127.0.0.1:9/a.jpg"})
    with pytest.raises(ValueError, match="not 'running'"):
        service.store.finish(job.id, "running", {})
    assert service.get(job.id).status == "queued"


def test_only_live_messages_carry_a_job(service: JobService) -> None:
    """What the healing pass trusts, whatever the broker's threads believe: a message in
    the queue, one fetched for a job that has not stalled, one delayed and not overdue."""
    send = service.messages.send_render
    send("fetched")
    consumer = service.broker.consume(RENDER_QUEUE, prefetch=1, timeout=100)
    try:
        message = eventually(lambda: next(consumer), what="the fetch of the first message")
        assert message.args == ("fetched",)  # now in this worker's acknowledgement set
        send("waiting")
        send("delayed", 2_000)
        now = int(time.time() * 1000)
        carried = partial(carried_job_ids, service.client, RENDER_QUEUE)
        assert carried(set(), now) == {"fetched", "waiting", "delayed"}
        # a job stalled for long whose message a worker holds: that worker lost it
        assert carried({"fetched", "waiting"}, now) == {"waiting", "delayed"}
        # a delayed message long past its time: no consumer moves it any more
        assert carried(set(), now + 2_000 + OVERDUE_MS + 1_000) == {"fetched", "waiting"}
    finally:
        consumer.close()
