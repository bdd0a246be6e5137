"""Fair scheduling (issue 32): short jobs never wait behind long ones.

    python -m benchmarks.fairness [--rounds 1] [--image PHOTO] [--quick]

Runs ``zoomreel serve`` (its default two render threads, embedded Redis, two API keys) in
a temporary folder, and measures, per round:

* **solo**: one long job (600 s of 1080p at 30 fps) alone, submit to done;
* **starvation**: the same long job, then 5 short jobs (1 s, 320x180) spread over 20 s
  once it renders: each short job's latency (submit to done) and render time, and the
  long job's time against ``solo + the short jobs' render time`` (+10 % allowed);
* **two keys**: key A submits 20 one-minute 1080p jobs; once two render, key B submits a
  short job: its latency against one chunk's time (A's first job, one chunk long).

``--quick`` scales it down (a 120 s 720p long job in chunks of 20 s, A's jobs 20 s of
1080p) to try the benchmark in a few minutes. The image is the 3840x2160 photo-like test
image, or ``--image``. Medians over rounds are reported with the load average; the record
goes to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._record import save_record

KEYS = ("fairness-key-a", "fairness-key-b")


def make_source(folder: Path, width: int = 3840, height: int = 2160, seed: int = 0) -> Path:
    """The photo-like test image as _measure.make_source makes it (without that module's
    encoder dependencies)."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    sys.path.insert(0, tests)
    try:
        from imagegen import photo_like
    finally:
        sys.path.remove(tests)
    path = folder / f"photo_{width}x{height}.jpg"
    photo_like(width, height, seed).save(path, quality=95, subsampling=0)
    return path


def _zoomreel() -> str:
    """The ``zoomreel`` command of this interpreter's environment (or on PATH)."""
    beside = Path(sys.executable).parent / "zoomreel"
    return str(beside) if beside.exists() else "zoomreel"


