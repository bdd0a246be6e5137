"""Entry points that run the service: ``zoomreel serve`` and ``zoomreel worker``.

Only here (and in the CLI) is the environment read; everything below gets explicit
arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from zoomreel import __version__
from zoomreel.errors import InputError
from zoomreel.jobs import EmbeddedRedis, JobMetrics, JobService, JobSettings
from zoomreel.jobs.settings import DEFAULT_MAX_QUEUE_LENGTH
from zoomreel.net import check_secret

from ._api_processes import (
    APIProcesses,
    bind_shared,
    can_share_ports,
    child_argv,
    default_count,
    exit_with_parent,
    report_ready,
)
from ._process import RenderThreads, configure_logging, count_metrics_in, prepare_rendering
from .rest.envelope import Answers
from .rest.signing import DEFAULT_TTL, URLSigner, load_or_create_secret

__all__ = ["serve", "worker", "settings_from_env", "answers_from_env", "api_keys",
           "cors_origins", "http_processes"]

log = logging.getLogger("zoomreel")


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to unwind cleanly.

    A SystemExit, because waitress's loop passes on only those (and KeyboardInterrupt):
    any other exception raised while it handles a connection is logged and swallowed, so
    a signal landing at that moment was lost and ``serve`` kept running.
    """


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def settings_from_env(data_dir: str | None = None, *,
                      max_queue_length: int | None = None) -> JobSettings:
    """JobSettings from ``ZOOMREEL_*`` variables; arguments (CLI flags) win."""
    env = os.environ
    try:
        queue = int(env.get("ZOOMREEL_MAX_QUEUE_LENGTH") or DEFAULT_MAX_QUEUE_LENGTH)
        per_key = int(env.get("ZOOMREEL_MAX_JOBS_PER_KEY") or 0)
        max_length = float(env.get("ZOOMREEL_MAX_LENGTH", "600") or 600)
        retention_days = float(env.get("ZOOMREEL_RETENTION_DAYS", "7") or 7)
        lease_s = float(env.get("ZOOMREEL_LEASE_SECONDS", "15") or 15)
    except ValueError as exc:
        raise InputError(f"bad number in the environment: {exc}") from None
    secret = env.get("ZOOMREEL_WEBHOOK_SECRET") or None
    if secret is not None:
        check_secret(secret)
    return JobSettings(
        data_dir=Path(data_dir or env.get("ZOOMREEL_DATA_DIR") or "zoomreel-data"),
        max_queue_length=queue if max_queue_length is None else max_queue_length,
        max_jobs_per_key=per_key,
        max_length=max_length,
        retention_s=retention_days * 86400.0,
        allow_private_urls=env.get("ZOOMREEL_ALLOW_PRIVATE_URLS", "0") == "1",
        webhook_secret=secret,
        lease_s=max(1.0, lease_s),
    )


def answers_from_env(public_url: str | None = None, data_dir: Path | None = None) -> Answers:
    """The REST answers; ``--public-url`` wins over ``ZOOMREEL_PUBLIC_URL``.

    With a data dir, download links are signed with its secret (made there once) and
    live ``ZOOMREEL_SIGNED_URL_TTL`` seconds.
    """
    signer = None
    if data_dir is not None:
        text = os.environ.get("ZOOMREEL_SIGNED_URL_TTL", "") or str(DEFAULT_TTL)
        try:
            ttl = float(text)
        except ValueError:
            ttl = -1.0
        if not ttl > 0:
            raise InputError(f"ZOOMREEL_SIGNED_URL_TTL must be a positive number of seconds, "
                             f"not {text!r}")
        signer = URLSigner(load_or_create_secret(data_dir), ttl)
    return Answers(public_url or os.environ.get("ZOOMREEL_PUBLIC_URL") or None, signer=signer)


def cors_origins() -> list[str]:
    """Browser origins allowed to call the API, from ``ZOOMREEL_CORS_ORIGINS``."""
    return [o.strip() for o in os.environ.get("ZOOMREEL_CORS_ORIGINS", "").split(",")
            if o.strip()]


