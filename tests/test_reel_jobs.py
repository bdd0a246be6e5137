"""Reels as jobs (POST /v1/video/reel), end to end: real ``zoomreel serve`` processes on a
real Redis, images and tracks over loopback HTTP, every video decoded with PyAV."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import requests
from decoded import decoded_audio, luma_frames
from imagegen import encode, photo_like, psnr
from loopback import LoopbackServer
from PIL import Image
from s3server import NO_PROFILES, MotoS3, done_result, files_in
from service_helpers import Serve, ServeFactory
from waiting import eventually

from zoomreel import ReelSpec, RenderSpec, Slide, render_reel
from zoomreel.audio import RATE
from zoomreel.reel import plan_reel, slide_rect
from zoomreel.render import _prepare

pytestmark = pytest.mark.system

#: Small and short: 256x144 at 15 fps.
SIZE = {"width": 256, "height": 144, "frame_rate": 15}
REEL = "/v1/video/reel"
PHOTOS = [encode(photo_like(w, h, seed=i), "PNG")
          for i, (w, h) in enumerate([(480, 270), (400, 400), (300, 450)])]


@pytest.fixture(scope="module")
def urls(image_server: LoopbackServer) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [image_server.add(f"/reels-{tag}/p{i}.png", data) for i, data in enumerate(PHOTOS)]


def click_track(seconds: float, at: float) -> bytes:
    """A quiet tone with a 5 ms click at ``at`` s, as FLAC (written with PyAV)."""
    t = np.arange(int(round(seconds * RATE))) / RATE
    wave = (0.01 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    samples = np.stack([wave, wave])
    click = int(at * RATE)
    samples[:, click:click + 240] = 0.9
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream: Any = out.add_stream("flac", rate=RATE)
        stream.layout = "stereo"
        for start in range(0, samples.shape[1], RATE):
            part = np.ascontiguousarray(samples[:, start:start + RATE])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
            frame.sample_rate = RATE
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def submit(api: Serve, body: dict[str, Any]) -> str:
    r = api.post(REEL, json=body)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["message"] == "Job queued successfully" and answer["code"] == 202
    return str(answer["job_id"])


def fetch(api: Serve, url: str) -> bytes:
    r = requests.get(url, headers=api.headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def assert_in_sync(data: bytes, click_at: float) -> None:
    """The click lands on its frame and the audio lasts as long as the video, to a frame."""
    audio, first, video_seconds, rate = decoded_audio(data)
    assert abs(first + audio.shape[1] / RATE - video_seconds) < 1 / rate
    at = first + int(np.argmax(np.abs(audio[0]))) / RATE
    assert int(round(at * rate)) == int(round(click_at * rate)) and abs(at - click_at) < 1 / rate


def own_y(source: bytes, spec: RenderSpec, k: int) -> np.ndarray:
    """Slide frame k's luma as render_video's kernel makes it (before encoding)."""
    pyramid, width, height, spec, _ = _prepare(source, spec)
    pyramid.prepare(max_scale=pyramid.width / width)
    y = np.empty((height, width), np.uint8)
    u = np.empty((height // 2, width // 2), np.uint8)
    pyramid.render(slide_rect(k, spec, pyramid.width, pyramid.height, (width, height)),
                   y, u, np.empty_like(u))
    return y


# -- whole reels ---------------------------------------------------------------------


def test_a_reel_job_shows_each_slides_exact_frames_and_blends_and_has_a_poster(
        api: Serve, urls: list[str], image_server: LoopbackServer, tmp_path: Path) -> None:
    track = image_server.add(f"/reels/{uuid.uuid4().hex}.flac", click_track(4.0, 1.4))
    body = {"slides": [{"image_url": urls[0], "length": 2, "zoom_speed": 8},
                       {"image_url": urls[1], "length": 2}],
            "transition": "crossfade", "transition_length": 0.6, "audio_url": track, **SIZE}
    job_id = submit(api, body)
    result = done_result(api, job_id)
    assert (result["duration"], result["width"], result["height"]) == (4.0, 256, 144)
    assert result["filename"].startswith("reel_") and result["filename"].endswith(".mp4")
    video = fetch(api, result["download_url"])
    poster = fetch(api, result["poster_url"])
    with Image.open(io.BytesIO(poster)) as image:
        assert (image.format, image.size) == ("JPEG", (256, 144))
    path = tmp_path / "check.mp4"
    path.write_bytes(video)
    mine = luma_frames(path)
    assert len(mine) == 60
    slides = [Slide(PHOTOS[0], length=2, zoom_speed=8), Slide(PHOTOS[1], length=2)]
    reel = ReelSpec(transition="crossfade", transition_length=0.6, **SIZE)
    plan = plan_reel(slides, reel)
    specs = plan.sized(256, 144)
    for i, k in [(0, 8), (0, 15), (1, 15), (1, 22)]:  # mid-slide
        exact = own_y(PHOTOS[i], specs[i], k)
        assert psnr(mine[30 * i + k], exact) >= 38.0, (i, k)
    span = plan.timeline.transition_frames(0)
    for j, n in enumerate(span):
        shot = plan.timeline.shot(n)
        a = own_y(PHOTOS[0], specs[0], shot.frame).astype(np.float64)
        b = own_y(PHOTOS[1], specs[1], shot.incoming_frame).astype(np.float64)
        w = (j + 0.5) / len(span)
        blend = a * (1 - w) + b * w
        assert psnr(mine[n], blend) >= 35.0, n
    assert_in_sync(video, 1.4)


def test_a_slide_that_cannot_be_fetched_ends_the_job_naming_it(
        api: Serve, urls: list[str], image_server: LoopbackServer) -> None:
    missing = urls[0].rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex}.png"
    job_id = submit(api, {"slides": [{"image_url": urls[0]}, {"image_url": missing}],
                          **SIZE})
    answer = api.wait(job_id, timeout=120)["response"]
    assert answer["job_status"] == "error"
    assert answer["error"].startswith("slides[1].image_url"), answer["error"]
    assert "404" in answer["error"]
    leftovers = [p.name for p in files_in(api.data_dir / "videos")
                 if job_id[:8] in p.name]
    assert leftovers == []  # nothing half-made stored


def test_a_track_that_is_not_audio_ends_the_job_naming_audio_url(
        api: Serve, urls: list[str], image_server: LoopbackServer) -> None:
    junk = image_server.add(f"/reels/{uuid.uuid4().hex}.mp3", b"not audio at all" * 200)
    job_id = submit(api, {"slides": [{"image_url": urls[0], "length": 1}],
                          "audio_url": junk, **SIZE})
    answer = api.wait(job_id, timeout=120)["response"]
    assert answer["job_status"] == "error"
    assert answer["error"].startswith("audio_url: "), answer["error"]


def test_a_reels_webhook_says_what_its_status_says(
        api: Serve, urls: list[str], image_server: LoopbackServer) -> None:
    """The reel's webhook is its status answer: done, with the poster and the duration;
    progress ran over all the reel's frames."""
    hook = f"/reels/hook-{uuid.uuid4().hex}"
    job_id = submit(api, {"slides": [{"image_url": url, "length": 1} for url in urls],
                          "transition": "crossfade", "webhook_url": image_server.url(hook),
                          **SIZE})
    status = api.wait(job_id, timeout=120)
    result = status["response"]["response"]
    assert status["response"]["job_status"] == "done", status
    assert result["duration"] == 3.0 and result["poster_url"]
    assert eventually(lambda: image_server.received(hook, "POST"), timeout=30)
    payload = json.loads(image_server.received(hook, "POST")[0].body)
    assert payload["job_id"] == job_id
    assert payload["response"]["job_status"] == "done"
    sent = payload["response"]["response"]
    assert (sent["download_url"].split("?")[0], sent["poster_url"].split("?")[0],
            sent["duration"]) == (result["download_url"].split("?")[0],
                                  result["poster_url"].split("?")[0], 3.0)
    frames = 3 * SIZE["frame_rate"]  # transitions take from the slides, never add
    assert status["response"]["progress"]["frames_total"] == frames


