"""Entry points that run the service: ``zoomreel serve`` and ``zoomreel worker``.

Each first reads and checks its whole configuration (config.py: the only place the
service's variables are read); everything below gets explicit arguments.
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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from zoomreel import __version__
from zoomreel.errors import InputError
from zoomreel.jobs import EmbeddedRedis, JobMetrics, JobService, JobSettings
from zoomreel.storage import Storage

from . import config as _config
from ._api_processes import (
    APIProcesses,
    answer_checks,
    bind_shared,
    child_argv,
    exit_with_parent,
)
from ._connections import MAX_CONNECTIONS, ConnectionGuard, open_files_for
from ._process import configure_logging, count_metrics_in, prepare_rendering, render_threads
from .config import Config
from .rest.envelope import Answers
from .rest.signing import URLSigner, load_or_create_secret

__all__ = ["serve", "worker", "answers", "api_keys", "LOCK_FILE"]

log = logging.getLogger("zoomreel")


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT to unwind cleanly.

    A SystemExit, because waitress's loop passes on only those (and KeyboardInterrupt):
    any other exception raised while it handles a connection is logged and swallowed, so
    a signal landing at that moment was lost and ``serve`` kept running.
    """


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def answers(config: Config, data_dir: Path | None = None,
            storage: Storage | None = None) -> Answers:
    """The REST answers; with a data dir, download links are signed with its secret
    (made there once) and live ``config.signed_url_ttl`` seconds; with a bucket for
    storage, they are its presigned (or public) links."""
    signer = None
    if data_dir is not None:
        signer = URLSigner(load_or_create_secret(data_dir), config.signed_url_ttl)
    return Answers(config.public_url, signer=signer, storage=storage,
                   link_ttl=config.signed_url_ttl)


def api_keys(config: Config, data_dir: Path) -> list[str]:
    """The configured keys, else one generated once in data_dir."""
    if config.api_keys:
        return list(config.api_keys)
    path = data_dir / "api_key"
    if path.is_file() and path.read_text().strip():
        return [path.read_text().strip()]
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return [key]


#: The file in the data dir that a serve running its own Redis holds locked.
LOCK_FILE = "serve.lock"


def _hold_data_dir(data_dir: Path) -> int:
    """Hold ``data_dir`` for this serve: an exclusive ``flock`` on its LOCK_FILE, kept
    until this process ends. The kernel lets go of it when the process dies, however it
    dies (a ``kill -9`` too), so a killed serve never keeps the next one out. Returns
    the open file (close it to let go; not inherited by the processes serve starts).

    Two serves with their own Redis on one folder would run two Redis servers on one
    append-only file, each stopping the other's: the second is refused instead.

    Raises:
        InputError: another serve holds the folder.
    """
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 16).decode("ascii", "replace").strip()
        os.close(fd)
        raise InputError(
            f"the data dir {data_dir.resolve()} is in use by another zoomreel serve"
            + (f" (pid {holder})" if holder.isascii() and holder.isdigit() else "")
            + ": stop that one, or give this one another --data-dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _open_service(settings: JobSettings, answers: Answers, redis_url: str | None,
                  metrics: JobMetrics | None = None, *, renders: bool = True,
                  storage: Storage | None = None,
                  ) -> tuple[JobService, EmbeddedRedis | None, str]:
    embedded = None
    if not redis_url:
        embedded = EmbeddedRedis(settings.redis_dir)
        redis_url = embedded.start()
        embedded.supervise()  # a server that dies is back within a second or two
    try:
        service = JobService.connect(redis_url, settings, embedded=embedded is not None,
                                     answer=answers.webhook_body, metrics=metrics,
                                     middleware=[render_threads()] if renders else [],
                                     storage=storage)
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


#: waitress threads that answer, besides those of requests waiting for their video.
_ANSWER_THREADS = 8


def _http_server(service: JobService, answers: Answers, keys: list[str], config: Config,
                 socket_map: dict[int, Any] | None = None, **listen: Any) -> Any:
    """The waitress server of the REST API (see _waitress.py), listening as ``listen``
    says (host and port, or bound sockets), in the event loop of ``socket_map``. A
    synchronous call (the upstream toolkit's) holds one of its threads while it waits:
    it has a thread for each of ``max_waiting`` of them on top of those that answer, so
    that waiting never delays other answers."""
    from ._waitress import create_server
    from .rest import create_app

    app = create_app(service, answers, api_keys=keys, cors_origins=config.cors_origins,
                     convert_route=config.convert_route)
    # each waiting call holds its connection as well as a thread: room for them on top
    guard = ConnectionGuard(open_files_for(MAX_CONNECTIONS + config.max_waiting))
    return create_server(
        app, answers, socket_map, guard=guard, threads=_ANSWER_THREADS + config.max_waiting,
        ident="zoomreel",
        max_request_body_size=service.settings.max_image_bytes + 2 * 2**20,
        # the guard closes idle connections to make room: waitress's limit (which stops
        # accepting) is reached only when that many have a request in hand
        connection_limit=guard.limit + 16, asyncore_use_poll=True, **listen)


def serve(args: argparse.Namespace) -> int:
    """Run the REST API, in-process workers and (by default) an embedded Redis."""
    config = _config.load("serve", args)  # every setting checked before anything starts
    if args.parent_pid is not None:
        return _serve_api_process(args, config)
    # before anything else touches the data dir: a second serve there stops here
    held = None if config.redis_url else _hold_data_dir(config.data_dir)
    try:
        return _serve(config)
    finally:
        if held is not None:
            os.close(held)  # after Redis has stopped: the next serve may start it


