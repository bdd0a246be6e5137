"""Podman for the container test: the command as this machine runs it, a Debian base
image made locally (no registry is reached), and the service running in a container.

Podman runs with ``runc`` and a ``containers.conf`` (written here, named by
``CONTAINERS_CONF``; /etc is never changed) that sets no default ulimits: raising a limit
is refused on these machines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from loopback import free_port
from waiting import eventually

#: where the debootstrapped base is kept between runs, as a tar of its root folder.
BASE_CACHE = Path(os.environ.get("ZOOMREEL_CONTAINER_CACHE",
                                 Path.home() / ".cache" / "zoomreel-container-base"))
BASE_IMAGE = "localhost/zoomreel-test-base:bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class Podman:
    """``podman --runtime runc`` with this test's containers.conf."""

    def __init__(self, conf_dir: Path) -> None:
        conf = conf_dir / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 stdin: Any = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", "--runtime", "runc", *args], env=self.env,
                              stdin=stdin, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    def cannot_run(self) -> str | None:
        """Why containers cannot run here, or None."""
        if shutil.which("podman") is None or shutil.which("runc") is None:
            return "podman or runc is not installed (apt-get install podman runc)"
        if os.geteuid() != 0:
            return "the base image is made with debootstrap, which needs root"
        if not BASE_CACHE.joinpath("rootfs.tar").is_file() and shutil.which("debootstrap") is None:
            return "debootstrap is not installed (apt-get install debootstrap)"
        info = self("info", check=False)
        if info.returncode != 0:
            return "podman cannot run here: " + (info.stderr.strip().splitlines() or ["?"])[-1]
        return None

    def size(self, image: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", image).stdout)


def apt_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror apt is configured with for ``suite`` (else Debian's own)."""
    try:
        lines = subprocess.run(["apt-get", "indextargets", "--format", "$(SITE) $(RELEASE)"],
                               capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_MIRROR
    for line in lines:
        site, _, release = line.partition(" ")
        if release == suite and site.startswith(("http://", "https://")):
            return site.rstrip("/")
    return DEFAULT_MIRROR


def base_image(podman: Podman) -> str:
    """A Debian bookworm image with Python 3.11, pip and venv, made with debootstrap
    (minbase) from apt's mirror; its root folder's tar is kept in BASE_CACHE, and the
    image in podman's store, so that only the first run pays for it (about a minute)."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    tar = BASE_CACHE / "rootfs.tar"
    if not tar.is_file():
        BASE_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=BASE_CACHE) as root:
            subprocess.run(
                ["debootstrap", "--variant=minbase",
                 "--include=python3,python3-venv,python3-pip,ca-certificates",
                 "bookworm", root, apt_mirror()],
                check=True, capture_output=True, timeout=900)
            subprocess.run(["tar", "-C", root, "-cf", f"{tar}.part", "."], check=True,
                           timeout=300)
        os.replace(f"{tar}.part", tar)
    with tar.open("rb") as f:
        podman("import", "-", BASE_IMAGE, stdin=f, timeout=300)
    return BASE_IMAGE


def build(podman: Podman, context: Path, tag: str, base: str) -> None:
    """Build the Containerfile on ``base``, pip reaching its index through the host's
    network, with the host's CA bundle (a TLS-inspecting proxy's CA is in it).

    Its build stage is tagged too (``tag``-build), so that its cached layers survive
    the pruning of dangling images (those of earlier builds) that keeps podman's store
    from growing by some 500 MB each time the sources change.
    """
    args = ["build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base}"]
    if CA_BUNDLE.is_file():
        args += ["--volume", "/etc/ssl/certs:/etc/ssl/certs:ro",
                 "--build-arg", f"PIP_CERT={CA_BUNDLE}"]
    index = os.environ.get("PIP_INDEX_URL") or subprocess.run(
        ["pip", "config", "get", "global.index-url"], capture_output=True, text=True,
    ).stdout.strip()
    if index.startswith(("http://", "https://")):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    name, _, version = tag.rpartition(":")
    for target, tagged in (["--target", "build"], f"{name}-build:{version}"), ([], tag):
        podman(*args, *target, "--tag", tagged, "--file", str(context / "Containerfile"),
               str(context), timeout=900)
    podman("image", "prune", "--force")


class Container:
    """The image's default command (``zoomreel serve``) in a container on the host's
    network (so that it reaches the test's loopback image server), on a free port."""

    def __init__(self, podman: Podman, image: str, name: str, volume: str,
                 env: dict[str, str] | None = None) -> None:
        self.podman, self.image, self.name, self.volume = podman, image, name, volume
        self.port = free_port()
        self.env = {"PORT": str(self.port), **(env or {})}
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.healthy_after = 0.0

    def start(self, timeout: float = 60) -> Container:
        """``podman run -d``, then wait for /health and the printed key; records how
        long that took in ``healthy_after``."""
        env = [a for k, v in self.env.items() for a in ("--env", f"{k}={v}")]
        started = time.monotonic()
        self.podman("run", "--detach", "--name", self.name, "--network", "host",
                    "--volume", f"{self.volume}:/data", *env, self.image)
        eventually(self._healthy, timeout=timeout, interval=0.05,
                   what=f"{self.name} to answer /health",
                   ignoring=(requests.ConnectionError,))
        self.healthy_after = time.monotonic() - started
        self.key = eventually(self._printed_key, timeout=10, what="the printed API key")
        return self

    def _healthy(self) -> bool:
        state = self.podman("inspect", "--format", "{{.State.Status}}", self.name).stdout
        assert state.strip() == "running", f"{self.name} is {state.strip()}:\n{self.logs()}"
        return requests.get(self.url + "/health", timeout=2).status_code == 200

    def _printed_key(self) -> str:
        for line in self.logs().splitlines():
            if line.startswith("API key: "):
                return line.split(": ", 1)[1].strip()
        return ""

    def logs(self) -> str:
        done = self.podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> str:
        return self.podman("exec", self.name, *command).stdout

    def stop(self, grace: int = 10) -> tuple[int, float]:
        """``podman stop`` (SIGTERM, then SIGKILL after ``grace`` s): the exit status and
        the seconds it took."""
        started = time.monotonic()
        self.podman("stop", "--time", str(grace), self.name, timeout=grace + 60)
        took = time.monotonic() - started
        code = self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout
        return int(code), took

    def remove(self) -> None:
        self.podman("rm", "--force", "--time", "0", self.name, check=False)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(self.url + path, json=body, headers={"X-API-Key": self.key},
                             timeout=30)
