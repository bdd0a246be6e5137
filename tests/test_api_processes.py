"""serve's API processes (``--http-processes`` / ``ZOOMREEL_HTTP_PROCESSES``): several
processes answer HTTP on serve's port, as one service, and never outlive serve."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from imagegen import encode, photo_like
from loopback import LoopbackServer
from service_helpers import SMALL, ended, jpeg, metric, zoomreel_script
from waiting import eventually

pytestmark = pytest.mark.system

THREE = {"ZOOMREEL_HTTP_PROCESSES": "3"}


def _answering_pids(url: str, requests_: int = 300) -> set[int]:
    """The processes that answered ``requests_`` concurrent /health calls."""
    def pid(_: int) -> int:
        with requests.Session() as session:  # a new connection each: the kernel picks
            r = session.get(url + "/health", timeout=30)
        assert r.status_code == 200, r.text
        return int(r.json()["pid"])

    with ThreadPoolExecutor(16) as pool:
        return set(pool.map(pid, range(requests_)))


def test_the_processes_answer_as_one_service(serve_factory: Any,
                                             image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=2, env=THREE)
    tree = serve.tree()
    assert len(tree) == 5, tree  # serve, its Redis, three API processes
    # Linux spreads the connections between the processes, which are ready before
    # serve says it serves
    assert _answering_pids(serve.url) == set(_api_processes(tree))

    # jobs submitted through any process are rendered by serve's workers, and their
    # status reads the same whichever process answers
    url = image_server.add("/api-processes/a.jpg", jpeg(320, 180, (200, 60, 30)))

    def submit(i: int) -> str:
        with requests.Session() as session:
            r = session.post(serve.url + "/v1/image/convert/video", headers=serve.headers,
                             json={**SMALL, "image_url": url, "id": i}, timeout=30)
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(submit, range(12)))
    for job in jobs:
        assert serve.wait(job, timeout=120)["response"]["job_status"] == "done"

    # /metrics counts every process's events, whichever process answers it
    def scrape(_: int) -> tuple[float, float, float]:
        with requests.Session() as session:
            text = session.get(serve.url + "/metrics", headers=serve.headers, timeout=30).text
        return (metric(text, "zoomreel_jobs_submitted_total"),
                metric(text, "zoomreel_jobs_finished_total", status="done"),
                metric(text, "zoomreel_render_frames_total"))

    with ThreadPoolExecutor(8) as pool:
        scrapes = set(pool.map(scrape, range(40)))
    assert scrapes == {(12.0, 12.0, 12.0 * 15)}
    assert serve.stop() == 0
    ended(tree)


def test_a_dead_api_process_is_replaced(serve_factory: Any) -> None:
    serve = serve_factory(workers=0, env=THREE)
    children = _api_processes(serve.tree())
    assert len(children) == 3
    os.kill(children[0], signal.SIGKILL)
    # once it is dead its socket is closed; a connection the kernel had queued on it in the
    # moment of the kill is reset with it (each process has its own, see _api_processes)
    ended([children[0]])

    def processes() -> list[int]:
        # the others answer meanwhile (a connection the kernel hands the newcomer while
        # it starts may be reset on a loaded machine: clients retry those; once it runs,
        # every one of 300 below must answer)
        assert requests.get(serve.url + "/health", timeout=10).status_code == 200
        return _api_processes(serve.tree())

    eventually(processes, until=lambda now: len(now) == 3 and children[0] not in now,
               timeout=20, interval=0.1, what="another API process in the dead one's place",
               ignoring=(requests.ConnectionError,))
    assert set(_answering_pids(serve.url)) - {children[0]}
    assert any("API process" in line and "starting another" in line for line in serve.lines)


def test_a_hung_api_process_is_replaced(serve_factory: Any) -> None:
    # a stopped process keeps its share of the connections, which time out: 8 of 20
    # requests did when serve replaced dead processes only
    serve = serve_factory(workers=0, env={"ZOOMREEL_HTTP_PROCESSES": "2"})
    children = _api_processes(serve.tree())
    assert len(children) == 2
    os.kill(children[0], signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        now = eventually(lambda: _api_processes(serve.tree()),
                         until=lambda now: len(now) == 2 and children[0] not in now,
                         timeout=60, interval=0.1,
                         what="another API process in the hung one's place")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(children[0], signal.SIGCONT)  # if it is still there, let it go on
    replaced_after = time.monotonic() - stopped
    ended([children[0]])
    # the bound is "within a few seconds": 5 s without an answer, then the kill;
    # 30 s leaves room for a loaded machine while still failing where nothing replaces it
    assert replaced_after < 30, replaced_after
    assert any(f"API process {children[0]} has not answered" in line for line in serve.lines)
    # the new one answers too, and 20 fresh connections all get an answer
    eventually(lambda: _answering_pids(serve.url, 20), until=lambda pids: pids == set(now),
               timeout=60, interval=0.1, what=f"both processes {now} answering")

    def health(_: int) -> int:
        with requests.Session() as session:
            return session.get(serve.url + "/health", timeout=10).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(health, range(20))) == [200] * 20


def test_nothing_outlives_a_killed_serve(serve_factory: Any) -> None:
    serve = serve_factory(workers=1, env=THREE)
    tree = serve.tree()
    assert len(tree) == 5, tree
    assert serve.proc is not None
    serve.proc.send_signal(signal.SIGKILL)  # serve alone: its children must notice
    serve.proc.wait()
    ended(tree, timeout=10)
    # where they counted for /metrics is left behind, and removed by the next serve (or
    # by another test's, already)
    serve_factory(workers=0, env=THREE)
    assert not list(Path(tempfile.gettempdir()).glob(f"zoomreel-metrics-{tree[0]}-*"))


def test_one_process_runs_no_others(serve_factory: Any) -> None:
    serve = serve_factory(workers=0, env={"ZOOMREEL_HTTP_PROCESSES": "1"})
    tree = serve.tree()
    assert len(tree) == 2, tree  # serve and its Redis
    assert _answering_pids(serve.url, 40) == {tree[0]}
    assert metric(serve.get("/metrics").text, "zoomreel_jobs_submitted_total") == 0
    assert not list(Path(tempfile.gettempdir()).glob(f"zoomreel-metrics-{tree[0]}-*"))


def test_a_bad_process_count_is_refused(tmp_path: Path) -> None:
    for value in ("0", "two", "-1"):
        done = subprocess.run(
            [zoomreel_script(), "serve", "--port", "0", "--data-dir", str(tmp_path)],
            env={**os.environ, "ZOOMREEL_HTTP_PROCESSES": value}, capture_output=True,
            text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "ZOOMREEL_HTTP_PROCESSES must be a whole number of at least 1" in done.stderr
        assert repr(value) in done.stderr
    done = subprocess.run(  # the flag wins over the environment
        [zoomreel_script(), "serve", "--port", "0", "--data-dir", str(tmp_path),
         "--http-processes", "0"], env={**os.environ, "ZOOMREEL_HTTP_PROCESSES": "2"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--http-processes must be a whole number of at least 1, not '0'" in done.stderr


def test_renders_run_below_the_answers(serve_factory: Any,
                                       image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=1, env=THREE)
    # A photo-like image, 5 min of 720p: x264 has real work on every frame, so the render
    # outlasts the measuring below even on a fast idle machine (a flat colour at 30 s
    # finished within it there).
    image = encode(photo_like(1280, 720, seed=4), "JPEG", quality=90)
    url = image_server.add("/api-processes/long.jpg", image)
    job = serve.submit(image_url=url, length=300, frame_rate=30, width=1280, height=720)

    def progress() -> dict[str, Any]:
        inner = serve.status(job)["response"]
        assert inner["job_status"] in ("queued", "running"), inner
        return dict(inner)

    eventually(progress, until=lambda inner: inner["progress"]["frames_done"] >= 30,
               timeout=60, what="30 frames rendered")
    assert serve.proc is not None
    pid = serve.proc.pid

    def busy_threads() -> dict[int, int]:
        """{thread: nice} of serve's threads that used a tenth of a core or more over a
        one-second window (on a loaded machine a window may find the render starved:
        another window is measured)."""
        before = _threads(pid)
        time.sleep(1.0)  # the measuring window, not a wait for something to happen
        return {tid: nice for tid, (nice, ticks) in _threads(pid).items()
                if ticks - before.get(tid, (0, 0))[1] >= 10}

    busy = eventually(busy_threads, timeout=30, interval=0, what="a busy render thread")
    assert serve.status(job)["response"]["job_status"] == "running"  # still rendering
    assert busy and set(busy.values()) == {10}, busy  # the render, its encoder, Numba's
    for pid in _api_processes(serve.tree()):
        assert {nice for nice, _ in _threads(pid).values()} == {0}


def _threads(pid: int) -> dict[int, tuple[int, int]]:
    """{thread id: (nice value, CPU ticks used)} of a process."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[int(task.name)] = (int(fields[16]), int(fields[11]) + int(fields[12]))
    return out


def test_a_taken_port_is_refused(serve_factory: Any, tmp_path: Path) -> None:
    first = serve_factory(workers=0, env=THREE)
    port = first.url.rsplit(":", 1)[1]
    for count in ("1", "3"):  # serve answering itself, or through API processes
        done = subprocess.run(
            [zoomreel_script(), "serve", "--port", port, "--data-dir", str(tmp_path / count)],
            env={**os.environ, "ZOOMREEL_HTTP_PROCESSES": count}, capture_output=True,
            text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "in use" in done.stderr, done.stderr
    assert requests.get(first.url + "/health", timeout=10).status_code == 200


def _api_processes(tree: list[int]) -> list[int]:
    return [pid for pid in tree if "--parent-pid" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""
