"""How many requests a second the service answers: wrk against ``zoomreel serve``.

    python -m benchmarks.load [--seconds 10] [--connections 32] [--repeats 3] [--rendering N]

Starts two ``zoomreel serve`` (embedded Redis, two render threads, idle) in a temporary
folder: one as a user runs it (``--http-processes`` default: one per core, at most four)
and one answering HTTP in a single process (``--http-processes 1``, as before there were
API processes), renders one small job on each so that the status route answers for a
finished job, then runs wrk (Debian's ``wrk``; two threads, ``--connections`` connections)
against, in turn: the status route of each, ``/health``, and, as the ceiling of one Python
process on this machine, a bare Falcon app on waitress with the same thread count
answering a constant JSON body. They take turns ``--repeats`` times, so that load from
others hits them alike; medians are reported. Writes
``benchmarks/results/<UTC time>-load.json`` and prints a Markdown table.

``--rendering N`` measures while each serve renders N long 1080p videos of a corpus
photo (the first of ``--corpus DIR`` or ``$ZOOMREEL_CORPUS``; a synthetic image where
there is none): the API beside busy
render threads rather than idle ones."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from zoomreel.frontends.config import http_processes

from ._corpus import add_corpus_option
from ._record import RESULTS, save_record

KEY = "load-test-key"

_BARE_APP = """
import json, sys, falcon, waitress
class Status:
    def on_post(self, req, resp):
        req.bounded_stream.read()
        resp.media = {"code": 200, "message": "success", "response": {"job_status": "done"}}