def _serve(config: Config) -> int:
    """serve itself, once it holds its data dir (when it runs its own Redis)."""
    configure_logging(config.log_format)
    for flag in config.deprecated:
        log.warning("%s is deprecated: use --render-threads", flag)
    count = _config.http_processes(config.http_processes)
    if config.render_threads > 0:
        prepare_rendering()
    settings = config.job_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = config.storage()
    storage.check()  # a bucket that cannot be used: one line, exit 2, nothing started
    answer = answers(config, settings.data_dir, storage)
    keys = api_keys(config, settings.data_dir)
    shared = _metrics_dir() if count > 1 else None
    if shared is not None:
        count_metrics_in(shared)
    try:
        service, embedded, redis_url = _open_service(
            settings, answer, config.redis_url,
            JobMetrics(shared_dir=shared) if shared else None,
            renders=config.render_threads > 0, storage=storage)
    except BaseException:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
        raise
    running = _Running(service, embedded, shared)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        service.start_workers(config.render_threads)
        port = running.answer_http(count, config, settings, answer, keys, redis_url)
        host = config.host if ":" not in config.host else f"[{config.host}]"
        print(f"zoomreel {__version__} serving on http://{host}:{port}", flush=True)
        print(f"API key: {keys[0]}", flush=True)
        print(f"data dir: {settings.data_dir.resolve()}"
              + ("" if embedded is None else " (embedded Redis)"), flush=True)
        if running.server is not None:
            running.server.run()  # until SIGTERM/SIGINT: waitress ends its loop on our _Stop
        else:
            while True:
                signal.pause()
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        running.stop()
    return 0


@dataclass
class _Running:
    """What a running serve holds, stopped in the right order by :meth:`stop`."""

    service: JobService
    embedded: EmbeddedRedis | None
    shared: Path | None
    server: Any = None
    others: APIProcesses | None = None
    held: list[socket.socket] = field(default_factory=list)

    def answer_http(self, count: int, config: Config, settings: JobSettings,
                    answer: Answers, keys: list[str], redis_url: str) -> int:
        """Answer HTTP: serve itself (``count`` 1), or its API processes on the port it
        holds. Returns the port."""
        if count == 1:
            self.server = _http_server(self.service, answer, keys, config,
                                       host=config.host, port=config.port)
            return int(self.server.effective_port)
        self.held = bind_shared(config.host, config.port, check_free=True)
        port = int(self.held[0].getsockname()[1])
        self.others = APIProcesses(count, _api_process_argv(config, settings, port), env={
            **os.environ, "ZOOMREEL_REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(self.shared)})
        self.others.start()
        return port

    def stop(self) -> None:
        """Stop answering, let renders give their jobs back, stop Redis, clean up."""
        log.info("shutting down")
        self.service.stop_waiting()  # waiting requests answer 503 (their jobs are kept)
        if self.server is not None:
            self.server.close()
        if self.others is not None:
            self.others.terminate()  # they stop while the renders give their jobs back
        self.service.stop_workers()  # at most 5 s: renders give their job back first
        if self.others is not None:
            self.others.wait(2.0)
        for sock in self.held:
            sock.close()
        self.service.close()
        if self.embedded is not None:
            self.embedded.stop()
        if self.shared is not None:
            shutil.rmtree(self.shared, ignore_errors=True)


def _api_process_argv(config: Config, settings: JobSettings, port: int) -> list[str]:
    """The command line of serve's API processes."""
    argv = child_argv() + [
        "serve", "--host", config.host, "--port", str(port),
        "--data-dir", str(settings.data_dir.resolve()),
        "--max-queue-length", str(settings.max_queue_length),
        "--parent-pid", str(os.getpid())]
    return argv + (["--public-url", config.public_url] if config.public_url else [])


def _serve_api_process(args: argparse.Namespace, config: Config) -> int:
    """One of serve's API processes (``--parent-pid``): the REST API on serve's port,
    shared with ``SO_REUSEPORT``, against serve's Redis (``ZOOMREEL_REDIS_URL``)."""
    configure_logging(config.log_format)
    exit_with_parent(args.parent_pid)
    settings = config.job_settings()
    storage = config.storage()  # serve checked it
    answer = answers(config, settings.data_dir, storage)
    keys = api_keys(config, settings.data_dir)
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    assert config.redis_url, "serve gives its API processes ZOOMREEL_REDIS_URL"
    service = JobService.connect(
        config.redis_url, settings, embedded=False, answer=answer.webhook_body,
        metrics=JobMetrics(shared_dir=Path(shared)) if shared else None, storage=storage)
    server = None
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        socket_map: dict[int, Any] = {}
        server = _http_server(service, answer, keys, config, socket_map,
                              sockets=bind_shared(config.host, config.port))
        answer_checks(args.ready_fd, socket_map)  # from the loop that accepts connections
        server.run()
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        service.stop_waiting()
        if server is not None:
            server.close()
        service.close()
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run Dramatiq workers against ``ZOOMREEL_REDIS_URL`` until SIGTERM/SIGINT."""
    config = _config.load("worker", args)  # every setting checked before anything starts
    url = config.redis_url
    assert url, "config.load refuses a worker without a Redis URL"
    configure_logging(config.log_format)
    settings = config.job_settings()
    storage = config.storage()
    storage.check()  # a bucket that cannot be used: one line, exit 2, nothing started
    prepare_rendering()
    service, _, _ = _open_service(settings, answers(config, settings.data_dir, storage), url,
                                  storage=storage)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start_workers(config.threads)
    print(f"zoomreel worker: {config.threads} render thread(s) on {url.split('@')[-1]}",
          file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        service.stop_workers()
        service.close()
    return 0
