"""A full disk is reported as such: uploads answered 507 with nothing left behind, renders
retried and then failed naming the disk (or done once space is freed), /health saying
so, and Redis refusing writes for a full disk (MISCONF) called "disk full".

Every disk here is a real tmpfs of 8 MiB mounted for the test and filled to the last
byte (the tests are skipped, saying why, where mounting is not allowed; CI runs as
root). Real Redis servers, a real ``zoomreel serve``, real encodes.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import SMALL, jpeg
from waiting import eventually

from zoomreel.errors import DiskFullError
from zoomreel.jobs import EmbeddedRedis, Job, JobService, JobSettings
from zoomreel.jobs.keys import Keys
from zoomreel.jobs.render_task import DISK_FULL

pytestmark = pytest.mark.system


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 8 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its disk has no byte left; returns the file."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with open(filler, "ab", buffering=0) as f:  # the last partial chunk
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def _ended(service: JobService, job_id: str, timeout: float = 120) -> Job:
    return eventually(lambda: service.get(job_id), until=lambda job: job.status in (
        "done", "error"), timeout=timeout, interval=0.2, what=f"job {job_id} to end")


def test_a_full_video_disk_fails_uploads_cleanly_and_retries_renders_naming_it(
        small_disk: Path, tmp_path: Path, image_server: LoopbackServer) -> None:
    server = EmbeddedRedis(tmp_path / "redis")  # Redis on another disk: it takes writes
    url = server.start()
    settings = JobSettings(data_dir=small_disk, allow_private_urls=True, transient_retries=2)
    service = JobService.connect(url, settings, embedded=False, answer=lambda job, n: {})
    image = image_server.add("/disk/full.jpg", jpeg(320, 180, (220, 120, 30)))
    try:
        settings.upload_dir.mkdir(parents=True)
        filler = _fill(small_disk)
        with pytest.raises(DiskFullError, match="disk holding the uploads is full"):
            service.submit(dict(SMALL), upload=jpeg(640, 360))
        assert list(settings.upload_dir.iterdir()) == []  # no partial file left
        assert service.states_since(3600) == {}  # and no job
        health = service.health()
        assert health["disk_full"] is True and health["status"] == "disk_full", health
        assert health["disk_free_bytes"] < 1024 * 1024

        service.start_workers(render_threads=1, webhook_threads=0)
        failing = service.submit({"image_url": image, **SMALL})[0].id
        job = _ended(service, failing)
        assert job.status == "error"
        assert job.error is not None and job.error.startswith(DISK_FULL), job.error
        assert job.error_code == 500
        assert job.attempts == settings.transient_retries + 1  # it was retried first
        assert not list(settings.storage_dir.glob(".*.part"))  # no partial video

        freed = service.submit({"image_url": image, **SMALL})[0].id
        eventually(lambda: service.get(freed), timeout=60, interval=0.1,
                   until=lambda job: job.attempts >= 1, what="a first retry")
        why = service.client.hget(Keys().job(freed), "last_error") or b""
        assert why.decode().startswith(DISK_FULL), why
        filler.unlink()
        job = _ended(service, freed)
        assert job.status == "done", job.error
        assert (settings.storage_dir / job.filename).stat().st_size > 0
        assert service.health()["disk_full"] is False
    finally:
        service.stop_workers()
        service.close()
        server.stop()


def _submit(serve: Any, **fields: Any) -> requests.Response:
    return requests.post(serve.url + "/v1/image/convert/video", headers=serve.headers,
                         json=fields, timeout=30)


def test_a_full_data_dir_under_serve_answers_507_and_says_disk_full(
        small_disk: Path, serve_factory: Any, image_server: LoopbackServer) -> None:
    """serve's data dir (its videos, uploads and Redis's files) on a disk that fills."""
    serve = serve_factory(small_disk, workers=1)
    image = image_server.add("/disk/serve.jpg", jpeg(320, 180, (30, 120, 220)))
    before = _submit(serve, image_url=image, **SMALL)
    assert before.status_code == 202, before.text
    serve.wait(before.json()["job_id"])
    filler = _fill(small_disk)

    upload = requests.post(serve.url + "/v1/image/convert/video", headers=serve.headers,
                           files={"image": ("a.jpg", jpeg(640, 360), "image/jpeg")},
                           data={"length": "1"}, timeout=30)
    assert upload.status_code == 507, upload.text
    assert "disk" in upload.json()["message"] and "full" in upload.json()["message"]
    assert int(upload.headers["Retry-After"]) > 0
    uploads = small_disk / "uploads"
    assert not uploads.is_dir() or list(uploads.iterdir()) == []

    # Redis's log is on that disk too: it refuses writes (MISCONF), which the API names
    accepted = []

    def refused() -> requests.Response:
        answer = _submit(serve, image_url=image, **SMALL)
        if answer.status_code == 202:
            accepted.append(answer.json()["job_id"])
        return answer

    answer = eventually(refused, until=lambda r: r.status_code != 202, timeout=30,
                        interval=0.5, what="a submit refused for the job store's full disk")
    assert answer.status_code == 507, (answer.text, "".join(serve.lines[-15:]))
    assert "job store's disk is full" in answer.json()["message"]
    assert "unreachable" not in answer.json()["message"]
    assert int(answer.headers["Retry-After"]) > 0
    health = serve.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["disk_full"] is True and body["store_disk_full"] is True, body
    assert body["status"] == "disk_full"

    filler.unlink()
    eventually(lambda: _submit(serve, image_url=image, **SMALL),
               until=lambda r: r.status_code == 202, timeout=60, interval=0.5,
               what="submits accepted again once space is freed")
    for job_id in accepted:
        assert serve.wait(job_id, timeout=120)["response"]["job_status"] in ("done", "error")
    assert serve.get("/health").json()["status"] == "ok"