def api_keys(data_dir: Path) -> list[str]:
    """Keys from ``ZOOMREEL_API_KEY`` (comma-separated), else one generated once in data_dir."""
    configured = [k.strip() for k in os.environ.get("ZOOMREEL_API_KEY", "").split(",")]
    configured = [k for k in configured if k]
    if configured:
        return configured
    path = data_dir / "api_key"
    if path.is_file() and path.read_text().strip():
        return [path.read_text().strip()]
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return [key]


def _answer_waitress_413_as_json(answers: Answers) -> None:
    """Waitress turns away a body over its size limit before the app runs, with a text
    answer; make that answer the API's JSON envelope, as every other error is.

    Waitress offers no hook for its own error answers, so its error class's method is
    replaced, for this process only (serve is the one entry point that runs waitress).
    """
    import json

    from waitress.utilities import RequestEntityTooLarge

    def to_response(self: RequestEntityTooLarge, ident: str | None = None,
                    ) -> tuple[str, list[tuple[str, str]], bytes]:
        message = "body: the request is larger than this service accepts"
        body = answers.envelope(413, message=message)
        body["error"] = message
        data = json.dumps(body).encode()
        return ("413 Request Entity Too Large",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
                data)

    RequestEntityTooLarge.to_response = to_response  # type: ignore[method-assign]


def http_processes(flag: int | None) -> int:
    """How many processes answer HTTP: ``--http-processes``, else
    ``ZOOMREEL_HTTP_PROCESSES``, else one per core (at most four); 1 (serve itself) where
    processes cannot share a port evenly (not Linux).

    Raises:
        InputError: not a whole number of at least 1.
    """
    text = str(flag) if flag is not None else os.environ.get("ZOOMREEL_HTTP_PROCESSES", "")
    if not text:
        count = default_count()
    else:
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise InputError(f"the number of HTTP processes must be a whole number of at "
                             f"least 1, not {text!r}")
    return count if can_share_ports() else 1


def _open_service(settings: JobSettings, answers: Answers, redis_url: str | None,
                  metrics: JobMetrics | None = None, *, renders: bool = True,
                  ) -> tuple[JobService, EmbeddedRedis | None, str]:
    embedded = None
    if not redis_url:
        embedded = EmbeddedRedis(settings.redis_dir)
        redis_url = embedded.start()
        embedded.supervise()  # a server that dies is back within a second or two
    try:
        service = JobService.connect(redis_url, settings, embedded=embedded is not None,
                                     answer=answers.status, metrics=metrics,
                                     middleware=[RenderThreads()] if renders else [])
        resent = service.recover()
        if resent:
            log.info("re-sent %d lost message(s)", resent)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return service, embedded, redis_url


