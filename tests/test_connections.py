"""Connections that send no request never lock clients out (frontends/_connections.py):
real ``zoomreel serve``, real sockets on loopback, all from 127.0.0.1 as the fresh
client is. The precise timings are measured by ``python -m benchmarks.hostile``."""

from __future__ import annotations

import json
import resource
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from service_helpers import API_KEY, SMALL, Serve, ServeFactory
from waiting import eventually

from zoomreel.frontends._connections import HEAD_TIMEOUT_S, PER_ADDRESS

pytestmark = pytest.mark.system

ONE_PROCESS = {"ZOOMREEL_HTTP_PROCESSES": "1"}


@pytest.fixture(autouse=True)
def open_files() -> Iterator[None]:
    """Room for the attacking sockets in this process: the soft limit raised to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the open-files limit ({hard}) is too low for 600 sockets")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Sockets:
    """Sockets to serve that stay open until :meth:`close`; ``drip`` ones send the
    start of a request head, then one more byte every ``every`` seconds."""

    def __init__(self, api: Serve) -> None:
        host, port = api.url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.open: list[socket.socket] = []
        self.dripping: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def idle(self, count: int) -> list[socket.socket]:
        made = [socket.create_connection(self.address, timeout=10) for _ in range(count)]
        for sock in made:
            sock.setblocking(False)
        self.open += made
        return made

    def drip(self, count: int, every: float = 5.0) -> list[socket.socket]:
        made = self.idle(count)
        for sock in made:
            sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        self.dripping += made
        if self.thread is None:
            self.thread = threading.Thread(target=self._drip, args=(every,), daemon=True)
            self.thread.start()
        return made

    def _drip(self, every: float) -> None:
        while not self.stop.wait(every):
            for sock in list(self.dripping):
                try:
                    sock.send(b"X")
                except OSError:
                    pass  # serve closed it

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        for sock in self.open:
            sock.close()


@pytest.fixture
def sockets() -> Iterator[list[Sockets]]:
    made: list[Sockets] = []
    yield made
    for each in made:
        each.close()


def closed(sock: socket.socket) -> bool:
    """Whether serve has closed ``sock`` (its end of file is there to read)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def fresh_client(api: Serve, job_id: str) -> tuple[float, float]:
    """Seconds a new client (a new connection each) takes to get /health and the
    status answer; 10 s when it gets none within 10 s."""
    times = []
    for call in (lambda: requests.get(api.url + "/health", timeout=10),
                 lambda: requests.post(api.url + "/v1/toolkit/job/status", timeout=10,
                                       json={"job_id": job_id},
                                       headers={"X-API-Key": API_KEY})):
        start = time.monotonic()
        try:
            ok = call().status_code == 200
        except requests.RequestException:
            ok = False
        times.append(time.monotonic() - start if ok else 10.0)
    return times[0], times[1]


def test_idle_and_slowloris_sockets_do_not_lock_a_fresh_client_out(
        serve_factory: ServeFactory, sockets: list[Sockets]) -> None:
    api = serve_factory(workers=0)  # its API processes, as a user runs it
    job_id = api.submit(image_url="http://127.0.0.1:9/x.jpg", **SMALL)  # stays queued
    attack = Sockets(api)
    sockets.append(attack)
    attack.idle(400)
    attack.drip(200)
    # the bound, on the median of five fresh clients: one slow answer on a
    # loaded machine is not a lock-out (benchmarks.hostile measures each)
    health, status = zip(*(fresh_client(api, job_id) for _ in range(5)), strict=True)
    assert statistics.median(health) <= 2.0, health
    assert statistics.median(status) <= 2.0, status
    assert max(health + status) < 10.0, (health, status)  # every one was answered


def test_a_request_head_not_complete_in_time_is_closed(
        serve_factory: ServeFactory, sockets: list[Sockets]) -> None:
    api = serve_factory(workers=0, env=ONE_PROCESS)
    attack = Sockets(api)
    sockets.append(attack)
    started = time.monotonic()
    (slow,) = attack.drip(1, every=1.0)  # a byte a second: never idle, never done
    (quiet,) = attack.idle(1)  # sends nothing: not a head in progress
    eventually(lambda: closed(slow), timeout=HEAD_TIMEOUT_S + 20,
               what="serve to close a head dripping a byte a second")
    assert time.monotonic() - started >= HEAD_TIMEOUT_S - 0.5
    assert not closed(quiet)


def test_the_oldest_idle_connections_of_an_address_make_room_and_requests_stay(
        serve_factory: ServeFactory, sockets: list[Sockets]) -> None:
    api = serve_factory(workers=0, env=ONE_PROCESS)
    attack = Sockets(api)
    sockets.append(attack)
    # a call waiting for its video (nothing renders it), and an upload under way (head
    # complete, body still coming); then more idle connections than one address may keep
    (waiting,) = attack.idle(1)
    call = json.dumps({"image_url": "http://127.0.0.1:9/x.jpg", **SMALL}).encode()
    waiting.send(b"POST /v1/image/transform/video HTTP/1.1\r\nHost: x\r\n"
                 b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(call)).encode() + b"\r\n\r\n" + call)
    eventually(lambda: any("job submitted" in line for line in api.lines),
               what="the waiting call's job (in serve's log: no other connection is made)")
    (upload,) = attack.idle(1)
    body = b'{"image_url": 1}'
    upload.send(b"POST /v1/image/convert/video HTTP/1.1\r\nHost: x\r\n"
                b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    idle = attack.idle(PER_ADDRESS + 10)
    over = 2 + len(idle) - PER_ADDRESS  # neither request is ever the one closed
    eventually(lambda: [closed(s) for s in idle[:over]], until=all, timeout=20,
               what=f"serve to close the {over} oldest idle connections")
    assert not any(closed(s) for s in idle[over:])
    assert not closed(waiting)
    assert not closed(upload)
    upload.setblocking(True)
    upload.settimeout(30)
    upload.sendall(body[5:])
    answer = upload.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 "), answer  # answered: image_url is no URL