app = falcon.App()
app.add_route("/status", Status())
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, ident="bare")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _lua(path: Path, body: dict[str, Any] | None, key: str | None) -> Path:
    lines = []
    if body is not None:
        lines += ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
                  'wrk.headers["Content-Type"] = "application/json"']
    if key:
        lines.append(f'wrk.headers["X-API-Key"] = "{key}"')
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run: requests/s, latency percentiles in ms, errors."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    result: dict[str, float] = {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
    }
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if found:
            result[f"p{pct}_ms"] = float(found.group(1)) * _UNITS[found.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = float(bad.group(1)) if bad else 0.0
    result["socket_errors"] = float(sum(int(n) for n in re.findall(r"\d+", errors.group(1)))
                                    if errors else 0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rendering", type=int, default=0,
                        help="long renders running on each serve meanwhile (default 0)")
    parser.add_argument("--out", default=str(RESULTS))
    add_corpus_option(parser)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, single_port, bare_port = _free_port(), _free_port(), _free_port()
        env = {**os.environ, "ZOOMREEL_API_KEY": KEY}
        env.pop("ZOOMREEL_REDIS_URL", None)
        env.pop("ZOOMREEL_HTTP_PROCESSES", None)
        serve = _serve(port, folder / "data", env)
        single = _serve(single_port, folder / "single", env, "--http-processes", "1")
        bare = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_BARE_APP),
                                 str(bare_port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            single_base = f"http://127.0.0.1:{single_port}"
            _wait_up(f"http://127.0.0.1:{bare_port}/status")
            processes = _wait_processes(base, http_processes(None))
            _wait_processes(single_base, 1)
            job = _one_finished_job(base)
            single_job = _one_finished_job(single_base)
            for url in (base, single_base):
                _start_renders(url, args.rendering, args.corpus)
            targets = {
                f"status route ({processes} HTTP processes, the default here)": (
                    base + "/v1/toolkit/job/status",
                    _lua(folder / "status.lua", {"job_id": job}, KEY)),
                "status route (--http-processes 1)": (
                    single_base + "/v1/toolkit/job/status",
                    _lua(folder / "single.lua", {"job_id": single_job}, KEY)),
                f"/health ({processes} HTTP processes)": (
                    base + "/health", _lua(folder / "health.lua", None, None)),
                "bare Falcon on waitress (1 process)": (
                    f"http://127.0.0.1:{bare_port}/status",
                    _lua(folder / "bare.lua", {"job_id": job}, None)),
            }
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for _ in range(args.repeats):
                for name, (url, script) in targets.items():
                    runs[name].append(wrk(url, script, args.seconds, args.connections))
        finally:
            stop_all((serve, single, bare))

    summary = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for name, rs in runs.items()}
    record = {"when": datetime.now(UTC).isoformat(), "load_average": os.getloadavg(),
              "cores": os.cpu_count(), "http_processes": processes, "seconds": args.seconds,
              "connections": args.connections, "repeats": args.repeats,
              "rendering": args.rendering,
              "median": summary, "runs": runs}
    save_record(record, "load", args.out)
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, median of {args.repeats}, "
          f"{args.rendering} render(s) running on each serve, "
          f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| target | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---|---|---|---|---|---|")
    for name, m in summary.items():
        print(f"| {name} | {m['requests_per_s']:.0f} | {m.get('p50_ms', 0):.1f} | "
              f"{m.get('p90_ms', 0):.1f} | {m.get('p99_ms', 0):.1f} | {m['non_2xx']:.0f} | "
              f"{m['socket_errors']:.0f} |")
    return 0


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, then wait; one that does not stop is killed: a run
    never leaves one behind."""
    procs = list(procs)
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve(port: int, data: Path, env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["zoomreel", "serve", "--port", str(port), "--data-dir", str(data), *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def _wait_processes(base: str, expected: int, timeout: float = 60.0) -> int:
    """Wait until ``expected`` processes answer (each /health tells its pid): serve's
    API processes start after serve itself answers."""
    _wait_up(base + "/health")

    def pid(_: int) -> int:
        with requests.Session() as session:  # a new connection each: any process may take it
            return int(session.get(base + "/health", timeout=10).json()["pid"])

    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(seen)} of {expected} processes answer at {base}")
            seen.update(pool.map(pid, range(64)))
    return len(seen)


def _start_renders(base: str, count: int, corpus: Path | None) -> None:
    """Submit ``count`` long 1080p renders and wait until they all render."""
    if count <= 0:
        return
    photos = sorted(corpus.glob("*.jpg")) if corpus else []
    if photos:
        image = photos[0].read_bytes()
    else:
        import io

        import numpy as np
        from PIL import Image

        pixels = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        image = buffer.getvalue()
    jobs = [_submit(base, ("photo.jpg", image, "image/jpeg"), length=600, frame_rate=30,
                    width=1920, height=1080) for _ in range(count)]
    for job in jobs:
        _wait_for(base, job, "render", lambda inner: inner["job_status"] == "running"
                  and inner["progress"]["frames_done"] > 0)


def _one_finished_job(base: str) -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), (40, 120, 200)).save(buffer, "PNG")
    job = _submit(base, ("small.png", buffer.getvalue(), "image/png"), length=1,
                  frame_rate=15, width=320, height=180)
    _wait_for(base, job, "finish", lambda inner: inner["job_status"] in ("done", "error"))
    return job


def _submit(base: str, image: tuple[str, bytes, str], **fields: int) -> str:
    """Upload ``image`` (name, bytes, type) with ``fields``; return the job id."""
    r = requests.post(base + "/v1/image/convert/video", headers={"X-API-Key": KEY},
                      files={"image": image}, data={k: str(v) for k, v in fields.items()},
                      timeout=60)
    r.raise_for_status()
    return str(r.json()["job_id"])


def _wait_for(base: str, job: str, what: str, reached: Callable[[dict[str, Any]], bool],
              timeout: float = 120.0) -> None:
    """Poll the job's status until ``reached(answer["response"])``."""
    deadline = time.monotonic() + timeout
    while True:
        inner = requests.post(base + "/v1/toolkit/job/status", headers={"X-API-Key": KEY},
                              json={"job_id": job}, timeout=30).json()["response"]
        if reached(inner):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job} did not {what}: {inner}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
