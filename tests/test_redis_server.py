"""The embedded Redis's pid file: a server an earlier run left on its folder, frozen or
not, is killed before a new one starts there; a process that merely has the pid is not."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from service_helpers import redis_servers_on
from waiting import eventually

from zoomreel.jobs import EmbeddedRedis, find_redis_server
from zoomreel.jobs.redis_server import PID_FILE, serves_folder

pytestmark = pytest.mark.system


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _orphan_redis(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server on ``folder`` started here without a parent-death signal, as one
    that outlived its serve is; yields it and its URL, and kills it after."""
    folder.mkdir(parents=True, exist_ok=True)
    port = _port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(folder.resolve()), "--appendonly", "yes", "--save", "",
         "--daemonize", "no", "--logfile", str((folder / "orphan.log").resolve())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        eventually(lambda: redis.Redis.from_url(url).ping(), timeout=20,
                   ignoring=(redis.ConnectionError,), what="the orphan server to answer")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_frozen_leftover_on_the_folder_is_killed_before_the_new_server_starts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "redis"
    with _orphan_redis(folder) as (orphan, url):
        redis.Redis.from_url(url).set("kept", "yes")
        eventually(lambda: [f for f in folder.rglob("appendonly*")
                            if f.is_file() and b"kept" in f.read_bytes()],
                   timeout=10, what="the write in the append-only file")
        (folder / PID_FILE).write_text(f"{orphan.pid}\n")  # as a killed serve left it
        os.kill(orphan.pid, signal.SIGSTOP)  # frozen: a SIGTERM would wait for SIGCONT
        eventually(lambda: _state(orphan.pid) == "T", timeout=5, what="the orphan to stop")
        server = EmbeddedRedis(folder)
        with caplog.at_level(logging.WARNING, logger="zoomreel.jobs.redis_server"):
            server.start()
        try:
            assert orphan.wait(10) == -signal.SIGKILL
            assert server.process is not None
            assert redis_servers_on(folder) == [server.process.pid]
            assert (folder / PID_FILE).read_text().strip() == str(server.process.pid)
            assert redis.Redis.from_url(server.url).get("kept") == b"yes"
            assert f"redis-server (pid {orphan.pid}, frozen)" in caplog.text
        finally:
            server.stop()
    assert not (folder / PID_FILE).exists()  # a clean stop leaves no stale pid behind


def test_a_stale_pid_of_another_process_is_never_killed(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "ours"
    folder.mkdir()
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # a pid reused by some other program; then by a redis-server on another folder
        with _orphan_redis(tmp_path / "theirs") as (other, _):
            assert serves_folder(other.pid, tmp_path / "theirs")
            for stranger in (unrelated, other):
                assert not serves_folder(stranger.pid, folder)
                (folder / PID_FILE).write_text(f"{stranger.pid}\n")
                server = EmbeddedRedis(folder)
                with caplog.at_level(logging.WARNING, logger="zoomreel.jobs.redis_server"):
                    server.start()
                try:
                    assert stranger.poll() is None  # alive
                    assert server.process is not None
                    assert redis_servers_on(folder) == [server.process.pid]
                finally:
                    server.stop()
            assert redis_servers_on(tmp_path / "theirs") == [other.pid]
        assert "killing" not in caplog.text
    finally:
        unrelated.kill()
        unrelated.wait()