def test_single_image_jobs_get_a_poster_too(api: Serve, urls: list[str]) -> None:
    job_id = api.submit(image_url=urls[0], length=1, **SIZE)
    result = done_result(api, job_id)
    assert result["duration"] == 1.0
    poster = fetch(api, result["poster_url"])
    with Image.open(io.BytesIO(poster)) as image:
        assert (image.format, image.size) == ("JPEG", (256, 144))


# -- chunks --------------------------------------------------------------------------


def test_a_chunked_reel_joins_to_the_whole_with_the_track_in_sync(
        serve_factory: ServeFactory, urls: list[str], image_server: LoopbackServer,
        tmp_path: Path) -> None:
    api = serve_factory(workers=2, env={"ZOOMREEL_CHUNK_SECONDS": "1"})
    track = image_server.add(f"/reels/{uuid.uuid4().hex}.flac", click_track(3.0, 1.2))
    # 45 frames in chunks of 15: a crossfade of 0.6 s crosses each chunk boundary
    body = {"slides": [{"image_url": u, "length": 1} for u in urls],
            "transition": "crossfade", "transition_length": 0.6, "audio_url": track, **SIZE}
    job_id = submit(api, body)
    result = done_result(api, job_id)
    assert any(re.search(rf"\[job {job_id}\] chunk 2 \(frames 30-44\)", line)
               for line in api.lines), "not chunked"
    video = fetch(api, result["download_url"])
    assert_in_sync(video, 1.2)
    fetch(api, result["poster_url"])
    (tmp_path / "chunked.mp4").write_bytes(video)
    reel = ReelSpec(transition="crossfade", transition_length=0.6, **SIZE)
    whole = render_reel([Slide(p, length=1) for p in PHOTOS], tmp_path / "whole.mp4", reel)
    joined, theirs = luma_frames(tmp_path / "chunked.mp4"), luma_frames(whole.path)
    assert len(joined) == len(theirs) == 45
    assert min(psnr(a, b) for a, b in zip(joined, theirs, strict=True)) >= 35.0


