"""Entry points that run the service: ``zoomreel serve`` and ``zoomreel worker``.

Only here (and in the CLI) is the environment read; everything below gets explicit
arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from zoomreel import __version__
from zoomreel.errors import InputError
from zoomreel.jobs import EmbeddedRedis, JobService, JobSettings
from zoomreel.jobs.settings import DEFAULT_MAX_QUEUE_LENGTH
from zoomreel.net import check_secret

from ._process import configure_logging, prepare_rendering
from .rest.envelope import Answers
from .rest.signing import DEFAULT_TTL, URLSigner, load_or_create_secret

__all__ = ["serve", "worker", "settings_from_env", "answers_from_env", "api_keys",
           "cors_origins"]

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


def _open_service(settings: JobSettings, answers: Answers, redis_url: str | None,
                  ) -> tuple[JobService, EmbeddedRedis | None]:
    embedded = None
    if not redis_url:
        embedded = EmbeddedRedis(settings.redis_dir)
        redis_url = embedded.start()
        embedded.supervise()  # a server that dies is back within a second or two
    try:
        service = JobService.connect(redis_url, settings, embedded=embedded is not None,
                                     answer=answers.status)
        resent = service.recover()
        if resent:
            log.info("re-sent %d lost message(s)", resent)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    return service, embedded


def serve(args: argparse.Namespace) -> int:
    """Run the REST API, in-process workers and (by default) an embedded Redis."""
    import waitress

    from .rest import create_app

    configure_logging()
    if args.workers > 0:
        prepare_rendering()
    settings = settings_from_env(args.data_dir, max_queue_length=args.max_queue_length)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    answers = answers_from_env(args.public_url, settings.data_dir)
    keys = api_keys(settings.data_dir)
    service, embedded = _open_service(
        settings, answers, args.redis_url or os.environ.get("ZOOMREEL_REDIS_URL"))
    server = None
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        service.start_workers(args.workers)
        app = create_app(service, answers, api_keys=keys, cors_origins=cors_origins())
        _answer_waitress_413_as_json(answers)
        server = waitress.create_server(
            app, host=args.host, port=args.port, threads=8, ident="zoomreel",
            max_request_body_size=settings.max_image_bytes + 2 * 2**20)
        port = getattr(server, "effective_port", args.port)
        host = args.host if ":" not in args.host else f"[{args.host}]"
        print(f"zoomreel {__version__} serving on http://{host}:{port}", flush=True)
        print(f"API key: {keys[0]}", flush=True)
        print(f"data dir: {settings.data_dir.resolve()}"
              + ("" if embedded is None else " (embedded Redis)"), flush=True)
        server.run()
    except _Stop as stop:
        log.info("%s: shutting down", stop)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None:
            server.close()
        service.stop_workers()  # at most 5 s: renders give their job back first
        service.close()
        if embedded is not None:
            embedded.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run Dramatiq workers against ``ZOOMREEL_REDIS_URL`` until SIGTERM/SIGINT."""
    configure_logging()
    url = args.redis_url or os.environ.get("ZOOMREEL_REDIS_URL")
    if not url:
        raise InputError("zoomreel worker needs ZOOMREEL_REDIS_URL (or --redis-url)")
    prepare_rendering()
    settings = settings_from_env(args.data_dir)
    service, _ = _open_service(settings, answers_from_env(data_dir=settings.data_dir), url)
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
