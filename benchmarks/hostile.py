"""Hostile clients and receivers against ``zoomreel serve`` (issue 18, parts 2 and 6).

    python -m benchmarks.hostile [--idle 400] [--slow 200] [--fresh 20]
                                 [--hanging 8] [--per-hanging 2] [--http-processes N]
                                 [--only flood|webhooks] [--reconnect]

Two measurements, each on a serve of its own in a temporary folder (embedded Redis):

* **flood**: ``--idle`` sockets connect and send nothing, ``--slow`` sockets send a
  request head one byte every 5 s (slowloris), all from 127.0.0.1; then ``--fresh``
  fresh clients, one after another, each on a new connection, ask ``GET /health`` and
  the status route (a queued job's). Reports their latencies (median, worst) before
  and during the flood, how many of them failed, and how many attacking sockets serve
  had closed by the end. ``--reconnect``: the attacker opens each socket serve closes
  again at once.
* **webhooks**: ``--hanging`` receivers that accept the connection and never answer get
  ``--per-hanging`` jobs' webhooks each; then one job whose receiver answers at once.
  Reports how long after its job was done the healthy receiver had its webhook (the
  bound is conservative: from the last status poll that still saw the job running).

Prints a Markdown table and writes ``benchmarks/results/<UTC time>-hostile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from benchmarks.load import KEY, _free_port, _serve, _wait_processes

from ._record import RESULTS, save_record

SMALL = {"length": 1, "frame_rate": 15, "width": 256, "height": 144}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=400)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--fresh", type=int, default=20)
    parser.add_argument("--hanging", type=int, default=8)
    parser.add_argument("--per-hanging", type=int, default=2)
    parser.add_argument("--http-processes", type=int, default=None)
    parser.add_argument("--only", choices=("flood", "webhooks"), default=None)
    parser.add_argument("--reconnect", action="store_true",
                        help="open each attacking socket serve closes again at once")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attackers' sockets
    env = {**os.environ, "ZOOMREEL_API_KEY": KEY, "ZOOMREEL_ALLOW_PRIVATE_URLS": "1"}
    if args.http_processes:
        env["ZOOMREEL_HTTP_PROCESSES"] = str(args.http_processes)
    record: dict[str, Any] = {"time": datetime.now(UTC).isoformat(), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="zoomreel-hostile-") as tmp:
        if args.only in (None, "flood"):
            with _running(Path(tmp) / "flood", env, "--render-threads", "0") as base:
                record["flood"] = flood(base, args.idle, args.slow, args.fresh,
                                        args.reconnect)
        if args.only in (None, "webhooks"):
            with _running(Path(tmp) / "hooks", env, "--render-threads", "2") as base:
                record["webhooks"] = webhooks(base, args.hanging, args.per_hanging)
    record["load_end"] = os.getloadavg()
    save_record(record, "hostile", args.out)
    _print(record)
    return 0


@contextmanager
def _running(data: Path, env: dict[str, str], *flags: str) -> Iterator[str]:
    port = _free_port()
    proc = _serve(port, data, env, *flags)
    base = f"http://127.0.0.1:{port}"
    try:
        processes = int(env.get("ZOOMREEL_HTTP_PROCESSES") or min(4, os.cpu_count() or 1))
        _wait_processes(base, processes)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- flood -----------------------------------------------------------------------------

class Attack:
    """``idle`` sockets that send nothing and ``slow`` ones that drip a request head;
    with ``reconnect``, each one serve closes is opened again at once (as slowloris
    tools do)."""

    _HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n"

    def __init__(self, base: str, idle: int, slow: int, every: float = 5.0,
                 reconnect: bool = False) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.every = every
        self.stop = threading.Event()
        self.reopened = 0
        self.idle = [self._connect() for _ in range(idle)]
        self.slow = [self._connect(self._HEAD) for _ in range(slow)]
        self.threads = [threading.Thread(target=self._drip, daemon=True)]
        if reconnect:
            self.threads.append(threading.Thread(target=self._reconnect, daemon=True))
        for thread in self.threads:
            thread.start()

    def _connect(self, head: bytes = b"") -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        if head:
            sock.sendall(head)
        sock.setblocking(False)
        return sock

    def _drip(self) -> None:
        while not self.stop.wait(self.every):
            for sock in list(self.slow):
                try:
                    sock.send(b"X")
                except OSError:
                    pass  # serve closed it

    def _reconnect(self) -> None:
        while not self.stop.wait(0.1):
            for kind, head in ((self.idle, b""), (self.slow, self._HEAD)):
                for n, sock in enumerate(kind):
                    if _closed(sock):
                        sock.close()
                        try:
                            kind[n] = self._connect(head)
                        except OSError:
                            continue
                        self.reopened += 1

    def closed(self) -> dict[str, int]:
        """How many of each kind serve has closed."""
        return {"idle": sum(map(_closed, self.idle)), "slow": sum(map(_closed, self.slow))}

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        for sock in self.idle + self.slow:
            sock.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def fresh_requests(base: str, job_id: str, count: int,
                   timeout: float = 10.0) -> dict[str, list[float | None]]:
    """``count`` fresh clients in turn, each on a new connection: the seconds each took
    to get ``/health`` and the status answer (None: no answer within ``timeout``)."""
    times: dict[str, list[float | None]] = {"health": [], "status": []}
    for _ in range(count):
        for name, call in (
                ("health", lambda: requests.get(base + "/health", timeout=timeout)),
                ("status", lambda: requests.post(
                    base + "/v1/toolkit/job/status", json={"job_id": job_id},
                    headers={"X-API-Key": KEY, "Connection": "close"}, timeout=timeout))):
            start = time.perf_counter()
            try:
                ok = call().status_code == 200
            except requests.RequestException:
                ok = False
            times[name].append(time.perf_counter() - start if ok else None)
    return times


def _summary(times: list[float | None]) -> dict[str, Any]:
    answered = [t for t in times if t is not None]
    return {"count": len(times), "failed": len(times) - len(answered),
            "median_s": round(statistics.median(answered), 4) if answered else None,
            "worst_s": round(max(answered), 4) if answered else None}


def flood(base: str, idle: int, slow: int, fresh: int,
          reconnect: bool = False) -> dict[str, Any]:
    job = requests.post(base + "/v1/image/convert/video", headers={"X-API-Key": KEY},
                        json={"image_url": "http://127.0.0.1:9/x.jpg", **SMALL}, timeout=30)
    job_id = job.json()["job_id"]  # --render-threads 0: it stays queued
    result: dict[str, Any] = {"idle": idle, "slow": slow, "reconnect": reconnect}
    before = fresh_requests(base, job_id, fresh)
    result["before"] = {k: _summary(v) for k, v in before.items()}
    started = time.monotonic()
    attack = Attack(base, idle, slow, reconnect=reconnect)
    result["attack_open_s"] = round(time.monotonic() - started, 3)
    try:
        during = fresh_requests(base, job_id, fresh)
        result["during"] = {k: _summary(v) for k, v in during.items()}
        result["during_all"] = during
        time.sleep(12)  # past the head deadline: the drippers are gone
        result["closed_by_serve_after_12_s"] = attack.closed()
        result["reopened_after_12_s"] = attack.reopened
        after = fresh_requests(base, job_id, fresh)
        result["after_12_s"] = {k: _summary(v) for k, v in after.items()}
    finally:
        attack.close()
    return result


# -- webhooks --------------------------------------------------------------------------

class Healthy:
    """A receiver that answers 204 at once and notes when each webhook came."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                job_id = json.loads(body)["job_id"]
                outer.arrived.setdefault(job_id, time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hanging_receivers(count: int) -> list[socket.socket]:
    """Listening sockets never accepted from: a connection is made (the backlog holds
    it) and no answer ever comes."""
    receivers = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        receivers.append(sock)
    return receivers


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 180), (200, 40, 40)).save(buf, "JPEG")
    return buf.getvalue()


