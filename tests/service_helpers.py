"""Helpers of the service tests: images, MP4 probing, the installed ``zoomreel``
command, and ``zoomreel serve`` run as a subprocess (fixtures wrapping them are in
conftest.py)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from waiting import eventually

API_KEY = "test-key-1"
SMALL = {"length": 1, "frame_rate": 15, "width": 256, "height": 144}


def zoomreel_script() -> str:
    """The installed ``zoomreel`` console script beside this interpreter (never the
    working tree's code: the tests run what ``pip install`` put in place)."""
    found = shutil.which("zoomreel", path=str(Path(sys.executable).parent))
    assert found, f"no zoomreel script beside {sys.executable}: install the package first"
    return found


def jpeg(width: int = 320, height: int = 180, color: tuple[int, int, int] = (200, 40, 40),
         fmt: str = "JPEG") -> bytes:
    """A solid-colour image, encoded."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt, quality=95)
    return buf.getvalue()


def probe(data_or_path: bytes | str | Path) -> dict[str, Any]:
    """Decode a whole MP4 with PyAV: frame count, size, mean colour of the first frame."""
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(source) as container:
        frames = 0
        first = None
        for frame in container.decode(video=0):
            if first is None:
                first = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
                width, height = frame.width, frame.height
            frames += 1
    assert first is not None, "no frame decoded"
    return {"frames": frames, "width": width, "height": height,
            "color": tuple(float(c) for c in first)}


# -- zoomreel serve as a subprocess ----------------------------------------------------

class Serve:
    """The installed ``zoomreel serve`` in its own process group, on a free port."""

    def __init__(self, data_dir: Path, *, workers: int = 2, env: dict[str, str] | None = None,
                 api_key: str | None = API_KEY, workers_flag: str = "--render-threads",
                 args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.args = args
        self.workers = workers
        self.workers_flag = workers_flag
        self.env = {**os.environ, "ZOOMREEL_ALLOW_PRIVATE_URLS": "1", **(env or {})}
        self.env.pop("ZOOMREEL_REDIS_URL", None)
        if api_key:
            self.env["ZOOMREEL_API_KEY"] = api_key
        else:
            self.env.pop("ZOOMREEL_API_KEY", None)
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.url = ""
        self.key = api_key or ""

    def start(self, timeout: float = 60.0) -> Serve:
        self.lines = []
        self.proc = subprocess.Popen(
            [zoomreel_script(), "serve", "--port", "0",
             "--data-dir", str(self.data_dir), self.workers_flag, str(self.workers),
             *self.args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        try:
            eventually(self._answers, timeout=timeout, interval=0.1,
                       what="serve to answer /health", ignoring=(requests.ConnectionError,))
        except AssertionError as exc:
            raise RuntimeError("serve did not start:\n" + "".join(self.lines)) from exc
        return self

    def _answers(self) -> bool:
        """Whether serve has printed its address and key and answers /health."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError("serve exited:\n" + "".join(self.lines))
        for line in list(self.lines):
            if "serving on " in line:
                self.url = line.split("serving on ", 1)[1].strip()
            if line.startswith("API key: "):
                self.key = line.split(": ", 1)[1].strip()
        return bool(self.url and self.key) and requests.get(self.url + "/health", timeout=2).ok

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.headers)
        return requests.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.headers)
        return requests.get(self.url + path, timeout=30, **kwargs)

    def submit(self, **body: Any) -> str:
        r = self.post("/v1/image/convert/video", json=body)
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    def status(self, job_id: str) -> dict[str, Any]:
        r = self.post("/v1/toolkit/job/status", json={"job_id": job_id})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, job_id: str, timeout: float = 60.0,
             until: tuple[str, ...] = ("done", "error")) -> dict[str, Any]:
        return eventually(lambda: self.status(job_id), timeout=timeout, interval=0.1,
                          until=lambda answer: answer["response"]["job_status"] in until,
                          what=f"job {job_id} to be {' or '.join(until)}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an operator would; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill9()

    def tree(self) -> list[int]:
        """serve and every live process it started (its Redis server, its API processes)."""
        return [] if self.proc is None else process_tree(self.proc.pid)

    def kill9(self) -> None:
        """kill -9 the whole process tree (serve, its Redis server, its API processes)."""
        if self.proc is None:
            return
        for pid in self.tree():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


class Worker:
    """``zoomreel worker`` as a subprocess, its output collected."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [zoomreel_script(), "worker", "--threads", "1", "--data-dir", str(data_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def started(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("worker exited:\n" + "".join(self.lines))
        return any(line.startswith("zoomreel worker: ") for line in self.lines)

    def renders_of(self, job_id: str) -> int:
        return sum(f"[job {job_id}] render started" in line for line in self.lines)

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@contextmanager
def serve_and_workers(serve_factory: Callable[..., Serve], api_dir: Path,
                      worker_dirs: list[Path], redis_url: str,
                      env: dict[str, str]) -> Iterator[tuple[Serve, list[Worker]]]:
    """serve without render threads in ``api_dir`` and a ``zoomreel worker`` in each of
    ``worker_dirs``, all on ``redis_url`` with the environment ``env``, every worker
    started; yields (serve, the workers), and kills the workers after."""
    env = {**env, "ZOOMREEL_REDIS_URL": redis_url}
    workers = [Worker(folder, env) for folder in worker_dirs]
    try:
        api = serve_factory(api_dir, workers=0, env=env, args=("--redis-url", redis_url))
        for worker in workers:
            eventually(worker.started, timeout=60, what="a worker to start")
        yield api, workers
    finally:
        for worker in workers:
            worker.kill9()


class ServeFactory:
    """Starts ``zoomreel serve`` (``factory(data_dir=None, **Serve options)``), each in a
    folder of its own under ``root`` unless given one; :meth:`close` kills every one.

    Killed, not stopped: shutting down cleanly is test_serve.py's subject, and a slow
    shutdown on a loaded machine would fail whichever test ran last.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Serve] = []

    def __call__(self, data_dir: Path | None = None, **options: Any) -> Serve:
        serve = Serve(data_dir or self.root / f"data{len(self.started)}", **options)
        self.started.append(serve)
        return serve.start()

    def close(self) -> None:
        for serve in self.started:
            serve.kill9()


def _live_parents() -> dict[int, int]:
    """{pid: parent pid} of every live (not zombie) process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] not in ("Z", "X"):
            parents[int(entry)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants, if ``root`` lives."""
    parents = _live_parents()
    if root not in parents:
        return []
    tree = [root]
    for pid in tree:  # grows as it goes: breadth first
        tree += [child for child, parent in parents.items() if parent == pid]
    return tree


def redis_servers_on(folder: Path) -> list[int]:
    """The pids of every live redis-server working on ``folder`` (its append-only file)."""
    from zoomreel.jobs.redis_server import serves_folder

    return [pid for pid in _live_parents() if serves_folder(pid, folder)]


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` alive now (zombies are not)."""
    live = _live_parents()
    return [pid for pid in pids if pid in live]


def ended(pids: list[int], timeout: float = 5.0) -> None:
    """Wait until none of ``pids`` is alive; fails naming those that still are."""
    eventually(lambda: alive(pids), until=lambda left: not left, timeout=timeout,
               what=f"the end of processes {pids}")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text answer."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no {name} {labels} in:\n{text}")
