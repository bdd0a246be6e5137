"""The REST API over real HTTP: the documented workflow and every documented error."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from loopback import LOOPBACK_FORMS, LoopbackServer
from service_helpers import API_KEY, SMALL, Serve, jpeg, probe

ENVELOPE = {"code", "id", "job_id", "response", "message", "run_time", "queue_time",
            "total_time", "pid", "queue_id", "queue_length", "build_number"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One service for the module (two keys accepted)."""
    serve = Serve(tmp_path_factory.mktemp("rest"), workers=2,
                  api_key=f"{API_KEY},second-key")
    serve.start()
    yield serve
    assert serve.stop() == 0


@pytest.fixture(scope="module")
def photo_url(image_server: LoopbackServer) -> str:
    return image_server.add("/rest/photo.jpg", jpeg(640, 360, (30, 160, 220)))


def test_documented_workflow_end_to_end(api: Serve, photo_url: str) -> None:
    r = api.post("/v1/image/convert/video", json={
        "image_url": photo_url, "length": 4, "frame_rate": 30, "zoom_speed": 3,
        "width": 640, "height": 360, "id": "my-request-7"})
    assert r.status_code == 202
    body = r.json()
    assert set(body) == ENVELOPE
    assert body["code"] == 202 and body["message"] == "Job queued successfully"
    assert body["response"] is None and body["id"] == "my-request-7"
    assert isinstance(body["queue_id"], int) and isinstance(body["pid"], int)
    assert body["queue_length"] >= 0 and body["build_number"]
    job_id = body["job_id"]

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = api.post("/v1/toolkit/job/status", json={"job_id": job_id})
        assert r.status_code == 200
        answer = r.json()
        assert set(answer) == ENVELOPE and answer["message"] == "success"
        assert answer["job_id"] == job_id and answer["id"] == "my-request-7"
        inner = answer["response"]
        seen.append(inner)
        if inner["job_status"] in ("queued", "running"):
            assert 1 <= int(r.headers["Retry-After"]) <= 30
            assert inner["response"] is None
            assert 0 <= inner["progress"]["frames_done"] <= inner["progress"]["frames_total"] == 120
        if inner["job_status"] in ("done", "error"):
            break
        time.sleep(0.05)
    assert seen[0]["job_status"] in ("queued", "running")
    assert seen[-1]["job_status"] == "done", seen[-1]
    done = seen[-1]
    assert {"job_status", "job_id", "queue_id", "process_id", "response"} <= set(done)
    assert "Retry-After" not in r.headers
    assert done["progress"] == {"frames_done": 120, "frames_total": 120, "percent": 100.0,
                                "eta_seconds": 0.0}
    result = done["response"]
    assert result["message"] == "Video conversion completed successfully"
    # A signed link (expiry and signature in the query: tests/test_signing.py).
    assert result["download_url"].startswith(
        f"{api.url}/v1/storage/download/{result['filename']}?expires=")
    assert (result["width"], result["height"], result["frame_rate"]) == (640, 360, 30)
    assert result["duration"] == 4.0
    assert answer["total_time"] == pytest.approx(answer["queue_time"] + answer["run_time"],
                                                 abs=0.002)

    video = requests.get(result["download_url"], headers=api.headers, timeout=30)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    assert len(video.content) == result["size"]
    info = probe(video.content)
    assert (info["frames"], info["width"], info["height"]) == (120, 640, 360)


def test_multipart_upload(api: Serve) -> None:
    r = api.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg(), "image/jpeg")},
                 data={"length": "1", "frame_rate": "15", "width": "256", "height": "144",
                       "zoom_speed": "10"})
    assert r.status_code == 202, r.text
    done = api.wait(r.json()["job_id"])["response"]
    assert done["job_status"] == "done", done
    video = api.get(f"/v1/storage/download/{done['response']['filename']}")
    info = probe(video.content)
    assert (info["frames"], info["width"], info["height"]) == (15, 256, 144)


def test_multipart_field_errors(api: Serve) -> None:
    r = api.post("/v1/image/convert/video", data={"length": "1"},
                 files={"other": ("x", b"x")})
    assert r.status_code == 400 and r.json()["field"] == "other"
    r = api.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg())},
                 data={"frame_rate": "fast"})
    assert r.status_code == 400 and r.json()["field"] == "frame_rate"


def test_second_key_is_accepted(api: Serve) -> None:
    r = api.post("/v1/toolkit/job/status", json={"job_id": "nope"},
                 headers={"X-API-Key": "second-key"})
    assert r.status_code == 404


