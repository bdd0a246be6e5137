"""Shared fixtures: a real Redis server, a loopback image server, an S3 server,
``zoomreel serve``.

Everything is real: the Redis server is started here with the embedded launcher on a
free port in a temporary folder (never the machine's 6379), images are served over
loopback HTTP, and the service runs as a subprocess the tests talk to with requests.

Every test has one tier, a marker (registered in pyproject.toml): ``unit`` runs in this
process only, ``system`` starts processes (Redis, serve, an S3 server), ``browser`` drives
Chromium and is ``system`` too. The hooks below keep the tiers honest: a test without a
tier is an error, and a unit test that starts a process fails.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings
from loopback import LoopbackServer
from s3server import CheckingS3, MotoS3
from service_helpers import Serve, ServeFactory, jpeg

from zoomreel.jobs import EmbeddedRedis
from zoomreel.realtime import realtime_threads

# Hypothesis fails an example that takes over 200 ms of wall time; on a shared 2-core
# machine running three test processes a plain RenderSpec check sometimes does. Speed is
# measured in benchmarks/, not asserted here.
settings.register_profile("zoomreel", deadline=None)
settings.load_profile("zoomreel")


def pytest_configure(config: pytest.Config) -> None:
    """With several test processes (``pytest -n N``), compile the Numba kernels once, here,
    before they start (warmup.py): they load them instead of each compiling its own."""
    workers = config.getoption("numprocesses", default=None)
    if workers and not hasattr(config, "workerinput"):
        from warmup import compile_kernels

        compile_kernels()


# -- tiers ---------------------------------------------------------------------------

TIERS = ("unit", "system")
#: Fixtures that start a process (or moto's server): a unit test may use none of them,
#: even one a session-scoped fixture has started already.
PROCESS_FIXTURES = {"redis_server", "serve_factory", "module_serve_factory", "s3",
                    "s3_outage", "s3_checking"}
NO_PROCESS = "unit tests start no processes: mark it system"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
        collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module with a test of no tier, of two, or a unit test using a fixture that starts
    a process, fails to collect: the run fails, whatever ``-m`` selects (an untiered test
    would otherwise be in no tier, and silently never run)."""
    report = yield
    wrong = [problem for item in (report.result if report.passed else [])
             if isinstance(item, pytest.Item) and (problem := _tier_problem(item))]
    if wrong:
        report.outcome = "failed"
        report.longrepr = ("every test has exactly one tier, pytest.mark.unit or "
                           "pytest.mark.system (tests/conftest.py):\n  " + "\n  ".join(wrong))
    return report


def _tier_problem(item: pytest.Item) -> str:
    tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
    if len(tiers) != 1:
        return f"{item.name}: marked {' and '.join(tiers) or 'with no tier'}"
    if item.get_closest_marker("browser") and tiers != ["system"]:
        return f"{item.name}: a browser test is a system test"
    if "browser" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("browser"):
        return f"{item.name}: drives Chromium: mark it browser (and system)"
    used = PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))
    if tiers == ["unit"] and used:
        return f"{item.name}: uses {', '.join(sorted(used))}: {NO_PROCESS}"
    return ""


def _refuse(name: str, started: list[str], command: int = 0) -> Callable[..., object]:
    """A stand-in for ``name`` that records and refuses the call; the ``command``-th
    argument (what would run) is shown."""
    def refused(*args: object, **kwargs: object) -> object:
        what = f"{name}({args[command]!r:.80})" if len(args) > command else name
        started.append(what)  # failed after the call too, in case something catches it
        raise RuntimeError(f"{NO_PROCESS}: {what}")
    return refused


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _no_process(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _no_process(item))


def _no_process(item: pytest.Item) -> Generator[None, None, None]:
    """Around a unit test's setup (its fixtures, of any scope) and its call: every way
    Python starts a process fails (subprocess, multiprocessing, os.fork, os.system...),
    and the test fails even if the code under test caught that."""
    if not item.get_closest_marker("unit"):
        return (yield)
    started: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        # Popen fails where it would fork, after its checks, closing its pipes; and
        # multiprocessing's spawn goes through fork_exec.
        patch.setattr(subprocess.Popen, "_execute_child", _refuse("subprocess.Popen", started, 1))
        patch.setattr(_posixsubprocess, "fork_exec", _refuse("fork_exec", started))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen"):
            if hasattr(os, name):
                patch.setattr(os, name, _refuse(f"os.{name}", started))
        result = yield
    if started:
        pytest.fail(f"{NO_PROCESS}: it tried {', '.join(started)}", pytrace=False)
    return result


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


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, module_serve_factory: ServeFactory) -> Serve:
    """One ``zoomreel serve`` for a module's tests, started with the module's
    ``SERVE_OPTIONS`` (:class:`Serve`'s options: two render threads if it gives none)."""
    return module_serve_factory(**getattr(request.module, "SERVE_OPTIONS", {}))


@pytest.fixture(scope="module")
def photo_url(request: pytest.FixtureRequest, image_server: LoopbackServer) -> str:
    """A solid-colour JPEG for a module's tests, on the loopback server at a path of the
    module's own; the module's ``PHOTO`` gives :func:`jpeg`'s arguments (320x180 if not)."""
    name = request.module.__name__.removeprefix("test_")
    return image_server.add(f"/{name}/photo.jpg", jpeg(**getattr(request.module, "PHOTO", {})))


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
