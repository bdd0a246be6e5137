"""Clients written for the upstream No-Code Architects Toolkit, played against a real
``zoomreel serve``: they call its routes as its published clients do (only the base URL
and key changed), read ``response`` as the video's URL, and fetch it without the key."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import Serve, ServeFactory, jpeg, probe
from waiting import eventually

pytestmark = pytest.mark.system

LEGACY = "/v1/image/transform/video"
CONVERT = "/v1/image/convert/video"
#: Upstream's answer for a finished job (a synchronous call, a webhook, a status's inner).
FINISHED = {"endpoint", "code", "id", "job_id", "response", "message", "run_time",
            "queue_time", "total_time", "pid", "queue_id", "queue_length", "build_number"}
#: Upstream's 202 for a job queued with a webhook_url key.
ACCEPTED = {"endpoint", "code", "id", "job_id", "message", "pid", "queue_id",
            "max_queue_length", "queue_length", "build_number"}
QUICK = {"length": 1, "frame_rate": 15}
#: The module's ``api`` (tests/conftest.py).
SERVE_OPTIONS = {"workers": 2}


def _call(api: Serve, path: str, body: dict[str, Any], timeout: float = 120) -> requests.Response:
    """As upstream's Python client calls: JSON, its key header, a long read time-out."""
    return requests.post(api.url + path, json=body, headers={"x-api-key": api.key},
                         timeout=timeout)


@pytest.mark.parametrize("shape, image, size", [
    ("landscape", (640, 360), (1920, 1080)),
    ("portrait", (360, 640), (1080, 1920)),
    ("square", (400, 400), (1080, 1920)),
])
def test_a_synchronous_call_answers_the_video_url(
        api: Serve, image_server: LoopbackServer, shape: str, image: tuple[int, int],
        size: tuple[int, int]) -> None:
    url = image_server.add(f"/upstream/{shape}.jpg", jpeg(*image, (40, 120, 200)))
    r = _call(api, LEGACY, {"image_url": url, "id": f"upstream-{shape}", **QUICK})
    body = r.json()
    assert r.status_code == 200 == body["code"], body
    assert set(body) == FINISHED
    assert body["endpoint"] == LEGACY and body["message"] == "success"
    assert body["id"] == f"upstream-{shape}" and body["queue_id"] > 0
    assert isinstance(body["response"], str) and body["response"].startswith(api.url)
    assert body["total_time"] >= body["run_time"] > 0
    video = requests.get(body["response"], timeout=30)  # the signed link: no key
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    decoded = probe(video.content)
    assert (decoded["width"], decoded["height"]) == size and decoded["frames"] == 15
    # the job is a job like any other: the status route knows it, done
    status = api.post("/v1/toolkit/job/status", json={"job_id": body["job_id"]}).json()
    assert status["response"]["job_status"] == "done"
    inner = status["response"]["response"]
    assert set(inner) == FINISHED and inner["code"] == 200
    assert inner["response"].split("?")[0] == body["response"].split("?")[0]  # signed anew


@pytest.mark.parametrize("route, status_of", [
    ("/upstream/missing.jpg", 404),    # the image host answers 404
    ("/upstream/not-an-image.jpg", 200),  # it answers, but not an image
])
def test_a_failed_synchronous_call_says_why_with_its_status(
        api: Serve, image_server: LoopbackServer, route: str, status_of: int) -> None:
    if status_of == 200:
        image_server.add(route, b"<html>not an image</html>", ctype="image/jpeg")
    r = _call(api, LEGACY, {"image_url": image_server.url(route), **QUICK})
    body = r.json()
    assert r.status_code == body["code"] == 400, body  # the input's fault: an honest 4xx
    assert set(body) == FINISHED and body["response"] is None
    assert body["message"] and body["message"] != "success"
    # upstream pollers wait for "done": a failed job of these semantics reads done
    status = api.post("/v1/toolkit/job/status", json={"job_id": body["job_id"]}).json()
    assert status["response"]["job_status"] == "done"
    assert status["response"]["response"]["code"] == 400
    assert status["response"]["response"]["message"] == body["message"]


def test_a_bad_field_is_a_400_before_any_job(api: Serve, image_server: LoopbackServer) -> None:
    r = _call(api, LEGACY, {"image_url": image_server.url("/upstream/x.jpg"), "frame_rate": 99})
    assert r.status_code == r.json()["code"] == 400 and r.json()["field"] == "frame_rate"
    assert r.json()["endpoint"] == LEGACY
    assert requests.post(api.url + LEGACY, json={"image_url": "http://x/y.jpg"},
                         timeout=10).status_code == 401


def _hooks(image_server: LoopbackServer, path: str) -> Callable[[], list[dict[str, Any]]]:
    image_server.add(path, b"ok", ctype="text/plain")
    return lambda: [json.loads(r.body) for r in image_server.received(path, "POST")]


def test_with_a_webhook_url_it_answers_202_and_posts_the_envelope(
        api: Serve, image_server: LoopbackServer) -> None:
    posted = _hooks(image_server, "/upstream/hook-done")
    url = image_server.add("/upstream/hooked.jpg", jpeg(480, 270))
    r = _call(api, LEGACY, {"image_url": url, "webhook_url": image_server.url(
        "/upstream/hook-done"), "id": "hooked", **QUICK})
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == ACCEPTED
    assert body["code"] == 202 and body["message"] == "processing" and body["id"] == "hooked"
    assert body["endpoint"] == LEGACY and isinstance(body["max_queue_length"], int)
    hook = eventually(posted, timeout=60, what="the webhook")[0]
    assert set(hook) == FINISHED and hook["code"] == 200 and hook["job_id"] == body["job_id"]
    assert hook["message"] == "success" and hook["id"] == "hooked"
    assert probe(requests.get(hook["response"], timeout=30).content)["frames"] == 15