def _metrics_dir() -> Path:
    """A new folder where serve and its API processes count, so that /metrics reports
    them all; first removed: those a killed serve left (whose process is gone)."""
    prefix = "zoomreel-metrics-"
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            os.kill(int(folder.name[len(prefix):].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):  # not ours, or not our user's
            continue
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def _http_server(service: JobService, answers: Answers, keys: list[str],
                 **listen: Any) -> Any:
    """The waitress server of the REST API, listening as ``listen`` says (host and port,
    or bound sockets)."""
    import waitress

    from .rest import create_app

    app = create_app(service, answers, api_keys=keys, cors_origins=cors_origins())
    _answer_waitress_413_as_json(answers)
    return waitress.create_server(
        app, threads=8, ident="zoomreel",
        max_request_body_size=service.settings.max_image_bytes + 2 * 2**20, **listen)


def serve(args: argparse.Namespace) -> int:
    """Run the REST API, in-process workers and (by default) an embedded Redis."""
    if args.parent_pid is not None:
        return _serve_api_process(args)
    configure_logging()
    count = http_processes(args.http_processes)
    if args.workers > 0:
        prepare_rendering()
    settings = settings_from_env(args.data_dir, max_queue_length=args.max_queue_length)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    answers = answers_from_env(args.public_url, settings.data_dir)
    keys = api_keys(settings.data_dir)
    shared = _metrics_dir() if count > 1 else None
    if shared is not None:
        count_metrics_in(shared)
    try:
        service, embedded, redis_url = _open_service(
            settings, answers, args.redis_url or os.environ.get("ZOOMREEL_REDIS_URL"),
            JobMetrics(shared_dir=shared) if shared else None, renders=args.workers > 0)
    except BaseException:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
        raise
    server = others = None
    held: list[socket.socket] = []
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        service.start_workers(args.workers)
        if count == 1:  # serve answers HTTP itself
            server = _http_server(service, answers, keys, host=args.host, port=args.port)
            port = server.effective_port
        else:  # its API processes do, on the port serve holds
            held = bind_shared(args.host, args.port, check_free=True)
            port = held[0].getsockname()[1]
            others = APIProcesses(count, _api_process_argv(args, settings, port), env={
                **os.environ, "ZOOMREEL_REDIS_URL": redis_url,
                "PROMETHEUS_MULTIPROC_DIR": str(shared)})
            others.start()
        host = args.host if ":" not in args.host else f"[{args.host}]"
        print(f"zoomreel {__version__} serving on http://{host}:{port}", flush=True)
        print(f"API key: {keys[0]}", flush=True)
        print(f"data dir: {settings.data_dir.resolve()}"
              + ("" if embedded is None else " (embedded Redis)"), flush=True)
        if server is not None:
            server.run()  # until SIGTERM/SIGINT: waitress ends its loop on our _Stop
        else:
            while True:
                signal.pause()
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("shutting down")
        if server is not None:
            server.close()
        if others is not None:
            others.terminate()  # they stop while the renders give their jobs back
        service.stop_workers()  # at most 5 s: renders give their job back first
        if others is not None:
            others.wait(2.0)
        for sock in held:
            sock.close()
        service.close()
        if embedded is not None:
            embedded.stop()
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


def _api_process_argv(args: argparse.Namespace, settings: JobSettings, port: int,
                      ) -> list[str]:
    """The command line of serve's API processes."""
    argv = child_argv() + [
        "serve", "--host", args.host, "--port", str(port),
        "--data-dir", str(settings.data_dir.resolve()),
        "--max-queue-length", str(settings.max_queue_length),
        "--parent-pid", str(os.getpid())]
    return argv + (["--public-url", args.public_url] if args.public_url else [])


def _serve_api_process(args: argparse.Namespace) -> int:
    """One of serve's API processes (``--parent-pid``): the REST API on serve's port,
    shared with ``SO_REUSEPORT``, against serve's Redis (``ZOOMREEL_REDIS_URL``)."""
    configure_logging()
    exit_with_parent(args.parent_pid)
    settings = settings_from_env(args.data_dir, max_queue_length=args.max_queue_length)
    answers = answers_from_env(args.public_url, settings.data_dir)
    keys = api_keys(settings.data_dir)
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    service = JobService.connect(
        os.environ["ZOOMREEL_REDIS_URL"], settings, embedded=False, answer=answers.status,
        metrics=JobMetrics(shared_dir=Path(shared)) if shared else None)
    server = None
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server = _http_server(service, answers, keys,
                              sockets=bind_shared(args.host, args.port))
        report_ready(args.ready_fd)
        server.run()
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None:
            server.close()
        service.close()
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run Dramatiq workers against ``ZOOMREEL_REDIS_URL`` until SIGTERM/SIGINT."""
    configure_logging()
    url = args.redis_url or os.environ.get("ZOOMREEL_REDIS_URL")
    if not url:
        raise InputError("zoomreel worker needs ZOOMREEL_REDIS_URL (or --redis-url)")
    prepare_rendering()
    settings = settings_from_env(args.data_dir)
    service, _, _ = _open_service(settings, answers_from_env(data_dir=settings.data_dir), url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start_workers(args.threads)
    print(f"zoomreel worker: {args.threads} render thread(s) on {url.split('@')[-1]}",
          file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        service.stop_workers()
        service.close()
    return 0
