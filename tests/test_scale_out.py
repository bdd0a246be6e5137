"""Many machines, no shared disk: one Redis, one ``zoomreel serve --render-threads 0`` and
two ``zoomreel worker`` processes, each with its own data dir, sharing nothing but Redis
and an S3 bucket (moto's server on loopback, s3server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from s3server import DOWNLOAD, MotoS3, done_result, files_in, machines, upload
from service_helpers import SMALL, Serve, ServeFactory, Worker, jpeg, probe
from waiting import eventually

pytestmark = pytest.mark.system


@pytest.fixture
def three(tmp_path: Path, redis_url: str, s3: MotoS3, serve_factory: ServeFactory,
          ) -> Iterator[tuple[Serve, list[Worker], str]]:
    """(the API's serve, the two workers, the bucket): three "machines"."""
    with machines(tmp_path, redis_url, s3, serve_factory, ZOOMREEL_LEASE_SECONDS="3") as made:
        yield made


def test_jobs_run_on_workers_that_share_only_redis_and_the_bucket(
        three: tuple[Serve, list[Worker], str], s3: MotoS3,
        image_server: LoopbackServer) -> None:
    api, workers, bucket = three
    urls = [image_server.add(f"/far-{uuid.uuid4().hex}.jpg", jpeg(320, 180, (200, 40, 40)))
            for _ in range(2)]
    jobs = [api.submit(image_url=url, **SMALL) for url in urls] + [upload(api), upload(api)]
    results: dict[str, dict[str, Any]] = {job_id: done_result(api, job_id) for job_id in jobs}
    pids = {worker.pid for worker in workers}
    for job_id, result in results.items():
        assert api.status(job_id)["response"]["process_id"] in pids  # a worker rendered it
        assert sum(worker.renders_of(job_id) for worker in workers) == 1  # exactly once
        through_api = api.get(DOWNLOAD + result["filename"])
        assert through_api.status_code == 200 and probe(through_api.content)["frames"] == 15
        direct = requests.get(result["download_url"], timeout=30)
        assert direct.status_code == 200 and direct.content == through_api.content
    assert s3.keys(bucket, "videos/") == sorted(  # each video and its poster
        f"videos/{name}" for result in results.values()
        for name in (result["filename"], result["filename"].rsplit(".", 1)[0] + ".jpg"))
    # nothing went through a disk: not the API's (uploads), not the workers' (videos)
    for data_dir in (api.data_dir, *(worker.data_dir for worker in workers)):
        assert [p for p in files_in(data_dir) if p.suffix in (".mp4", ".img")] == []


def test_a_worker_killed_mid_render_leaves_its_job_to_the_other(
        three: tuple[Serve, list[Worker], str], image_server: LoopbackServer) -> None:
    api, workers, _ = three
    url = image_server.add(f"/long-{uuid.uuid4().hex}.jpg", jpeg(1280, 720, (90, 90, 200)))
    job_id = api.submit(image_url=url, length=30, frame_rate=30, width=1280, height=720)
    running = eventually(lambda: api.status(job_id)["response"], timeout=120,
                         until=lambda r: r["job_status"] == "running"
                         and r["progress"]["frames_done"] > 0,
                         what="the long job to be rendering")
    first = next(w for w in workers if w.pid == running["process_id"])
    other = next(w for w in workers if w is not first)
    first.kill9()
    result = done_result(api, job_id, timeout=300)
    assert api.status(job_id)["response"]["process_id"] == other.pid
    assert other.renders_of(job_id) == 1
    video = requests.get(result["download_url"], timeout=60)
    assert probe(video.content)["frames"] == 900
