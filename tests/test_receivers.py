"""Webhook receivers that hang hold only their own deliveries (zoomreel.jobs.receivers):
the rules on their own, then real ``zoomreel serve`` with receivers on loopback that
never answer. The precise timing is measured by ``python -m benchmarks.hostile``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from loopback import LoopbackServer, send
from service_helpers import SMALL, Serve, ServeFactory, jpeg
from waiting import eventually

from zoomreel.jobs.receivers import PER_RECEIVER, SLOW_S, Receivers, receiver_of

# -- the rules ---------------------------------------------------------------------------


@pytest.mark.unit
def test_a_receiver_has_at_most_its_share_in_flight_and_others_are_not_held() -> None:
    receivers = Receivers(threads=32)
    url = "http://hooks.example:8000/job?id=1"
    assert receivers.take(url)
    assert not receivers.take("http://hooks.example:8000/job?id=2")  # not seen yet: one
    receivers.give_back(url, 0.1)  # answered at once
    taken = [receivers.take(f"http://hooks.example:8000/job?id={n}")
             for n in range(PER_RECEIVER + 3)]
    assert taken == [True] * PER_RECEIVER + [False] * 3  # one receiver, whatever the query
    assert receivers.take("http://hooks.example:8001/job")  # another port: another receiver
    assert receivers.take("https://hooks.example:8000/job")  # another scheme, too
    assert receivers.take("http://hooks.example:8000/other")  # and another path
    receivers.give_back(url, 0.1)
    assert receivers.take("http://HOOKS.example.:8000/job#x")  # the same one, spelled so


@pytest.mark.unit
def test_a_slow_receiver_gets_one_at_a_time_until_an_attempt_is_quick() -> None:
    receivers = Receivers(threads=32)
    url = "http://slow.example/hook"
    assert receivers.take(url)
    receivers.give_back(url, SLOW_S + 1)  # it hung until the time-out
    assert receivers.is_slow(url)
    assert receivers.take(url)
    assert not receivers.take(url)
    assert receivers.busy_delay_ms(url) > receivers.busy_delay_ms("http://quick.example/")
    receivers.give_back(url, 0.05)  # it answered at once
    assert not receivers.is_slow(url)
    assert receivers.take(url)
    receivers.give_back(url, 0.05)
    assert [receivers.take(url) for _ in range(PER_RECEIVER + 1)] == [True] * PER_RECEIVER + [False]


@pytest.mark.unit
def test_slow_receivers_together_hold_at_most_half_the_threads() -> None:
    receivers = Receivers(threads=8)
    slow = [f"http://10.0.0.{n}/hook" for n in range(10)]
    for url in slow:
        assert receivers.take(url)
        receivers.give_back(url, SLOW_S)
    assert [receivers.take(url) for url in slow] == [True] * 4 + [False] * 6
    assert receivers.take("http://10.0.1.1/hook")  # receivers that answer still get theirs
    receivers.give_back(slow[0], SLOW_S)
    assert receivers.take(slow[5])


@pytest.mark.unit
def test_receiver_of_names_scheme_host_port_and_path() -> None:
    assert receiver_of("https://Example.COM/a?b") == "https://example.com:443/a"
    assert receiver_of("http://example.com") == "http://example.com:80/"
    assert receiver_of("http://[::1]:9000/x") == "http://::1:9000/x"


# -- on a real serve -------------------------------------------------------------------


@pytest.fixture
def hanging() -> Iterator[list[LoopbackServer]]:
    """Eight receivers, each its own server, that read the webhook and never answer
    (until the test ends)."""
    servers = []
    for _ in range(8):
        server = LoopbackServer()
        server.routes["/hook"] = lambda h, s=server: _hang(h, s)
        servers.append(server)
    yield servers
    for server in servers:
        server.close()


def _hang(handler: BaseHTTPRequestHandler, server: LoopbackServer) -> None:
    server.release.wait(120)


def done_after(api: Serve, job_id: str) -> float:
    """Wait until the job is done; return when the last status request that still saw
    it not done was sent: the job was done after that moment."""
    last = time.monotonic()

    def poll() -> bool:
        nonlocal last
        sent = time.monotonic()
        finished = api.status(job_id)["response"]["job_status"] in ("done", "error")
        if not finished:
            last = sent
        return finished

    eventually(poll, timeout=120, interval=0.02, what=f"job {job_id} to be done")
    return last


@pytest.mark.system
def test_receivers_that_hang_do_not_delay_a_healthy_receivers_webhook(
        serve_factory: ServeFactory, image_server: LoopbackServer,
        hanging: list[LoopbackServer]) -> None:
    arrived: dict[str, float] = {}

    def healthy(handler: BaseHTTPRequestHandler) -> None:
        arrived.setdefault(handler.path, time.monotonic())
        send(handler, 204)

    api = serve_factory(workers=2)
    photo = image_server.add("/receivers/photo.jpg", jpeg())
    image_server.routes["/receivers/healthy"] = healthy
    held = {server: [api.submit(image_url=photo, webhook_url=server.url("/hook"), **SMALL)
                     for _ in range(3)]  # more than a receiver may have at once
            for server in hanging}
    for jobs in held.values():
        for job_id in jobs:
            done_after(api, job_id)
    eventually(lambda: [bool(s.received("/hook")) for s in hanging], until=all,
               what="every hanging receiver to hold a delivery")
    job_id = api.submit(image_url=photo, webhook_url=image_server.url("/receivers/healthy"),
                        **SMALL)
    finished = done_after(api, job_id)
    eventually(lambda: arrived, timeout=60, what="the healthy receiver's webhook")
    delay = next(iter(arrived.values())) - finished
    assert delay <= 2.0, f"the healthy webhook came {delay:.2f} s after its job was done"
    webhook = eventually(lambda: api.status(job_id)["response"]["webhook"],
                         until=lambda w: w["state"] != "pending", what="its state")
    assert (webhook["state"], webhook["attempts"]) == ("delivered", 1)
    for server, jobs in held.items():
        hooks = [api.status(j)["response"]["webhook"] for j in jobs]
        # a webhook put off because its receiver was busy was not attempted
        assert sum(h["attempts"] for h in hooks) <= len(server.received("/hook")), hooks
        assert all(h["state"] == "pending" for h in hooks), hooks
