"""Do synchronous calls (the upstream toolkit's) starve the service? Status and submit
latency with N calls waiting for their video, against none.

    python -m benchmarks.waiting [--waiting 32] [--seconds 10] [--repeats 3]

Starts two ``zoomreel serve`` (embedded Redis, ``--render-threads 0``, so that nothing
renders and the calls wait for as long as the run lasts, HTTP processes as a user runs
it). On one, ``--waiting`` calls to ``POST /v1/image/transform/video`` without a
``webhook_url`` are left waiting; the other has none. Then, taking turns ``--repeats``
times so that load from others hits both alike: wrk (Debian's ``wrk``, two threads, 32
connections) against the status route of each, and ``--submits`` documented submits,
one after another, timed one by one. Medians of the repeats are reported. Writes
``benchmarks/results/<UTC time>-waiting.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from benchmarks._record import RESULTS, save_record
from benchmarks.load import (
    KEY,
    _free_port,
    _lua,
    _serve,
    _wait_processes,
    stop_all,
    wrk,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "ZOOMREEL_API_KEY": KEY, "ZOOMREEL_ALLOW_PRIVATE_URLS": "1"}
        for name in ("ZOOMREEL_REDIS_URL", "ZOOMREEL_HTTP_PROCESSES", "ZOOMREEL_MAX_WAITING"):
            env.pop(name, None)
        ports = {"idle": _free_port(), "waiting": _free_port()}
        serves = {name: _serve(port, folder / name, env, "--render-threads", "0")
                  for name, port in ports.items()}
        callers: list[threading.Thread] = []
        try:
            bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            processes = 0
            for base in bases.values():
                processes = _wait_processes(base, _expected_processes())
            jobs = {name: _submit(base) for name, base in bases.items()}
            callers = [threading.Thread(target=_wait_call, args=(bases["waiting"],),
                                        daemon=True) for _ in range(args.waiting)]
            for caller in callers:
                caller.start()
            waiting = _until_queued(bases["waiting"], args.waiting + 1) - 1
            scripts = {name: _lua(folder / f"{name}.lua", {"job_id": jobs[name]}, KEY)
                       for name in bases}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in bases}
            for _ in range(args.repeats):
                for name, base in bases.items():
                    result = wrk(base + "/v1/toolkit/job/status", scripts[name],
                                 args.seconds, args.connections)
                    result.update(_submit_times(base, args.submits))
                    runs[name].append(result)
            still = sum(caller.is_alive() for caller in callers)
        finally:
            stop_all(serves.values())

    summary = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
               for name, rs in runs.items()}
    record = {"when": datetime.now(UTC).isoformat(), "load_average": os.getloadavg(),
              "cores": os.cpu_count(), "http_processes": processes,
              "waiting": waiting, "waiting_at_the_end": still, "seconds": args.seconds,
              "connections": args.connections, "submits": args.submits,
              "repeats": args.repeats, "median": summary, "runs": runs}
    save_record(record, "waiting", args.out)
    print(f"{processes} HTTP processes; {waiting} synchronous calls waiting on one serve "
          f"({still} still waiting at the end); status: wrk -t2 -c{args.connections} "
          f"-d{args.seconds}s; submits: {args.submits} one after another; median of "
          f"{args.repeats}; load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| serve | status requests/s | status p50 ms | status p99 ms | non-2xx | "
          "submit p50 ms | submit max ms |")
    print("|---|---|---|---|---|---|---|")
    for name, m in summary.items():
        label = f"{waiting} calls waiting" if name == "waiting" else "none waiting"
        print(f"| {label} | {m['requests_per_s']:.0f} | {m.get('p50_ms', 0):.1f} | "
              f"{m.get('p99_ms', 0):.1f} | {m['non_2xx']:.0f} | {m['submit_p50_ms']:.1f} | "
              f"{m['submit_max_ms']:.1f} |")
    return 0


def _expected_processes() -> int:
    from zoomreel.frontends.config import http_processes

    return http_processes(None)


def _body() -> dict[str, Any]:
    # nothing renders, so the image is never fetched
    return {"image_url": "http://127.0.0.1:9/photo.jpg", "length": 5}


def _submit(base: str) -> str:
    r = requests.post(base + "/v1/image/convert/video", headers={"X-API-Key": KEY},
                      json=_body(), timeout=30)
    r.raise_for_status()
    return str(r.json()["job_id"])


def _wait_call(base: str) -> None:
    """One synchronous call, as upstream's clients make it; it waits until serve stops."""
    try:
        requests.post(base + "/v1/image/transform/video", headers={"x-api-key": KEY},
                      json=_body(), timeout=3600)
    except requests.RequestException:
        pass  # serve stopped under it: the end of the run


def _until_queued(base: str, count: int, timeout: float = 60.0) -> int:
    """Wait until ``count`` jobs are queued (the calls have created theirs); how many."""
    deadline = time.monotonic() + timeout
    while True:
        queued = int(requests.get(base + "/health", timeout=10).json()["queue_length"])
        if queued >= count or time.monotonic() > deadline:
            return queued
        time.sleep(0.1)


def _submit_times(base: str, count: int) -> dict[str, float]:
    times = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            r = session.post(base + "/v1/image/convert/video", headers={"X-API-Key": KEY},
                             json=_body(), timeout=30)
            times.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
    times.sort()
    return {"submit_p50_ms": statistics.median(times), "submit_max_ms": times[-1]}


if __name__ == "__main__":
    sys.exit(main())
