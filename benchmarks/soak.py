"""Chaos soak: every accepted job ends, once, whatever happens to the processes under it.

    python -m benchmarks.soak [--jobs 150] [--every 0.4] [--chaos 3.0] [--drain 180] [--seed 1]

Starts ``zoomreel serve`` (embedded Redis, one render thread, its API processes) in a
temporary folder and two ``zoomreel worker`` processes on its Redis, with a loopback
server for the image and for webhooks (a third of the jobs carry one). The image host
answers 503 to one request in ten and the receiver 500 to one delivery in ten, so that
render retries and webhook retries wait in the delay queues.
It submits ``--jobs`` small jobs, one every ``--every`` seconds, as a client following
the API would (a 503/507/429 is retried after its ``Retry-After``; a dropped connection is
retried too). Meanwhile, every ``--chaos`` seconds on average, one of:

* ``kill-worker``: SIGKILL a worker process (started again a few seconds later);
* ``kill-api``: SIGKILL one of serve's API processes (serve replaces it);
* ``kill-redis``: SIGKILL the embedded Redis (serve restarts it);
* ``freeze-redis``: SIGSTOP the Redis for 1-4 s, then SIGCONT;
* ``refuse-writes``: ``CONFIG SET min-replicas-to-write 1`` for 1-4 s (as MISCONF when
  its disk fills, NOREPLICAS), then 0.

Once every job is submitted the chaos stops, and the soak waits up to ``--drain``
seconds for every accepted job to end and every webhook to be delivered or failed. It
prints accepted / done / error / stuck (not ended) / duplicated (a render that ran to
the end for a job another render had ended, from the processes' JSON logs) / webhooks
delivered, failed, stuck / answers: 5xx without Retry-After, 503/507 with Retry-After,
dropped connections; and the chaos done. Writes ``benchmarks/results/<UTC>-soak.json``.
A measurement, not a test: it exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests
from PIL import Image

from benchmarks._record import RESULTS, save_record

ROOT = Path(__file__).resolve().parent.parent
KEY = "soak-test-key"
JOB = {"length": 1, "frame_rate": 15, "width": 256, "height": 144}
CHAOS = ("kill-worker", "kill-api", "kill-redis", "freeze-redis", "refuse-writes")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed in the middle of a webhook resets its connection


class Loopback:
    """The image and a webhook receiver, each failing (503, 500) one request in ten."""

    def __init__(self, rng: random.Random) -> None:
        buf = io.BytesIO()
        Image.new("RGB", (320, 180), (200, 90, 40)).save(buf, "JPEG")
        image = buf.getvalue()
        self.deliveries: Counter[str] = Counter()
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with lock:
                    fail = rng.random() < 0.1
                if fail:  # the render is retried later, from the delay queue
                    self._send(503, b"busy", "text/plain")
                else:
                    self._send(200, image, "image/jpeg")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    fail = rng.random() < 0.1
                if fail:
                    self._send(500, b"not now", "text/plain")
                    return
                try:
                    job_id = json.loads(body)["job_id"]
                except (ValueError, KeyError):
                    job_id = "?"
                with lock:
                    outer.deliveries[str(job_id)] += 1
                self._send(200, b"ok", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


class Service:
    """serve, its Redis and the extra workers, with their logs in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.env = {**os.environ, "ZOOMREEL_API_KEY": KEY, "ZOOMREEL_ALLOW_PRIVATE_URLS": "1",
                    "ZOOMREEL_LOG_FORMAT": "json"}
        self.env.pop("ZOOMREEL_REDIS_URL", None)
        self.logs: list[Path] = []
        self.serve = self._start("serve", ["serve", "--port", "0", "--data-dir", str(self.data),
                                           "--render-threads", "1"])
        try:
            self.url = self._address()
            self.redis_url = self._redis_url()
        except BaseException:
            os.killpg(self.serve.pid, signal.SIGKILL)
            raise
        self.workers: list[subprocess.Popen[bytes] | None] = [None, None]
        for i in range(len(self.workers)):
            self.start_worker(i)

    def _start(self, name: str, args: list[str],
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "zoomreel.frontends.cli", *args],
                                    env=env or self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def _address(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for line in self.logs[0].read_text(errors="replace").splitlines():
                if "serving on " in line:
                    return line.split("serving on ", 1)[1].strip()
            if self.serve.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("serve did not start:\n" + self.logs[0].read_text())

    def redis_pid(self) -> int:
        return int((self.data / "redis" / "redis.pid").read_text().strip())

    def _redis_url(self) -> str:
        """The embedded Redis's URL, as serve hands it to its API processes."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid in self.api_pids():
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                for entry in environ:
                    if entry.startswith(b"ZOOMREEL_REDIS_URL="):
                        return entry.split(b"=", 1)[1].decode()
            time.sleep(0.2)
        raise RuntimeError("no API process of serve says where its Redis is")

    def start_worker(self, i: int) -> None:
        env = {**self.env, "ZOOMREEL_REDIS_URL": self.redis_url}
        self.workers[i] = self._start(f"worker{i}", ["worker", "--threads", "1"], env)

    def api_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.serve.pid and b"--parent-pid" in cmdline:
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        for proc in [*self.workers, self.serve]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.serve]:
            if proc is None:
                continue
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Chaos(threading.Thread):
    """One disturbance every ``every`` seconds on average, until stopped."""

    def __init__(self, service: Service, rng: random.Random, every: float) -> None:
        super().__init__(daemon=True)
        self.service, self.rng, self.every = service, rng, every
        self.done: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.5, 1.5) * self.every):
            action = self.rng.choice(CHAOS)
            try:
                getattr(self, "_" + action.replace("-", "_"))()
                self.done[action] += 1
            except Exception as exc:  # e.g. Redis being restarted: counted, not fatal
                self.done[f"{action} (skipped: {type(exc).__name__})"] += 1
            for i, worker in enumerate(self.service.workers):
                if worker is not None and worker.poll() is not None:
                    self.service.start_worker(i)

    def _kill_worker(self) -> None:
        worker = self.rng.choice([w for w in self.service.workers if w is not None])
        worker.kill()
        worker.wait()

    def _kill_api(self) -> None:
        os.kill(self.rng.choice(self.service.api_pids()), signal.SIGKILL)

    def _kill_redis(self) -> None:
        os.kill(self.service.redis_pid(), signal.SIGKILL)

    def _freeze_redis(self) -> None:
        pid = self.service.redis_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(self.rng.uniform(1, 4))
        finally:
            os.kill(pid, signal.SIGCONT)

    def _refuse_writes(self) -> None:
        with redis.Redis.from_url(self.service.redis_url, socket_timeout=5) as client:
            client.config_set("min-replicas-to-write", 1)
            try:
                time.sleep(self.rng.uniform(1, 4))
            finally:
                client.config_set("min-replicas-to-write", 0)


class Client:
    """Submits as a client following the API would, and counts every answer."""

    def __init__(self, base: str, hooks: str) -> None:
        self.base, self.hooks = base, hooks
        self.answers: Counter[str] = Counter()
        self.accepted: dict[str, bool] = {}  # job id -> carries a webhook

    def submit(self, n: int) -> None:
        body: dict[str, Any] = {"image_url": self.hooks + "/image.jpg", **JOB}
        if n % 3 == 0:
            body["webhook_url"] = self.hooks + "/hook"
        for _ in range(60):
            try:
                r = requests.post(self.base + "/v1/image/convert/video", json=body,
                                  headers={"X-API-Key": KEY}, timeout=30)
            except requests.RequestException:
                self.answers["dropped"] += 1
                time.sleep(1)
                continue
            if r.status_code == 202:
                self.answers["202"] += 1
                self.accepted[r.json()["job_id"]] = "webhook_url" in body
                return
            retry_after = r.headers.get("Retry-After")
            if r.status_code >= 500 and not retry_after:
                self.answers[f"{r.status_code} without Retry-After"] += 1
            else:
                self.answers[f"{r.status_code} with Retry-After"] += 1
            time.sleep(min(float(retry_after or 1), 5))
        self.answers["gave up"] += 1


def _states(service: Service, ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (status, webhook state)} read from the job store."""
    with redis.Redis.from_url(service.redis_url, decode_responses=True) as client:
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(f"zoomreel:job:{job_id}", "status", "webhook_state")
        return {job_id: (status or "missing", hook or "")
                for job_id, (status, hook) in zip(ids, pipe.execute(), strict=True)}


def _ended(states: dict[str, tuple[str, str]], hooked: dict[str, bool]) -> bool:
    return all(status in ("done", "error") and (not hooked[job_id] or hook in (
        "delivered", "failed")) for job_id, (status, hook) in states.items())


def _rendered_twice(logs: list[Path]) -> Counter[str]:
    twice: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "rendered twice" in line and line.startswith("{"):
                twice[json.loads(line).get("job_id", "?")] += 1
    return twice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--every", type=float, default=0.4, help="seconds between submits")
    parser.add_argument("--chaos", type=float, default=3.0, help="mean seconds between chaos")
    parser.add_argument("--drain", type=float, default=180.0,
                        help="seconds to wait for every job to end after the chaos")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zoomreel-soak-") as tmp:
        loopback = Loopback(random.Random(args.seed + 1))
        service = Service(Path(tmp))
        chaos = Chaos(service, rng, args.chaos)
        client = Client(service.url, loopback.base)
        try:
            chaos.start()
            for n in range(args.jobs):
                client.submit(n)
                time.sleep(args.every)
            chaos.stop.set()
            chaos.join()
            chaos_over = time.monotonic()
            deadline = chaos_over + args.drain
            ids = list(client.accepted)
            states = _states(service, ids)
            while not _ended(states, client.accepted) and time.monotonic() < deadline:
                time.sleep(1)
                try:
                    states = _states(service, ids)
                except redis.RedisError:
                    continue
            drained_s = time.monotonic() - chaos_over
            twice = _rendered_twice(service.logs)
        finally:
            service.stop()
            loopback.httpd.shutdown()
    report = _report(args, client, chaos, states, twice, loopback, drained_s,
                     time.monotonic() - started)
    save_record(report, "soak", args.out)
    for name, value in report.items():
        print(f"{name}: {value}")
    return 0


def _report(args: argparse.Namespace, client: Client, chaos: Chaos,
            states: dict[str, tuple[str, str]], twice: Counter[str], loopback: Loopback,
            drained_s: float, total_s: float) -> dict[str, Any]:
    statuses = Counter(status for status, _ in states.values())
    hooks = Counter(hook for job_id, (_, hook) in states.items() if client.accepted[job_id])
    return {
        "command": "python -m benchmarks.soak " + " ".join(argv_of(args)),
        "submitted": args.jobs,
        "accepted": len(client.accepted),
        "done": statuses["done"],
        "error": statuses["error"],
        "stuck": len(states) - statuses["done"] - statuses["error"],
        "duplicated (rendered twice)": len(twice),
        "webhooks": dict(hooks),
        "webhook receiver: jobs told more than once": sum(
            1 for n in loopback.deliveries.values() if n > 1),
        "answers": dict(client.answers),
        "5xx without Retry-After": sum(n for name, n in client.answers.items()
                                       if "without Retry-After" in name),
        "chaos": dict(chaos.done),
        "seconds to drain after the chaos": round(drained_s, 1),
        "seconds in all": round(total_s, 1),
    }


def argv_of(args: argparse.Namespace) -> list[str]:
    return [f"--jobs {args.jobs}", f"--every {args.every:g}", f"--chaos {args.chaos:g}",
            f"--drain {args.drain:g}", f"--seed {args.seed}"]


if __name__ == "__main__":
    raise SystemExit(main())
