"""Shared fixtures: a real Redis server, a loopback image server, ``zoomreel serve``.

Everything is real: the Redis server is started here with the embedded launcher on a
free port in a temporary folder (never the machine's 6379), images are served over
loopback HTTP, and the service runs as a subprocess the tests talk to with requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import settings
from loopback import LoopbackServer
from service_helpers import Serve

from zoomreel.jobs import EmbeddedRedis

# Hypothesis fails an example that takes over 200 ms of wall time; on a shared 2-core
# machine running three test processes a plain RenderSpec check sometimes does. Speed is
# measured in benchmarks/, not asserted here.
settings.register_profile("zoomreel", deadline=None)
settings.load_profile("zoomreel")

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
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """Start ``zoomreel serve`` subprocesses; every one is stopped after the test."""
    started: list[Serve] = []

    def start(data_dir: Path | None = None, **kwargs: Any) -> Serve:
        serve = Serve(data_dir or tmp_path / f"data{len(started)}", **kwargs)
        started.append(serve)
        return serve.start()

    yield start
    for serve in started:
        serve.kill9()