def submit(base: str, image: bytes, webhook_url: str) -> str:
    """A small job, its image uploaded, whose webhook goes to ``webhook_url``."""
    fields = {k: str(v) for k, v in {**SMALL, "webhook_url": webhook_url}.items()}
    r = requests.post(base + "/v1/image/convert/video", headers={"X-API-Key": KEY},
                      files={"image": ("photo.jpg", image, "image/jpeg")}, data=fields,
                      timeout=30)
    r.raise_for_status()
    return str(r.json()["job_id"])


def done_after(base: str, job_id: str, timeout: float = 120.0) -> float:
    """Poll the job until done; return the time the last poll that still saw it not
    done was sent (the job was done after that moment)."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() < deadline:
        sent = time.monotonic()
        r = requests.post(base + "/v1/toolkit/job/status", json={"job_id": job_id},
                          headers={"X-API-Key": KEY}, timeout=30)
        if r.json()["response"]["job_status"] in ("done", "error"):
            return last
        last = sent
        time.sleep(0.02)
    raise RuntimeError(f"job {job_id} not done in {timeout} s")


def webhooks(base: str, hanging: int, per_hanging: int) -> dict[str, Any]:
    image = _jpeg()
    healthy = Healthy()
    silent = hanging_receivers(hanging)
    try:
        held = [submit(base, image, f"http://127.0.0.1:{s.getsockname()[1]}/hook")
                for s in silent for _ in range(per_hanging)]
        for job_id in held:
            done_after(base, job_id)
        job_id = submit(base, image, healthy.url)
        finished = done_after(base, job_id)
        deadline = time.monotonic() + 60
        while job_id not in healthy.arrived and time.monotonic() < deadline:
            time.sleep(0.01)
        arrived = healthy.arrived.get(job_id)
        return {"hanging": hanging, "per_hanging": per_hanging,
                "healthy_after_done_s": None if arrived is None
                else round(max(0.0, arrived - finished), 3)}
    finally:
        healthy.close()
        for sock in silent:
            sock.close()


def _print(record: dict[str, Any]) -> None:
    if "flood" in record:
        _print_flood(record["flood"])
    if "webhooks" in record:
        hooks = record["webhooks"]
        print(f"webhooks: {hooks['hanging']} hanging receivers x {hooks['per_hanging']} "
              f"jobs; the healthy receiver's webhook {hooks['healthy_after_done_s']} s "
              "after its job was done")
    print(f"load average start {record['load_start']}, end {record['load_end']}")


def _print_flood(flood: dict[str, Any]) -> None:
    print(f"flood: {flood['idle']} idle + {flood['slow']} slowloris sockets from 127.0.0.1 "
          f"(opened in {flood['attack_open_s']} s); fresh clients one after another")
    print("| when | route | answered | median s | worst s |")
    print("|---|---|---|---|---|")
    for when in ("before", "during", "after_12_s"):
        for route, s in flood[when].items():
            print(f"| {when} | {route} | {s['count'] - s['failed']}/{s['count']} "
                  f"| {s['median_s']} | {s['worst_s']} |")
    print(f"closed by serve after 12 s: {flood['closed_by_serve_after_12_s']}"
          + (f"; reopened by the attacker: {flood['reopened_after_12_s']}"
             if flood["reconnect"] else ""))


if __name__ == "__main__":
    raise SystemExit(main())
