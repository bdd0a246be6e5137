"""A real S3 API on loopback for the tests: moto's standalone server.

MinIO's server is not on PyPI and Debian packages no S3 server that runs alone (radosgw
needs a Ceph cluster; its rclone is older than ``rclone serve s3``), so the tests use
moto's server (``moto[server]``, Apache-2.0): the S3 REST API over real HTTP, multipart
uploads, presigned URLs, Range, errors as AWS answers them. It runs in the test process
(its state lives there, so it can be stopped and started again on the same port, as an
outage), or as a ``moto_server`` subprocess that checks credentials.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import requests
from loopback import free_port
from moto.server import ThreadedMotoServer
from service_helpers import SMALL, Serve, ServeFactory, Worker, jpeg, serve_and_workers
from waiting import eventually

#: Credentials the test server takes (moto checks none unless told to).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "zoomreel-test", "AWS_SECRET_ACCESS_KEY": "zoomreel-test"}
REGION = "us-east-1"


class MotoS3:
    """moto's S3 server in this process, on a loopback port; :meth:`stop` and
    :meth:`start` again keep the port and every bucket."""

    def __init__(self) -> None:
        self.port = 0
        self.server: ThreadedMotoServer | None = None

    def start(self) -> MotoS3:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Stop answering and close the port: connections are refused, as when the
        storage's machine is down."""
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()  # moto leaves it open
            self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = "zr-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", ()))

    def env(self, bucket: str, **more: str) -> dict[str, str]:
        """The environment of a zoomreel process that stores in ``bucket``."""
        return {**CREDENTIALS, "ZOOMREEL_S3_BUCKET": bucket,
                "ZOOMREEL_S3_ENDPOINT_URL": self.endpoint, "ZOOMREEL_S3_REGION": REGION,
                **more}


# -- the service's side -----------------------------------------------------------------

#: No profile of this machine's may lend credentials: each test says where they come from.
NO_PROFILES = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
DOWNLOAD = "/v1/storage/download/"


@contextmanager
def machines(root: Path, redis_url: str, s3: MotoS3, serve_factory: ServeFactory,
             **env: str) -> Iterator[tuple[Serve, list[Worker], str]]:
    """Three "machines" sharing only Redis and a new bucket, each with a data dir of its
    own under ``root``: the API's serve (no render threads) and two ``zoomreel worker``
    processes, with ``env`` besides. Yields (serve, the workers, the bucket); the
    workers are killed after."""
    bucket = s3.bucket()
    env = {**os.environ, **NO_PROFILES, **s3.env(bucket), "ZOOMREEL_ALLOW_PRIVATE_URLS": "1",
           **env}
    with serve_and_workers(serve_factory, root / "api", [root / "worker1", root / "worker2"],
                           redis_url, env) as (api, workers):
        yield api, workers, bucket


def done_result(api: Serve, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The inner response of a job that ended done (fails showing the answer if not)."""
    answer = api.wait(job_id, timeout=timeout)
    assert answer["response"]["job_status"] == "done", answer
    return dict(answer["response"]["response"])


def upload(api: Serve) -> str:
    """Submit a job by multipart upload; its id."""
    r = api.post("/v1/image/convert/video", data={k: str(v) for k, v in SMALL.items()},
                 files={"image": ("photo.jpg", jpeg(320, 180, (40, 40, 200)), "image/jpeg")})
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


class CheckingS3:
    """A ``moto_server`` subprocess that checks credentials (moto's
    ``INITIAL_NO_AUTH_ACTION_COUNT=0``): it knows no access key, so it refuses all."""

    def __init__(self) -> None:
        self.port = free_port()
        script = Path(sys.executable).parent / "moto_server"
        self.proc = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: requests.get(self.endpoint, timeout=2).status_code, timeout=60,
                   ignoring=(requests.ConnectionError,), what="moto_server to answer")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
