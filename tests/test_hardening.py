"""Bad input never gets a 500, and nothing is stored when the answer is not 202: real
``zoomreel serve``, real HTTP (some requests written byte by byte on a socket)."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import LoopbackServer
from service_helpers import API_KEY, SMALL, Serve, jpeg, metric
from waiting import eventually

pytestmark = pytest.mark.system

#: The module's ``api`` (tests/conftest.py); its ``photo_url`` is a 320x180 JPEG.
SERVE_OPTIONS = {"workers": 1}


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


def answers(api: Serve, request: bytes) -> tuple[int, dict[str, Any], int]:
    """Send ``request`` as is; the first answer's status and JSON body, and how many
    answers came back before the connection closed."""
    status, headers, data = raw(api, request)
    length = int(headers["content-length"])
    return status, json.loads(data[:length]), 1 + data[length:].count(b"HTTP/1.")


SMUGGLED = (b"GET /v1/toolkit/authenticate HTTP/1.1\r\nHost: x\r\nX-API-Key: "
            + API_KEY.encode() + b"\r\n\r\n")


@pytest.mark.parametrize("framing", [
    b"HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
    b"HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5",
    b"HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x",
    b"HTTP/1.0\r\nTransfer-Encoding: chunked",
    b"HTTP/1.1\r\nTransfer-Encoding: gzip, chunked",
    b"HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 5",
])
def test_ambiguous_framing_is_400_and_nothing_after_it_runs(api: Serve, framing: bytes,
                                                            ) -> None:
    # behind a proxy that goes by the other header, the chunked body's end would start a
    # second request (smuggled): here the first is refused and the connection closed
    status, answer, count = answers(api, (
        b"POST /v1/toolkit/jobs/status " + framing + b"\r\nHost: x\r\nX-API-Key: "
        + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n\r\n0\r\n\r\n"
        + SMUGGLED))
    assert status == 400 and answer["code"] == 400, answer
    assert "Transfer-Encoding" in answer["message"], answer
    assert set(answer) >= {"endpoint", "code", "message", "error", "build_number"}
    assert count == 1  # the smuggled request got no answer


@pytest.mark.parametrize("head", [
    b"G\x01T /health HTTP/1.1\r\nHost: x",  # not a method
    b"GET /health HTTP/1.1\r\n Host: x",  # a continuation line first
    b"GET /health HTTP/1.1\r\nHost: x\nX-Other: y",  # a bare LF
    b"POST /v1/toolkit/jobs/status HTTP/1.1\r\nHost: x\r\nContent-Length: 1x",
    b"POST /v1/toolkit/jobs/status HTTP/1.1\r\nHost: x\r\nContent-Length: -1",
    b"GET /health HTTP/1.1\r\nHost: x\r\nHost" + b"\xff" * 3 + b": y",
])
def test_waitress_own_400s_are_the_json_envelope(api: Serve, head: bytes) -> None:
    status, headers, body = raw(api, head + b"\r\n\r\n")
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["code"] == 400 and answer["message"].startswith("request: "), answer
    assert answer["error"] == answer["message"] and answer["build_number"]


@pytest.mark.parametrize("query, status, message", [
    ("expires=%C2%B2&signature=a", 403, "Forbidden: the link is not signed"),
    ("expires=%EF%BC%91&signature=%ff", 403, "Forbidden: the link is not signed"),
    ("expires=²&signature=a", 400, "request: Bad URI"),  # raw UTF-8: waitress refuses it
])
def test_a_link_with_digits_that_are_not_ascii_is_4xx(api: Serve, query: str, status: int,
                                                      message: str) -> None:
    # "²".isdigit() is true, int("²") raises: this was a 500, without a key
    answer, _, body = raw(api, b"GET /v1/storage/download/x.mp4?" + query.encode()
                          + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer == status, body
    assert json.loads(body)["message"] == message


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_a_window_that_is_not_a_number_is_400_not_503(api: Serve, number: bytes) -> None:
    # NaN passed the schema's bounds and reached Redis: 503 with Retry-After, which a
    # client following it retried for ever
    status, answer = post_raw(api, "/v1/toolkit/jobs/status",
                              b'{"since_seconds": ' + number + b"}")
    assert status == 400 and answer["field"] == "since_seconds", answer


#: Bytes a request target may hold as sent (anything but a space, CR or LF), and some
#: that matter to the signed-link route.
_TARGET_BYTES = st.one_of(
    st.binary(max_size=16).map(lambda b: bytes(c for c in b if c not in b" \r\n")),
    st.sampled_from([b"\xc2\xb2", b"%ED%A0%80", b"%ff", b"%", b"..", b"%2e%2e", b"9" * 13,
                     b"-1", b"", b"?", b"#", b"&", b"="]),
    st.integers().map(lambda n: str(n).encode()),
)
#: Digits that are not ASCII ("²", "٣", "１", "₁"), percent-encoded, alone or in a number.
_DIGITS = st.lists(st.sampled_from([b"%C2%B2", b"%D9%A3", b"%EF%BC%91", b"%E2%82%81", b"7"]),
                   min_size=1, max_size=3).map(b"".join)


@settings(max_examples=100)
@given(name=st.one_of(st.just(b"video_x.mp4"), _TARGET_BYTES),
       expires=st.one_of(_DIGITS, _TARGET_BYTES),
       signature=st.one_of(st.just(b"c2lnbmF0dXJl"), _TARGET_BYTES), extra=_TARGET_BYTES)
def test_signed_link_targets_never_get_5xx(api: Serve, name: bytes, expires: bytes,
                                           signature: bytes, extra: bytes) -> None:
    # as sent on the wire, through waitress's own reading of the line (no key)
    target = (b"/v1/storage/download/" + name + b"?expires=" + expires + b"&signature="
              + signature + b"&" + extra)
    status, headers, body = raw(api, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n")
    assert status < 500, (target, body)
    assert headers["content-type"].startswith("application/json"), (target, body)


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
