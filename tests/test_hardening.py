"""Bad input never gets a 500, and nothing is stored when the answer is not 202: real
``zoomreel serve``, real HTTP (some requests written byte by byte on a socket)."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import API_KEY, SMALL, Serve, ServeFactory, jpeg, metric
from waiting import eventually


@pytest.fixture(scope="module")
def api(module_serve_factory: ServeFactory) -> Serve:
    return module_serve_factory(workers=1)


@pytest.fixture(scope="module")
def photo_url(image_server: LoopbackServer) -> str:
    return image_server.add("/hardening/photo.jpg", jpeg(320, 180))


def raw(api: Serve, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; return the status, headers and body of the answer."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def post_raw(api: Serve, path: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
            + "Connection: close\r\n\r\n")
    status, _, answer = raw(api, head.encode() + body)
    return status, json.loads(answer)


def jobs_now(api: Serve) -> set[str]:
    answer = api.post("/v1/toolkit/jobs/status", json={"since_seconds": 3600})
    assert answer.status_code == 200
    return set(answer.json()["response"])


@pytest.mark.parametrize("field, text", [
    ("id", '"x\\ud800y"'), ("id", '"\\udfff"'), ("image_url", '"http://h/\\ud800.jpg"'),
])
def test_unpaired_surrogates_are_400_and_store_nothing(api: Serve, photo_url: str,
                                                       field: str, text: str) -> None:
    before = jobs_now(api)
    body = json.dumps({"image_url": photo_url, **SMALL})[:-1] + f', "{field}": {text}}}'
    status, answer = post_raw(api, "/v1/image/convert/video", body.encode())
    assert status == 400 and answer["field"] == field, answer
    assert "surrogate" in answer["message"]
    assert jobs_now(api) == before


def test_surrogates_in_names_and_job_ids_are_400(api: Serve) -> None:
    status, answer = post_raw(api, "/v1/image/convert/video", b'{"\\ud800": 1}')
    assert status == 400 and answer["field"] == "body"
    status, answer = post_raw(api, "/v1/toolkit/job/status", b'{"job_id": "a\\ud800"}')
    assert status == 400 and answer["field"] == "job_id"


@pytest.mark.parametrize("depth", [17, 5000])
def test_deep_nesting_is_400(api: Serve, photo_url: str, depth: int) -> None:
    before = jobs_now(api)
    nested = "[" * depth + "]" * depth
    body = json.dumps({"image_url": photo_url})[:-1] + f', "id": {nested}}}'
    status, answer = post_raw(api, "/v1/image/convert/video", body.encode())
    assert status == 400, answer
    assert "nested" in answer["message"]
    assert jobs_now(api) == before


@pytest.mark.parametrize("name", [
    "x%00.mp4", "a" * 300 + ".mp4", "%2e%2e%2fapi_key", ".hidden.mp4", "video.mp4%00.txt",
    "%ff%fe.mp4", "../api_key", "..%2fapi_key", "..%2F..%2Fetc%2Fpasswd",
    "../redis/appendonly.aof", ".", "..%5capi_key"])
def test_names_that_cannot_be_files_are_404(api: Serve, name: str) -> None:
    # as sent, undecoded: waitress's decoding of the path is part of what is tested
    status, headers, body = raw(api, (
        f"GET /v1/storage/download/{name} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
        "Connection: close\r\n\r\n").encode())
    assert status == 404, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] in ("File not found", "Route not found")
    assert b"test-key" not in body


def test_a_body_over_the_servers_limit_is_the_json_envelope(api: Serve) -> None:
    # waitress turns this away before the app sees it: the answer is still the API's
    status, headers, body = raw(api, (
        "POST /v1/image/convert/video HTTP/1.1\r\nHost: x\r\n"
        f"X-API-Key: {API_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {200 * 2**20}\r\nConnection: close\r\n\r\n").encode())
    assert status == 413
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["code"] == 413 and "larger" in answer["message"]


def test_error_messages_never_show_server_paths(api: Serve) -> None:
    files = {"image": ("notes.jpg", b"this is not an image, just text" * 20, "image/jpeg")}
    r = api.post("/v1/image/convert/video", files=files, data={"length": "1"})
    assert r.status_code == 202
    answer = api.wait(r.json()["job_id"])["response"]
    assert answer["job_status"] == "error"
    assert "not an image" in answer["error"]
    assert str(api.data_dir) not in answer["error"] and "/" not in answer["error"]


def burst(api: Serve, keys: list[str], tries: int, url: str) -> list[tuple[str, int, str]]:
    """``tries`` submits per key, all at once: (key, status, message) of each."""
    def submit(key: str) -> tuple[str, int, str]:
        r = requests.post(api.url + "/v1/image/convert/video", timeout=60,
                          headers={"X-API-Key": key}, json={"image_url": url, **SMALL})
        return key, r.status_code, r.json()["message"]

    with ThreadPoolExecutor(len(keys) * tries) as pool:
        return list(pool.map(submit, keys * tries))


def test_the_queue_limit_holds_exactly_under_concurrent_submits(serve_factory: Any,
                                                                photo_url: str) -> None:
    api = serve_factory(workers=0, env={"ZOOMREEL_MAX_QUEUE_LENGTH": "7"})
    results = burst(api, [API_KEY], 20, photo_url)
    assert sorted(status for _, status, _ in results) == [202] * 7 + [429] * 13
    assert all("The queue is full (7 jobs waiting)" in m for _, s, m in results if s == 429)
    assert api.post("/v1/toolkit/jobs/status").json()["queue_length"] == 7


def test_the_per_key_limit_holds_exactly_under_concurrent_submits(serve_factory: Any,
                                                                  photo_url: str) -> None:
    keys = ["key-a", "key-b", "key-c"]
    api = serve_factory(workers=0, api_key=",".join(keys),
                        env={"ZOOMREEL_MAX_JOBS_PER_KEY": "3"})
    results = burst(api, keys, 7, photo_url)
    for key in keys:
        mine = sorted(status for k, status, _ in results if k == key)
        assert mine == [202] * 3 + [429] * 4, key
    assert all("This API key has 3 jobs waiting" in m for _, s, m in results if s == 429)


def test_metrics_and_json_logs_tell_what_happened(serve_factory: Any,
                                                  image_server: LoopbackServer) -> None:
    api = serve_factory(workers=1, env={"ZOOMREEL_LOG_FORMAT": "json"})
    assert requests.get(api.url + "/metrics", timeout=10).status_code == 401
    hook = image_server.add("/hardening/hook", b"", "text/plain", status=204)
    job = api.submit(image_url=image_server.add("/hardening/m.jpg", jpeg(320, 180)),
                     webhook_url=hook, **SMALL)
    assert api.wait(job)["response"]["job_status"] == "done"
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert metric(text, "zoomreel_jobs_submitted_total") == 1
    assert metric(text, "zoomreel_jobs_finished_total", status="done") == 1
    assert metric(text, "zoomreel_render_frames_total") == 15
    assert metric(text, "zoomreel_render_seconds_count") == 1
    assert metric(text, "zoomreel_render_frames_per_second") > 0
    assert metric(text, "zoomreel_jobs", state="queued") == 0
    assert metric(text, "zoomreel_queue_length") == 0
    assert metric(text, "zoomreel_redis_connections_total") >= 1
    text = eventually(lambda: api.get("/metrics").text, interval=0.1,
                      until=lambda text: "zoomreel_webhook_attempts_total{" in text,
                      what="the webhook's attempt in /metrics")
    assert metric(text, "zoomreel_webhook_attempts_total", outcome="delivered") == 1
    # every log event is one JSON line; the job's carry its id
    events = [json.loads(line) for line in api.lines if line.startswith("{")]
    banner = [line for line in api.lines if not line.startswith("{")]
    assert len(banner) == 3, banner  # serving on, API key, data dir: printed, not logged
    mine = [e["message"] for e in events if e.get("job_id") == job]
    assert any(m == "job submitted" for m in mine)
    assert any(m.startswith("render done: 15 frames") for m in mine)
    assert any(m.startswith("webhook delivered") for m in mine)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
