"""The container image (Containerfile), built and run as docs/operations.md shows: ``tox -e
container`` (skipped elsewhere: it builds an image, a few minutes the first time).

Built on a Debian base made here with debootstrap (no registry is reached), run with a
volume; the documented workflow against it (submit by URL from a loopback server, poll,
download, decode); ``podman stop`` ends it cleanly; a new container on the same volume
still has the job, its video and its API key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from container_helpers import Container, Podman, base_image, build
from loopback import LoopbackServer
from service_helpers import SMALL, jpeg, probe
from waiting import eventually

pytestmark = [pytest.mark.system, pytest.mark.skipif(
    os.environ.get("ZOOMREEL_CONTAINER_TESTS") != "1",
    reason="builds and runs the container image: run it with `tox -e container`")]

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/zoomreel-test:latest"
COLOR = (30, 160, 220)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    podman = Podman(tmp_path_factory.mktemp("podman"))
    reason = podman.cannot_run()
    if reason:
        pytest.skip(f"no container test: {reason}")
    return podman


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The Containerfile built on the local base; prints what it adds to that base."""
    base = base_image(podman)
    probe_run = podman("run", "--rm", "--network", "host", base, "true", check=False)
    if probe_run.returncode != 0:
        pytest.skip("no container test: podman cannot run a container here: "
                    + (probe_run.stderr.strip().splitlines() or ["?"])[-1])
    build(podman, ROOT, IMAGE, base)
    added = (podman.size(IMAGE) - podman.size(base)) / 1e6
    print(f"\ncontainer image: {added:.0f} MB on top of its base")
    return IMAGE


@pytest.fixture
def containers(podman: Podman, image: str) -> Iterator[Any]:
    """``containers(volume, **env)`` starts one; every one is removed after the test,
    and the volumes named."""
    started: list[Container] = []
    volumes: set[str] = set()

    def start(volume: str, **env: str) -> Container:
        volumes.add(volume)
        container = Container(podman, image, f"zoomreel-test-{uuid.uuid4().hex[:8]}",
                              volume, {"ZOOMREEL_ALLOW_PRIVATE_URLS": "1", **env})
        started.append(container)
        return container.start()

    yield start
    for container in started:
        container.remove()
    for volume in volumes:
        podman("volume", "rm", "--force", volume, check=False)


def _workflow(container: Container, image_url: str) -> tuple[str, bytes]:
    """The documented three steps: submit, poll until done, download the signed link
    (without the key). Returns the job id and the video."""
    r = container.post("/v1/image/convert/video", {"image_url": image_url, **SMALL})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    answer = eventually(
        lambda: container.post("/v1/toolkit/job/status", {"job_id": job_id}).json(),
        until=lambda a: a["response"]["job_status"] in ("done", "error"),
        timeout=120, interval=0.2, what=f"job {job_id} to end")
    assert answer["response"]["job_status"] == "done", (answer, container.logs())
    video = requests.get(answer["response"]["response"]["download_url"], timeout=30)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    return job_id, video.content


def _check_video(data: bytes) -> None:
    info = probe(data)
    assert (info["frames"], info["width"], info["height"]) == (
        SMALL["length"] * SMALL["frame_rate"], SMALL["width"], SMALL["height"])
    assert all(abs(got - want) < 12 for got, want in zip(info["color"], COLOR, strict=True)), info


def _processes(container: Container) -> list[tuple[int, int, str, str]]:
    """(pid, parent pid, state, name) of every process in the container (the image
    has no ps: /proc is read by its Python)."""
    script = (
        "import os\n"
        "for p in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try: s = open(f'/proc/{p}/stat').read()\n"
        "    except OSError: continue\n"
        "    name, rest = s[s.index('(') + 1:s.rindex(')')], s[s.rindex(')') + 2:].split()\n"
        "    print(p, rest[1], rest[0], name)\n")
    rows = [line.split(maxsplit=3) for line in container.exec("python3", "-c", script).splitlines()]
    return [(int(pid), int(ppid), state, name) for pid, ppid, state, name in rows]


def _check_processes(container: Container) -> None:
    """An init as PID 1 with serve under it, nothing as root, and an orphan that dies
    is reaped (no zombie stays)."""
    processes = {pid: (ppid, state, name) for pid, ppid, state, name in _processes(container)}
    assert processes[1][2] == "dumb-init", processes
    assert any(ppid == 1 and name == "zoomreel" for ppid, _, name in processes.values()), processes
    assert container.exec("id", "-u").strip() == "10001"
    # The shell exits at once: its child is an orphan of the init, which must reap it.
    orphan = int(container.exec("sh", "-c", "sleep 0.5 & echo $!"))
    eventually(lambda: {p for p, *_ in _processes(container)}, timeout=15,
               until=lambda pids: orphan not in pids, what=f"orphan {orphan} to be reaped")


@pytest.mark.timeout(3000)  # building the base and the image: minutes, not a hang
def test_image_serves_stops_cleanly_and_keeps_its_data_in_the_volume(
        containers: Any, podman: Podman, image_server: LoopbackServer) -> None:
    volume = f"zoomreel-test-{uuid.uuid4().hex[:8]}"
    image_url = image_server.add("/container/photo.jpg", jpeg(640, 360, COLOR))
    first = containers(volume)  # no ZOOMREEL_API_KEY: one is generated into the volume
    print(f"container: /health answered {first.healthy_after:.1f} s after podman run")
    assert first.key, first.logs()
    job_id, video = _workflow(first, image_url)
    _check_video(video)
    assert podman("healthcheck", "run", first.name, check=False).returncode == 0, first.logs()
    # The kernels came compiled with the image: the render wrote no Numba cache file.
    changed = podman("diff", first.name).stdout.splitlines()
    assert not [line for line in changed if line.endswith((".nbi", ".nbc"))], changed
    _check_processes(first)

    code, took = first.stop()
    print(f"container: podman stop took {took:.1f} s")
    assert code == 0, (code, took, first.logs())  # 137 had it needed the SIGKILL
    logs = first.logs()
    assert "shutting down" in logs and "Traceback" not in logs, logs

    second = containers(volume)
    assert second.key == first.key
    answer = second.post("/v1/toolkit/job/status", {"job_id": job_id}).json()
    assert answer["response"]["job_status"] == "done", answer
    again = requests.get(answer["response"]["response"]["download_url"], timeout=30)
    assert again.status_code == 200 and again.content == video
