"""The REST API over real HTTP against ``zoomreel serve``: the documented workflow and
renders end to end. Answers that need no server process (validation, keys, limits,
downloads byte by byte, documents, CORS) are tested in process: test_rest_app.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import API_KEY, SMALL, Serve, jpeg, probe
from waiting import eventually

import zoomreel

pytestmark = pytest.mark.system

ENVELOPE = {"endpoint", "code", "id", "job_id", "response", "message", "run_time", "queue_time",
            "total_time", "pid", "queue_id", "queue_length", "build_number"}

#: The module's ``api`` (two keys accepted) and ``photo_url`` (tests/conftest.py).
SERVE_OPTIONS = {"workers": 2, "api_key": f"{API_KEY},second-key"}
PHOTO = {"width": 640, "height": 360, "color": (30, 160, 220)}


def test_documented_workflow_end_to_end(api: Serve, photo_url: str) -> None:
    r = api.post("/v1/image/convert/video", json={
        "image_url": photo_url, "length": 4, "frame_rate": 30, "zoom_speed": 3,
        "width": 640, "height": 360, "id": "my-request-7"})
    assert r.status_code == 202
    body = r.json()
    assert set(body) == ENVELOPE
    assert body["code"] == 202 and body["message"] == "Job queued successfully"
    assert body["response"] is None and body["id"] == "my-request-7"
    assert body["queue_length"] == 1  # this job: every earlier one of the module finished
    assert body["build_number"] == zoomreel.__version__
    assert body["pid"] in http_pids(api)
    assert isinstance(body["queue_id"], int) and body["queue_id"] > 0
    job_id = body["job_id"]

    seen: list[dict[str, Any]] = []

    def poll() -> requests.Response:
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
        return r

    r = eventually(poll, until=lambda r: r.json()["response"]["job_status"] in ("done", "error"),
                   timeout=60, what="the job to end")
    answer = r.json()
    assert seen[0]["job_status"] in ("queued", "running")
    assert seen[-1]["job_status"] == "done", seen[-1]
    done = seen[-1]
    assert {"job_status", "job_id", "queue_id", "process_id", "response"} <= set(done)
    assert done["job_id"] == job_id and done["queue_id"] == body["queue_id"]
    # serve renders in its own process: that process is the job's, and the answer's pid
    assert api.proc is not None
    assert done["process_id"] == answer["pid"] == api.proc.pid
    assert answer["queue_length"] == 0 and answer["build_number"] == zoomreel.__version__
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

    health = requests.get(api.url + "/health", timeout=10)  # no key needed
    assert health.status_code == 200 and health.json()["redis"] is True
    assert health.json()["workers"] >= 1 and health.json()["queue_length"] == 0
    assert health.json()["pid"] in http_pids(api)


def http_pids(api: Serve) -> set[int]:
    """The processes of ``api`` that answer HTTP: its API processes, or serve itself."""
    assert api.proc is not None
    ours = {pid for pid in api.tree()
            if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes()}
    return ours - {api.proc.pid} or {api.proc.pid}


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
    tail = requests.get(done["download_url"], headers={"Range": "bytes=-5"}, timeout=30)
    assert tail.status_code == 206 and tail.content == whole.content[-5:]  # signed, no key
    head = requests.head(done["download_url"], headers=api.headers, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Type"] == media_type
    assert int(head.headers["Content-Length"]) == len(whole.content)
    assert head.headers["ETag"] == whole.headers["ETag"]
    cached = requests.get(done["download_url"],
                          headers={"If-None-Match": whole.headers["ETag"]}, timeout=30)
    assert cached.status_code == 304 and cached.content == b""
    past = requests.get(done["download_url"], headers={"Range": f"bytes={done['size']}-"},
                        timeout=30)
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{done['size']}"


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


def test_multipart_takes_points_and_numbers_as_text(api: Serve) -> None:
    files = {"image": ("p.jpg", jpeg(480, 270), "image/jpeg")}
    r = api.post("/v1/image/convert/video", files=files, data={
        "length": "0.5", "frame_rate": "15", "focus": "0.25,0.75", "zoom_speed": "20",
        "width": "320", "height": "180", "background": "#102030"})
    assert r.status_code == 202, r.text
    assert api.wait(r.json()["job_id"])["response"]["job_status"] == "done"
