"""The settings of ``zoomreel serve`` and ``zoomreel worker``: every one checked before
anything starts, refused with exit 2 and one line (the docs made from the same table:
test_docs.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from loopback import free_port
from service_helpers import SMALL, jpeg, zoomreel_script
from waiting import eventually

from zoomreel.errors import SettingError
from zoomreel.frontends.cli import build_parser
from zoomreel.frontends.config import SETTINGS, Config, Setting, load
from zoomreel.frontends.rest import Answers
from zoomreel.frontends.rest.signing import DEFAULT_TTL
from zoomreel.jobs import JobService, JobSettings
from zoomreel.jobs.broker import RENDER_QUEUE, queued_job_ids
from zoomreel.jobs.keys import acks_pattern, heartbeats
from zoomreel.storage import LocalStorage, S3Storage

VIDEO = "video_20250101_000000_deadbeef.mp4"


def _setting(source: str) -> Setting:
    """The setting a variable or a flag sets."""
    for setting in SETTINGS:
        if source in (setting.env, setting.flag, *setting.aliases, *setting.env_aliases):
            return setting
    raise AssertionError(f"no setting for {source}")


# (command, variable or flag, value); a flag's value goes on the command line.
# "{file}" stands for a path to an existing file.
REFUSED = [
    ("serve", "ZOOMREEL_RETENTION_DAYS", "-1"),
    ("serve", "ZOOMREEL_RETENTION_DAYS", "0.5"),
    ("serve", "ZOOMREEL_RETENTION_DAYS", "nan"),
    ("serve", "ZOOMREEL_RETENTION_DAYS", "seven"),
    ("serve", "ZOOMREEL_MAX_LENGTH", "0"),
    ("serve", "ZOOMREEL_MAX_LENGTH", "-5"),
    ("serve", "ZOOMREEL_MAX_LENGTH", "inf"),
    ("serve", "ZOOMREEL_MAX_QUEUE_LENGTH", "-1"),
    ("serve", "ZOOMREEL_MAX_QUEUE_LENGTH", "1.5"),
    ("serve", "ZOOMREEL_MAX_JOBS_PER_KEY", "-1"),
    ("serve", "ZOOMREEL_LEASE_SECONDS", "0.5"),
    ("serve", "ZOOMREEL_LEASE_SECONDS", "NaN"),
    ("serve", "ZOOMREEL_SIGNED_URL_TTL", "0"),
    ("serve", "ZOOMREEL_SIGNED_URL_TTL", "-inf"),
    ("serve", "ZOOMREEL_HTTP_PROCESSES", "0"),
    ("serve", "ZOOMREEL_HTTP_PROCESSES", "two"),
    ("serve", "ZOOMREEL_LOG_FORMAT", "xml"),
    ("serve", "ZOOMREEL_CONVERT_ROUTE", "legacy"),
    ("serve", "ZOOMREEL_MAX_WAITING", "-1"),
    ("serve", "ZOOMREEL_MAX_WAITING", "5000"),
    ("serve", "ZOOMREEL_ALLOW_PRIVATE_URLS", "true"),
    ("serve", "ZOOMREEL_ALLOW_PRIVATE_URLS", "2"),
    ("serve", "ZOOMREEL_WEBHOOK_SECRET", "not-a-secret"),
    ("serve", "ZOOMREEL_PUBLIC_URL", "ftp://videos.example.com"),
    ("serve", "ZOOMREEL_PUBLIC_URL", "videos.example.com"),
    ("serve", "ZOOMREEL_REDIS_URL", "localhost:6379"),
    ("serve", "ZOOMREEL_CORS_ORIGINS", "https://app.example.com/page"),
    ("serve", "ZOOMREEL_API_KEY", "two words"),
    ("serve", "ZOOMREEL_API_KEY", ","),
    ("serve", "ZOOMREEL_DATA_DIR", "{file}"),
    ("serve", "--port", "70000"),
    ("serve", "--port", "-1"),
    ("serve", "--port", "http"),
    ("serve", "--host", "no such host!"),
    ("serve", "--render-threads", "-1"),
    ("serve", "--render-threads", "2.5"),
    ("serve", "--workers", "-1"),
    ("serve", "--http-processes", "0"),
    ("serve", "--max-queue-length", "-1"),
    ("serve", "--data-dir", "{file}"),
    ("serve", "--redis-url", "http://127.0.0.1:6379"),
    ("serve", "--public-url", "nowhere"),
    ("worker", "--threads", "0"),
    ("worker", "--threads", "-2"),
    ("worker", "--redis-url", "127.0.0.1:6379"),
    ("worker", "--data-dir", "{file}"),
    ("worker", "ZOOMREEL_RETENTION_DAYS", "-1"),
    ("worker", "ZOOMREEL_MAX_LENGTH", "0"),
    ("worker", "ZOOMREEL_LEASE_SECONDS", "-inf"),
    ("worker", "ZOOMREEL_SIGNED_URL_TTL", "soon"),
    ("worker", "ZOOMREEL_LOG_FORMAT", "yaml"),
    ("worker", "ZOOMREEL_ALLOW_PRIVATE_URLS", "yes"),
    ("serve", "ZOOMREEL_S3_BUCKET", "Not_A_Bucket"),
    ("serve", "S3_BUCKET_NAME", "ab"),
    ("serve", "ZOOMREEL_S3_ENDPOINT_URL", "minio:9000"),
    ("serve", "S3_ENDPOINT_URL", "ftp://minio.internal"),
    ("serve", "ZOOMREEL_S3_PUBLIC_URL", "cdn.example.com"),
    ("serve", "ZOOMREEL_S3_PREFIX", "/zoomreel"),
    ("serve", "ZOOMREEL_S3_RETRY_SECONDS", "-1"),
    ("worker", "ZOOMREEL_S3_BUCKET", "UPPER"),
    ("worker", "ZOOMREEL_S3_RETRY_SECONDS", "soon"),
]


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment without any ZOOMREEL_ variable, temporary files under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOOMREEL_")}
    env["TMPDIR"] = str(tmp)  # serve's metrics folders (and its clean-up of stale ones)
    return env


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file and folder under ``root``: size, modification time, content."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, content)
    return found


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (a Redis serve started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    """A data dir that a serve has used: a finished video, the API key, a URL secret;
    beside it a plain file, and a private TMPDIR holding a killed serve's metrics folder
    (which a starting serve removes)."""
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "videos" / VIDEO).write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    (data / "api_key").write_text("kept-key\n")
    (data / "url_secret").write_text("kept-secret\n")
    (tmp_path / "afile").write_text("not a folder\n")
    stale = tmp_path / "tmp" / f"zoomreel-metrics-{_dead_pid()}-x"
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"counts")
    return tmp_path


@pytest.mark.system
@pytest.mark.parametrize(("command", "source", "value"), REFUSED,
                         ids=[f"{c}-{s}={v}" for c, s, v in REFUSED])
def test_a_bad_setting_stops_before_anything_starts(
        prepared: Path, command: str, source: str, value: str) -> None:
    value = value.replace("{file}", str(prepared / "afile"))
    data = prepared / "data"
    env = _clean_env(prepared / "tmp")
    port = free_port()
    args = [command, "--data-dir", str(data)]
    if command == "serve":
        args += ["--port", str(port)]
    else:
        env["ZOOMREEL_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"  # nothing listens
    if source.startswith("--"):
        args += [source, value]
    else:
        env[source] = value
        if source == "ZOOMREEL_DATA_DIR":
            args.remove("--data-dir")
            args.remove(str(data))
    before = _snapshot(prepared)

    proc = subprocess.Popen([zoomreel_script(), *args], env=env, cwd=prepared,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # it started: stop it and all it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert proc.returncode == 2, err
    setting = _setting(source)
    lines = err.splitlines()
    assert len(lines) == 1, err  # one line, no traceback, no usage
    expected = f"error: {source} must be {setting.rule()}"
    assert lines[0] == expected + ("" if setting.hidden else f", not {value!r}")
    assert "Traceback" not in err and out == ""
    # nothing started, created or deleted
    assert _snapshot(prepared) == before
    assert _mentioning(str(prepared)) == []
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", port))


@pytest.mark.system
def test_a_worker_without_redis_is_refused_at_once(prepared: Path) -> None:
    before = _snapshot(prepared)
    done = subprocess.run([zoomreel_script(), "worker", "--data-dir", str(prepared / "data")],
                          env=_clean_env(prepared / "tmp"), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: zoomreel worker needs ZOOMREEL_REDIS_URL (or --redis-url)"]
    assert _snapshot(prepared) == before


@pytest.mark.system
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_help_shows_every_range(command: str) -> None:
    done = subprocess.run([zoomreel_script(), command, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines
    for setting in SETTINGS:
        if command in setting.commands:
            assert " ".join(setting.rule().split()) in text, setting.name
            assert (setting.env or setting.flag) in text
    if command == "serve":
        assert "--render-threads" in text and "deprecated spelling of --render-threads" in text


@pytest.mark.unit
def test_config_has_a_field_per_setting() -> None:
    names = [f for f in Config.__dataclass_fields__ if f != "deprecated"]
    assert sorted(names) == sorted(s.name for s in SETTINGS)
    assert _setting("ZOOMREEL_SIGNED_URL_TTL").default == DEFAULT_TTL


@pytest.mark.unit
@pytest.mark.parametrize(("field", "value"), [
    ("retention_s", -1.0), ("retention_s", float("nan")), ("retention_s", float("inf")),
    ("max_length", 0.0), ("max_length", float("-inf")), ("max_queue_length", -1),
    ("max_jobs_per_key", -1), ("lease_s", 0.0), ("max_image_bytes", 0),
    ("transient_retries", -1), ("max_lost_runs", 0)])
def test_job_settings_refuse_destructive_values(tmp_path: Path, field: str,
                                                value: float) -> None:
    with pytest.raises(SettingError, match=f"^{field} must be") as caught:
        JobSettings(data_dir=tmp_path, **{field: value})
    assert isinstance(caught.value, ValueError)


@pytest.mark.system
def test_retention_0_keeps_every_job_forever(redis_url: str, tmp_path: Path) -> None:
    settings = JobSettings(data_dir=tmp_path, retention_s=0)
    service = JobService(redis.Redis.from_url(redis_url), settings, embedded=True,
                         answer=Answers().status)
    try:
        job, _ = service.submit(dict(SMALL), upload=jpeg())
        service.start_workers(1)
        done = eventually(lambda: service.get(job.id),
                          until=lambda j: j.status in ("done", "error"), timeout=60,
                          what="the job to end")
        assert done.status == "done" and done.filename
        video = settings.storage_dir / done.filename
        assert service.sweep_expired(now=time.time() + 100 * 365 * 86400) == 0
        assert video.is_file() and service.get(job.id).status == "done"
    finally:
        service.stop_workers()


@pytest.mark.system
def test_the_workers_alias_still_sets_the_render_threads(
        serve_factory: Callable[..., Any]) -> None:
    serve = serve_factory(workers=1, workers_flag="--workers")
    r = serve.post("/v1/image/convert/video", files={"image": ("a.jpg", jpeg())},
                   data={k: str(v) for k, v in SMALL.items()})
    assert r.status_code == 202, r.text
    assert serve.wait(r.json()["job_id"])["response"]["job_status"] == "done"
    assert any("--workers is deprecated: use --render-threads" in line for line in serve.lines)


@pytest.mark.system
def test_render_threads_0_renders_nothing_and_retention_0_is_accepted(
        serve_factory: Callable[..., Any], redis_url: str) -> None:
    serve = serve_factory(workers=0, env={"ZOOMREEL_RETENTION_DAYS": "0",
                                          "ZOOMREEL_LOG_FORMAT": "JSON"},
                          args=("--redis-url", redis_url))
    client = redis.Redis.from_url(redis_url)
    r = serve.post("/v1/image/convert/video", files={"image": ("a.jpg", jpeg())},
                   data={k: str(v) for k, v in SMALL.items()})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    # serve's webhook thread polls its queue every 0.5 s at the most, each poll stamping
    # the broker's heartbeat; a render thread would poll the render queue as often. Two
    # seconds of such polls after the submit: one would have fetched the job's message.
    polled_after = time.time() * 1000 + 2000
    eventually(lambda: client.zrange(heartbeats(), -1, -1, withscores=True),
               until=lambda last: last and last[0][1] > polled_after, timeout=30,
               what="serve's consumers to poll for two seconds after the submit")
    fetched = [key for key in client.scan_iter(acks_pattern())
               if key.decode().endswith("." + RENDER_QUEUE)]
    assert job_id in queued_job_ids(client, RENDER_QUEUE) and not fetched, fetched
    assert serve.status(job_id)["response"]["job_status"] == "queued"
    assert not any("render started" in line for line in serve.lines)
    assert not any("deprecated" in line for line in serve.lines)


@pytest.mark.unit
def test_the_upstream_s3_names_are_read_and_ours_win() -> None:
    args = build_parser().parse_args(["worker"])
    env = {"ZOOMREEL_REDIS_URL": "redis://127.0.0.1:1/0", "S3_BUCKET_NAME": "theirs",
           "S3_ENDPOINT_URL": "http://minio.internal:9000", "S3_REGION": "eu-west-1",
           "S3_ACCESS_KEY": "AKIDEXAMPLE", "S3_SECRET_KEY": "secret"}
    config = load("worker", args, env)
    assert (config.s3_bucket, config.s3_endpoint_url, config.s3_region, config.s3_access_key,
            config.s3_secret_key) == ("theirs", "http://minio.internal:9000", "eu-west-1",
                                      "AKIDEXAMPLE", "secret")
    storage = config.storage()
    assert isinstance(storage, S3Storage)
    assert storage.describe() == "S3 bucket 'theirs' at http://minio.internal:9000"
    assert storage.scratch == config.data_dir / "work"
    ours = load("worker", args, {**env, "ZOOMREEL_S3_BUCKET": "ours",
                                 "ZOOMREEL_S3_ENDPOINT_URL": "https://s3.example.com"})
    assert (ours.s3_bucket, ours.s3_endpoint_url) == ("ours", "https://s3.example.com")
    plain = load("worker", args, {"ZOOMREEL_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert isinstance(plain.storage(), LocalStorage)
