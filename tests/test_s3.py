"""The service with S3-compatible storage: ``zoomreel serve`` as a subprocess against
moto's S3 server on loopback (s3server.py), and the job system in process for retention.

Each test makes its own bucket; videos and uploads must be found in the bucket, links
fetched by plain HTTP, and every failure of the storage named in what the user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from loopback import LoopbackServer, free_port, send
from s3server import (
    CREDENTIALS,
    DOWNLOAD,
    NO_PROFILES,
    REGION,
    CheckingS3,
    MotoS3,
    done_result,
    files_in,
    upload,
)
from service_helpers import SMALL, Serve, ServeFactory, jpeg, probe, zoomreel_script
from waiting import eventually

from zoomreel.errors import JobNotFound
from zoomreel.frontends.rest import Answers
from zoomreel.jobs import JobService, JobSettings
from zoomreel.storage import S3Storage

pytestmark = pytest.mark.system


def _with_poster(filename: str) -> list[str]:
    """A finished video's file name and its poster's, sorted (the poster first)."""
    return sorted([filename, filename.rsplit(".", 1)[0] + ".jpg"])


def image_url(image_server: LoopbackServer) -> str:
    return image_server.add(f"/s3-{uuid.uuid4().hex}.jpg", jpeg(320, 180, (30, 160, 60)))


def test_videos_by_url_and_by_upload_are_stored_in_the_bucket(
        serve_factory: ServeFactory, s3: MotoS3, image_server: LoopbackServer) -> None:
    bucket = s3.bucket()
    api = serve_factory(env={**NO_PROFILES, **s3.env(bucket, ZOOMREEL_S3_PREFIX="zr/")},
                        workers=1)
    assert api.get("/health").json()["storage"] == {"backend": "s3", "ok": True}
    # the page's <video> may play the bucket's links (its policy names their origin)
    policy = requests.get(api.url + "/", timeout=30).headers["Content-Security-Policy"]
    assert f"media-src 'self' blob: {s3.endpoint};" in policy
    jobs = [api.submit(image_url=image_url(image_server), **SMALL), upload(api)]
    names = []
    for job_id in jobs:
        result = done_result(api, job_id)
        name = result["filename"]
        names.append(name)
        link = result["download_url"]  # presigned: fetched with no key at all
        assert link.startswith(f"{s3.endpoint}/{bucket}/zr/videos/{name}?X-Amz-"), link
        video = requests.get(link, timeout=30)
        assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
        assert probe(video.content)["frames"] == 15
        part = requests.get(link, headers={"Range": "bytes=100-199"}, timeout=30)
        assert part.status_code == 206 and part.content == video.content[100:200]
        # the download route serves it too, from the bucket (nothing in the data dir)
        routed = api.get(DOWNLOAD + name)
        assert routed.status_code == 200 and routed.content == video.content
        assert routed.headers["Content-Type"] == "video/mp4"
        ranged = api.get(DOWNLOAD + name, headers={**api.headers, "Range": "bytes=-50"})
        assert ranged.status_code == 206 and ranged.content == video.content[-50:]
        assert ranged.headers["Content-Range"] == (
            f"bytes {len(video.content) - 50}-{len(video.content) - 1}/{len(video.content)}")
        head = requests.head(api.url + DOWNLOAD + name, headers=api.headers, timeout=30)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(
            video.content)
        etag = routed.headers["ETag"]
        assert api.get(DOWNLOAD + name, headers={**api.headers, "If-None-Match": etag},
                       ).status_code == 304
        stored = s3.client().head_object(Bucket=bucket, Key=f"zr/videos/{name}")
        assert stored["ContentType"] == "video/mp4"
    # the uploaded image is gone from the bucket once its job ended; no video is local
    eventually(lambda: s3.keys(bucket), until=lambda keys: keys == sorted(
        f"zr/videos/{n}" for name in names for n in _with_poster(name)),
        what="only the two videos (and their posters) in the bucket")
    assert files_in(api.data_dir / "videos") == files_in(api.data_dir / "work") == []
    assert files_in(api.data_dir / "uploads") == []


def test_the_public_url_form_and_webhooks_carry_the_same_link(
        serve_factory: ServeFactory, s3: MotoS3, image_server: LoopbackServer) -> None:
    bucket = s3.bucket()
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    hook = f"/hook-{uuid.uuid4().hex}"
    image_server.routes[hook] = lambda handler: send(handler, 204)
    api = serve_factory(env={**NO_PROFILES, **s3.env(
        bucket, ZOOMREEL_S3_PUBLIC_URL=f"{s3.endpoint}/{bucket}")}, workers=1)
    job_id = api.submit(image_url=image_url(image_server), webhook_url=image_server.url(hook),
                        **SMALL)
    result = done_result(api, job_id)
    assert result["download_url"] == f"{s3.endpoint}/{bucket}/videos/{result['filename']}"
    assert probe(requests.get(result["download_url"], timeout=30).content)["frames"] == 15
    delivered = eventually(lambda: image_server.received(hook, "POST"),
                           what="the webhook's delivery")
    body = json.loads(delivered[0].body)
    assert body["response"]["response"]["download_url"] == result["download_url"]


def test_the_upstream_toolkits_variables_are_read(
        tmp_path: Path, s3: MotoS3, image_server: LoopbackServer) -> None:
    """Its names alone (no AWS_* variable, no profile): had the credentials not come
    from S3_ACCESS_KEY/S3_SECRET_KEY, the start-up check would have failed."""
    bucket = s3.bucket()
    api = Serve(tmp_path / "data", workers=1, env={
        **NO_PROFILES, "S3_ENDPOINT_URL": s3.endpoint, "S3_BUCKET_NAME": bucket,
        "S3_REGION": REGION, "S3_ACCESS_KEY": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "S3_SECRET_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
    for name in [*CREDENTIALS, "AWS_PROFILE", "AWS_SESSION_TOKEN"]:
        api.env.pop(name, None)
    try:
        api.start()
        result = done_result(api, api.submit(image_url=image_url(image_server), **SMALL))
        assert s3.keys(bucket) == [f"videos/{n}" for n in _with_poster(result["filename"])]
        assert result["download_url"].startswith(f"{s3.endpoint}/{bucket}/videos/")
    finally:
        api.kill9()


def test_links_of_jobs_made_before_the_storage_changed(
        serve_factory: ServeFactory, s3: MotoS3, image_server: LoopbackServer,
        tmp_path: Path) -> None:
    data = tmp_path / "data"  # one data dir (and its embedded Redis) throughout
    local = serve_factory(data, workers=1)
    old = local.submit(image_url=image_url(image_server), **SMALL)
    old_link = done_result(local, old)["download_url"]
    assert local.stop() == 0
    bucket = s3.bucket()
    remote = serve_factory(data, env={**NO_PROFILES, **s3.env(bucket)}, workers=1)
    # the video rendered into the data dir still downloads: by the old signed link, and
    # by the link its job's status gives now
    now_link = remote.status(old)["response"]["response"]["download_url"]
    assert now_link.startswith(remote.url + DOWNLOAD)
    for link in (remote.url + old_link[len(local.url):], now_link):
        got = requests.get(link, timeout=30)
        assert got.status_code == 200 and probe(got.content)["frames"] == 15
    new = remote.submit(image_url=image_url(image_server), **SMALL)
    new_name = done_result(remote, new)["filename"]
    assert remote.stop() == 0
    # back to the data dir alone: a video kept in the bucket is a clear 404, never a 500
    again = serve_factory(data, workers=1)
    link = again.status(new)["response"]["response"]["download_url"]
    assert link.startswith(again.url + DOWNLOAD + new_name + "?")
    for answer in (requests.get(link, timeout=30), again.get(DOWNLOAD + new_name)):
        assert answer.status_code == 404
        assert answer.json() == {"error": "File not found", "filename": new_name}


def test_nothing_is_lost_while_the_storage_is_down(
        serve_factory: ServeFactory, s3_outage: MotoS3, image_server: LoopbackServer) -> None:
    bucket = s3_outage.bucket()
    api = serve_factory(env={**NO_PROFILES, **s3_outage.env(bucket)}, workers=1)
    s3_outage.stop()
    job_id = api.submit(image_url=image_url(image_server), **SMALL)
    eventually(lambda: any("storing the video failed" in line for line in api.lines),
               timeout=120, what="an upload that failed (the log says so)")
    assert api.status(job_id)["response"]["job_status"] == "running"
    storage = eventually(lambda: api.get("/health").json()["storage"],
                         until=lambda state: not state["ok"], timeout=30,
                         what="/health to report the storage down")
    assert storage["backend"] == "s3" and "unreachable" in storage["error"]
    s3_outage.start()  # same port, same buckets
    result = done_result(api, job_id, timeout=120)  # uploaded from the kept file
    assert probe(requests.get(result["download_url"], timeout=30).content)["frames"] == 15
    assert sum("render started" in line for line in api.lines) == 1  # never rendered again
    assert files_in(api.data_dir / "work") == []
    eventually(lambda: api.get("/health").json()["storage"]["ok"], timeout=30,
               what="/health to report the storage back")


def test_a_bucket_that_refuses_ends_the_job_error_naming_it(
        serve_factory: ServeFactory, s3: MotoS3, image_server: LoopbackServer) -> None:
    bucket = s3.bucket()
    api = serve_factory(env={**NO_PROFILES, **s3.env(bucket, ZOOMREEL_S3_RETRY_SECONDS="3")},
                        workers=1)
    s3.client().delete_bucket(Bucket=bucket)  # after serve's check: refused from now on
    job_id = api.submit(image_url=image_url(image_server), **SMALL)
    answer = api.wait(job_id, timeout=120)["response"]
    assert answer["job_status"] == "error"
    assert answer["error"].startswith(f"S3 bucket '{bucket}' at {s3.endpoint}: "), answer
    assert "no such bucket" in answer["error"]
    assert files_in(api.data_dir / "work") == []  # the rendered file is not left behind
    # an upload cannot be stored either: 503 naming the cause, and no job is made
    r = api.post("/v1/image/convert/video", data={"length": "1"},
                 files={"image": ("p.jpg", jpeg(), "image/jpeg")})
    assert r.status_code == 503 and "no such bucket" in r.json()["message"], r.text
    assert r.headers["Retry-After"] == "5"
    states = api.post("/v1/toolkit/jobs/status", json={"since_seconds": 3600}).json()
    assert list(states["response"]) == [job_id]


@pytest.mark.parametrize("case", ["no bucket", "refused credentials", "unreachable"])
def test_serve_and_worker_check_the_bucket_at_start(
        case: str, s3: MotoS3, redis_url: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    bucket, endpoint, cause = "zr-none-such", s3.endpoint, "no such bucket"
    if case == "refused credentials":
        checking: CheckingS3 = request.getfixturevalue("s3_checking")
        bucket, endpoint = s3.bucket(), checking.endpoint
        cause = "the credentials were refused"
    elif case == "unreachable":
        endpoint, cause = f"http://127.0.0.1:{free_port()}", "unreachable"
    env = {**os.environ, **NO_PROFILES, **CREDENTIALS, "ZOOMREEL_S3_BUCKET": bucket,
           "ZOOMREEL_S3_ENDPOINT_URL": endpoint, "ZOOMREEL_S3_REGION": REGION}
    env.pop("ZOOMREEL_REDIS_URL", None)
    for command in (["serve", "--port", "0"], ["worker", "--redis-url", redis_url]):
        data = tmp_path / command[0]
        run = subprocess.run([zoomreel_script(), *command, "--data-dir", str(data)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: S3 bucket '{bucket}' at {endpoint}: checking the bucket: "), run.stderr
        assert cause in lines[0]
        # nothing was started or made: no Redis files, no key, no link secret
        assert not (data / "redis").exists() and not (data / "api_key").exists()
        assert not (data / "url_secret").exists()


def test_retention_deletes_videos_from_the_bucket(
        redis_url: str, s3: MotoS3, tmp_path: Path, image_server: LoopbackServer) -> None:
    bucket = s3.bucket()
    storage = S3Storage(bucket, scratch=tmp_path / "work", endpoint_url=s3.endpoint,
                        region=REGION, access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    settings = JobSettings(data_dir=tmp_path, allow_private_urls=True, retention_s=3600)
    service = JobService(redis.Redis.from_url(redis_url), settings, embedded=True,
                         answer=Answers().status, storage=storage)
    service.start_workers(render_threads=1, webhook_threads=0)
    try:
        job, _ = service.submit({"image_url": image_url(image_server), **SMALL})
        done = eventually(lambda: service.get(job.id), until=lambda j: j.status == "done",
                          timeout=120, what="the job to be done")
        assert done.storage == "s3" and s3.keys(bucket) == [
            f"videos/{n}" for n in _with_poster(done.filename)]
        assert service.sweep_expired(now=time.time() + 1800) == 0  # not old enough yet
        assert s3.keys(bucket) == [f"videos/{n}" for n in _with_poster(done.filename)]
        assert service.sweep_expired(now=time.time() + 7200) == 1
        assert s3.keys(bucket) == []
        with pytest.raises(JobNotFound):
            service.get(job.id)
    finally:
        service.stop_workers()
        service.close()