class _Serve:
    """``zoomreel serve`` in its own process group, on a free port."""

    def __init__(self, data: Path, chunk_s: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "ZOOMREEL_API_KEY": ",".join(KEYS),
               "ZOOMREEL_CHUNK_SECONDS": str(chunk_s)}
        env.pop("ZOOMREEL_REDIS_URL", None)
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [_zoomreel(), "serve", "--port", str(port), "--data-dir", str(data)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(self.base + "/health", timeout=5).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("serve did not start")
            time.sleep(0.2)

    def submit(self, image: bytes, key: str = KEYS[0], **fields: int) -> tuple[str, float]:
        """Upload ``image`` with ``fields``; the job id and when it was submitted."""
        at = time.monotonic()
        r = requests.post(self.base + "/v1/image/convert/video", headers={"X-API-Key": key},
                          files={"image": ("photo.jpg", image, "image/jpeg")},
                          data={k: str(v) for k, v in fields.items()}, timeout=60)
        r.raise_for_status()
        return str(r.json()["job_id"]), at

    def status(self, job: str, key: str = KEYS[0]) -> dict[str, Any]:
        r = requests.post(self.base + "/v1/toolkit/job/status",
                          headers={"X-API-Key": key}, json={"job_id": job}, timeout=30)
        answer = r.json()
        return {**answer["response"], "run_time": answer["run_time"],
                "total_time": answer["total_time"]}

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _done_at(serve: _Serve, jobs: list[str], key: str = KEYS[0],
             timeout: float = 3600) -> dict[str, float]:
    """Poll until every job is done; when each was first seen done (monotonic)."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(jobs):
        for job in jobs:
            if job not in done:
                state = serve.status(job, key)["job_status"]
                if state == "error":
                    raise RuntimeError(f"job {job} failed: {serve.status(job, key)}")
                if state == "done":
                    done[job] = time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done in {timeout} s: {set(jobs) - set(done)}")
        time.sleep(0.1)
    return done


def _running(serve: _Serve, jobs: list[str], count: int = 1) -> None:
    """Wait until ``count`` of ``jobs`` have started (running or done)."""
    while sum(serve.status(j)["job_status"] in ("running", "done") for j in jobs) < count:
        time.sleep(0.1)


def _round(folder: Path, image: bytes, small: bytes, args: argparse.Namespace,
           ) -> dict[str, Any]:
    long_job = {"length": args.length, "frame_rate": 30, "width": args.width,
                "height": args.height}
    short_job = {"length": 1, "frame_rate": 30, "width": 320, "height": 180}
    # one chunk long, 1080p (60 s; 20 s with --quick): "one-minute jobs"
    minute_job = {"length": args.chunk_seconds, "frame_rate": 30, "width": 1920,
                  "height": 1080}
    out: dict[str, Any] = {}
    # solo
    serve = _Serve(folder / "solo", args.chunk_seconds)
    try:
        job, _ = serve.submit(image, **long_job)
        _done_at(serve, [job])
        out["solo_s"] = float(serve.status(job)["total_time"])
    finally:
        serve.stop()
    # the long job and 5 short ones spread over 20 s
    serve = _Serve(folder / "starvation", args.chunk_seconds)
    try:
        job, _ = serve.submit(image, **long_job)
        _running(serve, [job])
        first = time.monotonic() + 5.0  # then one every 5 s: over 20 s
        shorts: list[tuple[str, float]] = []
        for n in range(5):
            time.sleep(max(0.0, first + 5.0 * n - time.monotonic()))
            shorts.append(serve.submit(small, **short_job))
        _done_at(serve, [j for j, _ in shorts])
        # submit to done, as the job's record has it (the poll's own delay left out)
        latencies = [float(serve.status(j)["total_time"]) for j, _ in shorts]
        renders = [float(serve.status(j)["run_time"]) for j, _ in shorts]
        _done_at(serve, [job])
        long_s = float(serve.status(job)["total_time"])
    finally:
        serve.stop()
    budget = (out["solo_s"] + sum(renders)) * 1.1
    out.update(short_latency_s=latencies, short_render_s=renders, long_s=long_s,
               long_budget_s=budget, long_within_budget=long_s <= budget,
               shorts_within_15_s=max(latencies) <= 15.0)
    # two keys: A's backlog of one-minute jobs, B's short job
    serve = _Serve(folder / "keys", args.chunk_seconds)
    try:
        backlog = [serve.submit(image, KEYS[0], **minute_job)[0] for _ in range(args.backlog)]
        _running(serve, backlog, 2)
        other, _ = serve.submit(small, KEYS[1], **short_job)
        _done_at(serve, [other], KEYS[1])
        other_s = float(serve.status(other, KEYS[1])["total_time"])
        still_queued = sum(serve.status(j)["job_status"] == "queued" for j in backlog)
        while not (finished := [j for j in backlog
                                if serve.status(j)["job_status"] == "done"]):
            time.sleep(0.2)
        chunk_s = float(serve.status(finished[0])["run_time"])  # one A job: one chunk
        out.update(other_key_latency_s=other_s, other_key_render_s=float(
                   serve.status(other, KEYS[1])["run_time"]), one_chunk_s=chunk_s,
                   other_key_within_one_chunk=other_s <= chunk_s,
                   backlog_queued_when_other_done=still_queued)
    finally:
        serve.stop()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fairness")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--image", type=Path, default=None)
    p.add_argument("--quick", action="store_true",
                   help="a 120 s 720p long job in chunks of 20 s, 20 s 1080p backlog jobs")
    args = p.parse_args(argv)
    args.length, args.width, args.height, args.chunk_seconds, args.backlog = (
        (120, 1280, 720, 20.0, 20) if args.quick else (600, 1920, 1080, 60.0, 20))
    with tempfile.TemporaryDirectory(prefix="zoomreel-fairness-") as tmp:
        folder = Path(tmp)
        source = args.image or make_source(folder)
        image = Path(source).read_bytes()
        small = make_source(folder, 640, 360, seed=1).read_bytes()
        runs, loads = [], []
        for n in range(args.rounds):
            loads.append(os.getloadavg()[0])
            runs.append(_round(folder / f"round{n}", image, small, args))
            loads.append(os.getloadavg()[0])
            print(f"round {n + 1}: {runs[-1]}", file=sys.stderr)
    scalar = [k for k, v in runs[0].items() if isinstance(v, float)]
    report = {
        "benchmark": "fairness", "quick": args.quick, "cpus": os.cpu_count(),
        "image": str(args.image or "photo-like 3840x2160"),
        "long_job": f"{args.length} s {args.width}x{args.height} at 30 fps, "
                    f"chunks of {args.chunk_seconds:g} s",
        "load_average_1m": [round(x, 2) for x in loads], "runs": runs,
        "median": {k: statistics.median(r[k] for r in runs) for k in scalar},
        "median_short_latency_s": statistics.median(
            x for r in runs for x in r["short_latency_s"]),
        "max_short_latency_s": max(x for r in runs for x in r["short_latency_s"]),
    }
    print(f"record: {save_record(report, 'fairness').name}", file=sys.stderr)
    print(report)


if __name__ == "__main__":
    main()