def test_a_failed_jobs_webhook_has_its_code_and_cause(
        api: Serve, image_server: LoopbackServer) -> None:
    posted = _hooks(image_server, "/upstream/hook-failed")
    r = _call(api, LEGACY, {"image_url": image_server.url("/upstream/gone.jpg"),
                            "webhook_url": image_server.url("/upstream/hook-failed"), **QUICK})
    assert r.status_code == 202
    hook = eventually(posted, timeout=60, what="the webhook")[0]
    assert hook["code"] == 400 and hook["response"] is None and "404" in hook["message"]


@pytest.mark.parametrize("route", [LEGACY, CONVERT])
def test_an_empty_webhook_url_queues_without_a_webhook(
        api: Serve, image_server: LoopbackServer, route: str) -> None:
    url = image_server.add("/upstream/empty-hook.jpg", jpeg(320, 180))
    r = _call(api, route, {"image_url": url, "webhook_url": "", **QUICK})
    assert r.status_code == 202, r.text
    assert r.json()["message"] == ("processing" if route == LEGACY else "Job queued successfully")
    answer = api.wait(r.json()["job_id"])
    assert answer["response"]["job_status"] == "done"
    assert "webhook" not in answer["response"]  # none was to be sent


def test_the_documented_route_keeps_its_contract(api: Serve, image_server: LoopbackServer,
                                                 ) -> None:
    url = image_server.add("/upstream/documented.jpg", jpeg(320, 180))
    r = _call(api, CONVERT, {"image_url": url, **QUICK})
    assert r.status_code == 202 and r.json()["response"] is None
    assert r.json()["endpoint"] == CONVERT and r.json()["message"] == "Job queued successfully"


def test_the_convert_route_can_take_upstreams_semantics(
        serve_factory: ServeFactory, image_server: LoopbackServer) -> None:
    api = serve_factory(workers=1, env={"ZOOMREEL_CONVERT_ROUTE": "upstream"})
    url = image_server.add("/upstream/switched.jpg", jpeg(640, 360))
    r = _call(api, CONVERT, {"image_url": url, **QUICK})
    body = r.json()
    assert r.status_code == 200 == body["code"] and body["endpoint"] == CONVERT
    assert probe(requests.get(body["response"], timeout=30).content)["frames"] == 15


def test_waiting_requests_beyond_the_limit_get_503_and_create_nothing(
        serve_factory: ServeFactory, image_server: LoopbackServer) -> None:
    # no render threads: the first call waits for as long as the test wants
    api = serve_factory(workers=0, env={"ZOOMREEL_MAX_WAITING": "1",
                                        "ZOOMREEL_HTTP_PROCESSES": "1"})
    url = image_server.add("/upstream/limit.jpg", jpeg(320, 180))
    first = threading.Thread(target=_swallow, args=(api, {"image_url": url, **QUICK}),
                             daemon=True)
    first.start()
    eventually(lambda: _jobs(api), until=lambda jobs: len(jobs) == 1, what="the first job")
    r = _call(api, LEGACY, {"image_url": url, **QUICK})
    assert r.status_code == r.json()["code"] == 503, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and "webhook_url" in r.json()["message"]
    assert len(_jobs(api)) == 1  # the refused call queued nothing
    # the other routes still answer while a call waits
    assert api.get("/v1/toolkit/authenticate").status_code == 200


def test_a_restart_while_a_call_waits_loses_no_job(
        serve_factory: ServeFactory, image_server: LoopbackServer) -> None:
    api = serve_factory(workers=0)  # the job waits: nothing renders it yet
    url = image_server.add("/upstream/restart.jpg", jpeg(320, 180))
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(
        _swallow(api, {"image_url": url, **QUICK})), daemon=True)
    caller.start()
    jobs = eventually(lambda: _jobs(api), until=lambda jobs: len(jobs) == 1, what="the job")
    (job_id,) = jobs
    assert api.proc is not None
    api.proc.send_signal(signal.SIGTERM)
    caller.join(30)
    assert not caller.is_alive()  # never a hang: an error or an answer
    got = outcome[0]
    if isinstance(got, requests.Response):
        assert got.status_code == got.json()["code"] == 503 and got.json()["job_id"] == job_id
    assert api.proc.wait(30) == 0
    api.workers = 1
    api.start()  # the same data dir, its Redis's append-only file: the job is there
    answer = api.wait(job_id)
    assert answer["response"]["job_status"] == "done"
    assert answer["response"]["response"]["code"] == 200


def _swallow(api: Serve, body: dict[str, Any]) -> requests.Response | Exception:
    try:
        return _call(api, LEGACY, body, timeout=60)
    except requests.RequestException as exc:
        return exc


def _jobs(api: Serve) -> dict[str, str]:
    r = api.post("/v1/toolkit/jobs/status", json={"since_seconds": 3600})
    assert r.status_code == 200, r.text
    return dict(r.json()["response"])