# -- uploads and S3 ------------------------------------------------------------------


def test_an_uploaded_reel_is_stored_in_the_bucket_with_its_poster(
        serve_factory: ServeFactory, s3: MotoS3) -> None:
    bucket = s3.bucket()
    api = serve_factory(env={**NO_PROFILES, **s3.env(bucket)}, workers=1)
    files = [("image", (f"p{i}.png", data, "image/png")) for i, data in enumerate(PHOTOS[:2])]
    files.append(("audio", ("click.flac", click_track(2.0, 0.6), "audio/flac")))
    reel = {"slides": [{"length": 1}, {"length": 1, "caption": "Two"}],
            "transition": "fade", **SIZE}
    r = api.post(REEL, data={"reel": json.dumps(reel)}, files=files)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    result = done_result(api, job_id)
    name = result["filename"]
    poster = name.rsplit(".", 1)[0] + ".jpg"
    assert result["poster_url"].startswith(f"{s3.endpoint}/{bucket}/videos/{poster}?")
    image = requests.get(result["poster_url"], timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    video = requests.get(result["download_url"], timeout=30).content
    assert_in_sync(video, 0.6)
    assert s3.keys(bucket, "videos/") == sorted([f"videos/{name}", f"videos/{poster}"])
    assert s3.keys(bucket, "uploads/") == []  # removed with the job's end


# -- bad input -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(module_serve_factory: ServeFactory) -> Serve:
    """A service whose rules are small (5 slides, 1 MB tracks, 10 s videos), that
    refuses private addresses, and that renders nothing."""
    return module_serve_factory(workers=0, env={
        "ZOOMREEL_ALLOW_PRIVATE_URLS": "0", "ZOOMREEL_MAX_SLIDES": "5",
        "ZOOMREEL_MAX_AUDIO_MB": "1", "ZOOMREEL_MAX_LENGTH": "10"})


#: A public address, written as one: nothing to resolve (this machine has no DNS).
PUBLIC = "https://93.184.216.34/a.jpg"


@pytest.mark.parametrize(("body", "field"), [
    ({"slides": []}, "slides"),
    ({"slides": [{"image_url": PUBLIC}] * 6}, "slides"),
    ({"slides": [{"image_url": PUBLIC}] * 10_000}, "slides"),  # 400 KB: read, not 413
    ({"slides": [{"image_url": PUBLIC}] * 3 + [{"image_url": PUBLIC, "zoom_speed": 1e6}]},
     "slides[3].zoom_speed"),
    ({"slides": [{"image_url": PUBLIC}, {"image_url": PUBLIC, "colour": 1}]},
     "slides[1].colour"),
    ({"slides": [{"image_url": PUBLIC}], "music": "x"}, "music"),
    ({"slides": [{"image_url": PUBLIC}], "title": "bad\x07title"}, "title"),
    ({"slides": [{"image_url": PUBLIC}, {"image_url": PUBLIC, "caption": "a\nb"}]},
     "slides[1].caption"),
    ({"slides": [{"image_url": PUBLIC, "caption": "smile \U0001f600"}]}, "slides[0].caption"),
    ({"slides": [{"image_url": PUBLIC}], "title": "\u4e2d\u6587"}, "title"),
    ({"slides": [{"image_url": PUBLIC}, {"image_url": "http://127.0.0.1/a.jpg"}]},
     "slides[1].image_url"),
    ({"slides": [{"image_url": PUBLIC}], "audio_url": "http://10.0.0.1/song.mp3"},
     "audio_url"),
    ({"slides": [{"image_url": PUBLIC, "length": 6}, {"image_url": PUBLIC, "length": 6}]},
     "length"),
    ({"slides": [{"image_url": PUBLIC}], "length": "audio"}, "length"),
])
def test_a_bad_reel_is_refused_naming_the_field_and_nothing_is_stored(
        strict: Serve, body: dict[str, Any], field: str) -> None:
    r = strict.post(REEL, json=body)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert re.match(rf"{re.escape(field)}[: ]", answer["message"]), answer["message"]
    assert_nothing_stored(strict)


def assert_nothing_stored(api: Serve) -> None:
    jobs = api.post("/v1/toolkit/jobs/status", json={}).json()["response"]
    assert jobs == {}
    assert files_in(api.data_dir / "uploads") == []


def _tone_flac(seconds: float) -> bytes:
    return click_track(seconds, seconds / 2)


@pytest.mark.parametrize(("files", "reel", "field"), [
    ([("image", ("a.png", b"not an image" * 50, "image/png"))], {}, "slides[0].image"),
    ([("image", ("a.png", PHOTOS[0], "image/png")),
      ("image", ("b.jpg", b"GIF89a broken", "image/jpeg"))], {}, "slides[1].image"),
    ([("image", ("a.png", PHOTOS[0], "image/png")),
      ("audio", ("s.mp3", b"no sound here" * 100, "audio/mpeg"))], {}, "audio"),
    ([("image", ("a.png", PHOTOS[0], "image/png")),
      ("audio", ("s.mp3", b"\0" * (2**20 + 10), "audio/mpeg"))], {}, "audio"),
    ([("image", ("a.png", PHOTOS[0], "image/png")),
      ("audio", ("long.flac", _tone_flac(20.0), "audio/flac"))], {"length": "audio"}, "audio"),
    ([], {"slides": [{"length": 1}]}, "slides[0].image_url"),
])
def test_bad_uploads_are_refused_naming_them_and_nothing_is_stored(
        strict: Serve, files: list[Any], reel: dict[str, Any], field: str) -> None:
    r = strict.post(REEL, files=[*files, ("reel", (None, json.dumps(reel)))])
    assert r.status_code == 400, r.text
    answer = r.json()
    assert re.match(rf"{re.escape(field)}[: ]", answer["message"]), answer["message"]
    assert_nothing_stored(strict)
