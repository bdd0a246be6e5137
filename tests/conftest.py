"""Shared fixtures: a real Redis server, a loopback image server, an S3 server,
``zoomreel serve``.

Everything is real: the Redis server is started here with the embedded launcher on a
free port in a temporary folder (never the machine's 6379), images are served over
loopback HTTP, and the service runs as a subprocess the tests talk to with requests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings
from loopback import LoopbackServer
from s3server import CheckingS3, MotoS3
from service_helpers import ServeFactory

from zoomreel.jobs import EmbeddedRedis
from zoomreel.realtime import realtime_threads

# Hypothesis fails an example that takes over 200 ms of wall time; on a shared 2-core
# machine running three test processes a plain RenderSpec check sometimes does. Speed is
# measured in benchmarks/, not asserted here.
settings.register_profile("zoomreel", deadline=None)
settings.load_profile("zoomreel")


@pytest.fixture(autouse=True)
def no_thread_left_real_time() -> Iterator[None]:
    """A test that leaves a thread of this test process in a real-time scheduling class
    fails here: every process started from such a thread inherits the class, and a
    busy one starves the machine (Chromium at SCHED_FIFO 99, after this process had
    rendered AV1, once hung CI for 20 minutes)."""
    before = realtime_threads()
    yield
    left = realtime_threads() - before
    assert not left, f"threads {sorted(left)} of pid {os.getpid()} were left real-time"


# -- Redis -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server for the whole session (the embedded launcher, free port)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


# -- images over loopback HTTP --------------------------------------------------------

@pytest.fixture(scope="session")
def image_server() -> Iterator[LoopbackServer]:
    """Loopback HTTP server for test images (and webhook receivers)."""
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start ``zoomreel serve`` subprocesses; every one is killed after the test."""
    factory = ServeFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_serve_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeFactory]:
    """``serve_factory`` for a service shared by a module's tests (its ``api`` fixture);
    every one is killed after the module."""
    factory = ServeFactory(tmp_path_factory.mktemp("serve"))
    yield factory
    factory.close()


# -- S3-compatible storage ---------------------------------------------------------------

@pytest.fixture(scope="session")
def s3() -> Iterator[MotoS3]:
    """A real S3 API on loopback for the whole session (moto's server, see s3server.py);
    each test makes its own buckets (``s3.bucket()``)."""
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_outage() -> Iterator[MotoS3]:
    """An S3 server of this test's own, to stop and start again."""
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_checking() -> Iterator[CheckingS3]:
    """An S3 server that refuses every credential."""
    server = CheckingS3()
    yield server
    server.close()