def test_unknown_job_is_404(api: Serve) -> None:
    r = api.post("/v1/toolkit/job/status", json={"job_id": "invalid-job-id"})
    assert r.status_code == 404
    assert r.json() == {"error": "Job not found", "job_id": "invalid-job-id"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""},
                                     {"X-API-Key": API_KEY + "x"}])
@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/image/convert/video"), ("POST", "/v1/toolkit/job/status"),
    ("GET", "/v1/storage/download/video.mp4"), ("HEAD", "/v1/storage/download/video.mp4"),
])
def test_missing_or_wrong_key_is_401(api: Serve, headers: dict[str, str], method: str,
                                     path: str) -> None:
    r = requests.request(method, api.url + path, headers=headers, json={}, timeout=10)
    assert r.status_code == 401
    if method != "HEAD":
        assert r.json() == {"message": "Unauthorized"}


@pytest.mark.parametrize("field,value", [
    ("length", 0), ("length", -1), ("length", 601), ("length", "5"), ("length", None),
    ("frame_rate", 14), ("frame_rate", 61), ("frame_rate", 30.5), ("frame_rate", True),
    ("zoom_speed", -0.1), ("zoom_speed", 101), ("zoom_speed", "3"),
    ("width", 100), ("width", 129), ("width", 3842), ("height", 127), ("height", "1080"),
    ("image_url", "ftp://example.com/x.jpg"), ("image_url", "example.com/x.jpg"),
    ("image_url", 5), ("webhook_url", "file:///etc/passwd"), ("id", {"a": 1}),
    ("unknown_field", 1), ("direction", "up"), ("start_zoom", 0.5), ("end_zoom", 1001),
    ("focus", [0.5]), ("focus", [1.5, 0.5]), ("start_focus", "centre"), ("curve", "cubic"),
    ("easing", "bounce"), ("loop", "forever"), ("fit", "stretch"), ("background", "red"),
    ("background", "#12345"), ("orientation", "diagonal"), ("codec", "mpeg2"),
    ("speed", "ludicrous"), ("crf", 20), ("preset", "fast"),
])
def test_invalid_field_is_400_naming_it(api: Serve, photo_url: str, field: str,
                                        value: Any) -> None:
    body = {"image_url": photo_url, "length": 1, field: value}
    r = api.post("/v1/image/convert/video", json=body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["field"] == field and answer["rule"]
    assert field in answer["message"] and set(answer) >= ENVELOPE


@pytest.mark.parametrize("fields,named", [
    ({"zoom_speed": 5, "start_zoom": 2}, "start_zoom"),
    ({"direction": "out", "end_zoom": 2}, "end_zoom"),
    ({"focus": [0.2, 0.2], "start_focus": [0.1, 0.1]}, "start_focus"),
    ({"orientation": "portrait", "width": 1080}, "width"),
    ({"cycles": 3}, "cycles"),
    ({"loop": "none", "cycles": 2}, "cycles"),
    ({"width": 3840, "height": 3840}, "height"),
])
def test_conflicting_fields_are_400_naming_one(api: Serve, photo_url: str,
                                               fields: dict[str, Any], named: str) -> None:
    r = api.post("/v1/image/convert/video", json={"image_url": photo_url, **fields})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == named and r.json()["message"].startswith(named)


def test_motion_and_framing_options_over_the_api(api: Serve, photo_url: str) -> None:
    job = api.submit(image_url=photo_url, length=1, frame_rate=15, orientation="portrait",
                     fit="contain-blur", start_zoom=1.4, end_zoom=1, easing="ease-out",
                     start_focus=[0.3, 0.5], end_focus=[0.6, 0.4], loop="ping-pong",
                     cycles=2, curve="constant", speed="fastest")
    answer = api.wait(job)["response"]
    assert answer["job_status"] == "done", answer
    inner = answer["response"]
    assert (inner["width"], inner["height"]) == (1080, 1920)
    info = probe(api.get(f"/v1/storage/download/{inner['filename']}").content)
    assert (info["frames"], info["width"], info["height"]) == (15, 1080, 1920)


def test_missing_image_url_and_bad_bodies_are_400(api: Serve) -> None:
    r = api.post("/v1/image/convert/video", json={"length": 3})
    assert r.status_code == 400 and r.json()["field"] == "image_url"
    assert "required" in r.json()["rule"]
    r = api.post("/v1/image/convert/video", data=b"{not json",
                 headers={**api.headers, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.post("/v1/image/convert/video", json=[1, 2])
    assert r.status_code == 400
    r = api.post("/v1/toolkit/job/status", json={"job_id": "x", "extra": 1})
    assert r.status_code == 400 and r.json()["field"] == "extra"


def test_url_with_credentials_is_refused_at_submit(api: Serve) -> None:
    r = api.post("/v1/image/convert/video",
                 json={"image_url": "http://user:pw@127.0.0.1/x.jpg"})
    assert r.status_code == 400 and r.json()["message"]


def test_body_over_the_limit_is_413(api: Serve, photo_url: str) -> None:
    r = api.post("/v1/image/convert/video",
                 json={"image_url": photo_url, "id": "x" * 70_000})
    assert r.status_code == 413


def test_download_range_head_and_traversal(api: Serve) -> None:
    r = api.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg())},
                 data={k: str(v) for k, v in SMALL.items()})
    done = api.wait(r.json()["job_id"])["response"]["response"]
    path = f"/v1/storage/download/{done['filename']}"
    whole = api.get(path).content
    assert len(whole) == done["size"]

    part = api.get(path, headers={**api.headers, "Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(whole)}"
    tail = api.get(path, headers={**api.headers, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole[-50:]
    bad = api.get(path, headers={**api.headers, "Range": f"bytes={len(whole)}-"})
    assert bad.status_code == 416

    head = requests.head(api.url + path, headers=api.headers, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(whole)
    assert head.headers["Content-Type"] == "video/mp4"

    assert api.get("/v1/storage/download/no_such_video.mp4").status_code == 404


@pytest.mark.parametrize(("codec", "extension", "media_type"), [
    ("vp9", ".webm", "video/webm"), ("h265", ".mp4", "video/mp4")])
def test_download_has_the_codecs_extension_and_media_type(
        api: Serve, codec: str, extension: str, media_type: str) -> None:
    r = api.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg())},
                 data={"codec": codec, "speed": "fastest",
                       **{k: str(v) for k, v in SMALL.items()}})
    assert r.status_code == 202, r.text
    done = api.wait(r.json()["job_id"])["response"]["response"]
    assert done["filename"].endswith(extension)
    assert urlsplit(done["download_url"]).path.endswith("/" + done["filename"])
    whole = requests.get(done["download_url"], headers=api.headers, timeout=30)
    assert whole.status_code == 200 and whole.headers["Content-Type"] == media_type
    assert probe(whole.content)["frames"] == 15
    part = requests.get(done["download_url"],
                        headers={**api.headers, "Range": "bytes=0-3"}, timeout=30)
    assert part.status_code == 206 and part.headers["Content-Type"] == media_type
    assert part.content == whole.content[:4]
    assert part.headers["Content-Range"] == f"bytes 0-3/{len(whole.content)}"
    head = requests.head(done["download_url"], headers=api.headers, timeout=10)
    assert head.headers["Content-Type"] == media_type


def test_download_serves_only_video_extensions(api: Serve) -> None:
    storage = api.data_dir / "videos"
    storage.mkdir(parents=True, exist_ok=True)
    for name in ("notes.txt", "clip.mkv", "clip.webm"):
        (storage / name).write_bytes(b"\x1a\x45\xdf\xa3 not really a video")
    assert api.get("/v1/storage/download/notes.txt").status_code == 404
    assert api.get("/v1/storage/download/clip.mkv").status_code == 404
    served = api.get("/v1/storage/download/clip.webm")
    assert served.status_code == 200 and served.headers["Content-Type"] == "video/webm"


def test_openapi_documents_both_video_types(api: Serve) -> None:
    doc = api.get("/openapi.json").json()
    download = doc["paths"]["/v1/storage/download/{filename}"]["get"]["responses"]
    assert set(download["200"]["content"]) == {"video/mp4", "video/webm"}
    host, port = api.url.removeprefix("http://").split(":")
    for raw in ("/v1/storage/download/../api_key", "/v1/storage/download/..%2fapi_key",
                "/v1/storage/download/%2e%2e%2fapi_key",
                "/v1/storage/download/..%2F..%2Fetc%2Fpasswd",
                "/v1/storage/download/../redis/appendonly.aof", "/v1/storage/download/.",
                "/v1/storage/download/..%5capi_key"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", raw, headers={"X-API-Key": API_KEY})
        resp = conn.getresponse()
        assert resp.status == 404, raw
        assert b"test-key" not in resp.read()
        conn.close()


def test_job_whose_image_is_not_an_image_ends_error(api: Serve,
                                                    image_server: LoopbackServer) -> None:
    url = image_server.add("/rest/fake.jpg", b"this is not an image at all" * 10)
    job_id = api.submit(image_url=url, **SMALL)
    answer = api.wait(job_id)["response"]
    assert answer["job_status"] == "error"
    assert "image" in answer["error"].lower() and answer["response"] is None


def test_image_url_that_404s_ends_error_without_retries(api: Serve,
                                                        image_server: LoopbackServer) -> None:
    job_id = api.submit(image_url=image_server.base + "/rest/missing.jpg", **SMALL)
    answer = api.wait(job_id, timeout=20)["response"]
    assert answer["job_status"] == "error" and answer["error"]
    assert len(image_server.received("/rest/missing.jpg", "GET")) == 1


def test_health_and_openapi_need_no_key(api: Serve) -> None:
    health = requests.get(api.url + "/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["redis"] is True and health.json()["workers"] >= 1
    doc = requests.get(api.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/image/convert/video", "/v1/toolkit/job/status",
            "/v1/storage/download/{filename}", "/health", "/openapi.json"} <= set(doc["paths"])
    assert set(doc["paths"]["/v1/storage/download/{filename}"]) >= {"get", "head"}
    submit = doc["components"]["schemas"]["SubmitRequest"]
    assert {"image_url", "length", "frame_rate", "zoom_speed", "webhook_url", "id",
            "width", "height"} <= set(submit["properties"])


def test_full_queue_is_429_with_retry_after(serve_factory: Any, photo_url: str) -> None:
    api = serve_factory(workers=0, env={"ZOOMREEL_MAX_QUEUE_LENGTH": "2"})
    first = api.submit(image_url=photo_url, **SMALL)
    api.submit(image_url=photo_url, **SMALL)
    r = api.post("/v1/image/convert/video", json={"image_url": photo_url, **SMALL})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0 and r.json()["queue_length"] == 2
    status = api.status(first)
    assert status["response"]["job_status"] == "queued" and status["queue_length"] == 2
    assert status["response"]["process_id"] is None


def test_default_rule_refuses_loopback_for_both_url_kinds(serve_factory: Any,
                                                          image_server: LoopbackServer) -> None:
    api = serve_factory(workers=1, env={"ZOOMREEL_ALLOW_PRIVATE_URLS": "0"})
    port = image_server.port
    image_server.add("/rest/forbidden.jpg", jpeg())
    for host in LOOPBACK_FORMS:
        url = f"http://{host}:{port}/rest/forbidden.jpg"
        r = api.post("/v1/image/convert/video", json={"image_url": url, **SMALL})
        assert r.status_code == 400, (host, r.text)
        assert r.json()["message"].startswith("image_url"), host
        r = api.post("/v1/image/convert/video", files={"image": ("p.jpg", jpeg(), "image/jpeg")},
                     data={"webhook_url": url, "length": "1"})
        assert r.status_code == 400, (host, r.text)
        assert r.json()["message"].startswith("webhook_url"), host
    assert image_server.received("/rest/forbidden.jpg") == []


def test_store_outage_is_503_and_health_says_so(serve_factory: Any, photo_url: str) -> None:
    api = serve_factory(workers=1)
    pid = int((api.data_dir / "redis" / "redis.pid").read_text())
    # frozen, not killed: serve would have a killed one back within a second
    os.kill(pid, signal.SIGSTOP)
    try:
        r = api.post("/v1/image/convert/video", json={"image_url": photo_url, **SMALL})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "Redis" in r.json()["message"]
        r = api.post("/v1/toolkit/job/status", json={"job_id": "x"})
        assert r.status_code == 503
        assert requests.get(api.url + "/health", timeout=10).status_code == 503
    finally:
        os.kill(pid, signal.SIGCONT)
    assert requests.get(api.url + "/health", timeout=10).status_code == 200


def test_multipart_takes_points_and_numbers_as_text(api: Serve) -> None:
    files = {"image": ("p.jpg", jpeg(480, 270), "image/jpeg")}
    r = api.post("/v1/image/convert/video", files=files, data={
        "length": "0.5", "frame_rate": "15", "focus": "0.25,0.75", "zoom_speed": "20",
        "width": "320", "height": "180", "background": "#102030"})
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["job_id"])["response"]["job_status"] == "done"
    r = api.post("/v1/image/convert/video", files=files, data={"focus": "0.25,x"})
    assert r.status_code == 400 and r.json()["field"] == "focus"
