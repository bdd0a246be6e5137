"""The ``zoomreel`` command line: render, worker, errors without tracebacks."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest
import redis
from loopback import LoopbackServer
from service_helpers import jpeg, probe, zoomreel_script
from waiting import eventually

from zoomreel.frontends.rest import Answers
from zoomreel.jobs import JobService, JobSettings

pytestmark = pytest.mark.system

SMALL_ARGS = ["--length", "1", "--frame-rate", "15", "--width", "256", "--height", "144"]


def zoomreel(*args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([zoomreel_script(), *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_render_a_file(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(jpeg(640, 360, (10, 200, 90), fmt="PNG"))
    out = tmp_path / "out.mp4"
    done = zoomreel("render", str(source), "-o", str(out), *SMALL_ARGS, "--zoom-speed", "20",
                    "--crf", "20", "--preset", "veryfast")
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info["frames"], info["width"], info["height"]) == (15, 256, 144)
    assert "\r[" not in done.stderr  # no progress bar when stderr is not a terminal


def test_render_in_parts_with_jobs(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(jpeg(640, 360, (10, 200, 90), fmt="PNG"))
    out = tmp_path / "out.mp4"
    done = zoomreel("render", str(source), "-o", str(out), "--length", "4", "--frame-rate",
                    "15", "--width", "256", "--height", "144", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert "60 frames" in done.stdout
    with av.open(str(out)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        assert [n for n, p in enumerate(packets) if p.is_keyframe] == [0, 30]  # two parts
    assert probe(out)["frames"] == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.mp4"]
    refused = zoomreel("render", str(source), "-o", str(out), "--jobs", "0")
    assert refused.returncode == 2 and "jobs" in refused.stderr.splitlines()[-1]


def test_render_a_url(tmp_path: Path, image_server: LoopbackServer) -> None:
    url = image_server.add("/cli/photo.jpg", jpeg())
    out = tmp_path / "url.mp4"
    done = zoomreel("render", url, "-o", str(out), "--length", "2", "--frame-rate", "15",
                    "--width", "320", "--height", "180",
                    env={"ZOOMREEL_ALLOW_PRIVATE_URLS": "1"})
    assert done.returncode == 0, done.stderr
    assert probe(out)["frames"] == 30


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg())
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [zoomreel_script(), "render", str(source), "-o",
         str(tmp_path / "o.mp4"), *SMALL_ARGS], stderr=slave,
        stdout=subprocess.DEVNULL)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(60) == 0
    assert b"15/15 frames" in output and b"[" in output


@pytest.mark.parametrize("make_args,needle", [
    (lambda d: ["render", str(d / "missing.jpg"), "-o", str(d / "o.mp4")], "No such file"),
    (lambda d: ["render", str(d / "text.jpg"), "-o", str(d / "o.mp4")], "image"),
    (lambda d: ["render", str(d / "ok.jpg"), "-o", str(d / "o.mp4"), "--frame-rate", "5"],
     "frame_rate"),
    (lambda d: ["render", str(d / "ok.jpg"), "-o", str(d / "o.mp4"), "--width", "131"],
     "width"),
    (lambda d: ["render", "http://127.0.0.1:9/x.jpg", "-o", str(d / "o.mp4")],
     "not a public address (loopback)"),
    (lambda d: ["render", str(d / "ok.jpg"), "-o", str(d / "o.mp4"), "--frame-rate", "x"],
     "--frame-rate"),
    (lambda d: ["render", str(d / "ok.jpg"), "-o", str(d / "o.mp4"), "--codec", "vp9"],
     "output: must end in .webm for codec vp9"),
    (lambda d: ["worker"], "ZOOMREEL_REDIS_URL"),
])
def test_bad_input_exits_2_with_one_error_line(tmp_path: Path, make_args, needle: str) -> None:
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "ok.jpg").write_bytes(jpeg())
    env = {"ZOOMREEL_REDIS_URL": "", "ZOOMREEL_ALLOW_PRIVATE_URLS": "0"}
    done = zoomreel(*make_args(tmp_path), env=env)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_render_webm_for_vp9(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg(640, 360, (200, 120, 40)))
    out = tmp_path / "out.webm"
    done = zoomreel("render", str(source), "-o", str(out), *SMALL_ARGS, "--codec", "vp9",
                    "--speed", "fastest")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Matroska/WebM
    info = probe(out)
    assert (info["frames"], info["width"], info["height"]) == (15, 256, 144)


def test_help_and_the_module_entry_point() -> None:
    done = zoomreel("render", "--help")
    assert done.returncode == 0 and "--frame-rate" in done.stdout
    assert "15 to 60" in done.stdout  # ranges come from the field table
    done = subprocess.run([sys.executable, "-m", "zoomreel.frontends.cli", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "render" in done.stdout


def test_worker_renders_jobs_from_a_shared_redis(redis_url: str, tmp_path: Path) -> None:
    settings = JobSettings(data_dir=tmp_path, allow_private_urls=True)
    api = JobService(redis.Redis.from_url(redis_url), settings, embedded=False,
                     answer=Answers().status)
    jobs = [api.submit({"length": 1, "frame_rate": 15, "width": 256, "height": 144},
                       upload=jpeg(color=(0, 0, 250)))[0] for _ in range(2)]
    worker = subprocess.Popen(
        [zoomreel_script(), "worker", "--threads", "1",
         "--data-dir", str(tmp_path)],
        env={**os.environ, "ZOOMREEL_REDIS_URL": redis_url}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        def states() -> list[str]:
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
            return [api.get(j.id).status for j in jobs]

        eventually(states, until=lambda states: set(states) == {"done"}, timeout=60,
                   interval=0.1, what="the worker to render both jobs")
        assert api.health()["workers"] >= 1
        for job in jobs:
            assert probe(settings.storage_dir / api.get(job.id).filename)["frames"] == 15
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0


def test_render_in_parts_says_the_focus_auto_used(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 360), (128, 128, 128))
    ImageDraw.Draw(image).ellipse((420, 40, 540, 160), fill=(20, 20, 20))
    source = tmp_path / "in.png"
    image.save(source)
    said = []
    for jobs in ("1", "2"):
        done = zoomreel("render", str(source), "-o", str(tmp_path / f"{jobs}.mp4"),
                        *SMALL_ARGS, "--length", "2", "--focus", "auto", "--jobs", jobs)
        assert done.returncode == 0, done.stderr
        said.append([line for line in done.stdout.splitlines() if "focus auto" in line])
    assert said[0] == said[1] and len(said[0]) == 1, said  # the single render's line
    assert said[0][0].startswith("focus auto: 0.75, 0.3") and "(by saliency)" in said[0][0]
