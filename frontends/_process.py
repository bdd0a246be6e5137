"""Process-wide settings that only the zoomreel commands make, never the library.

Every one is here: environment variables read by libraries (OpenMP, SVT-AV1,
prometheus_client), glibc's allocator, thread priorities, Pillow's plugins and warnings,
logging. A program embedding the library decides these for itself (see docs/library.md,
"What importing and rendering do to your process").
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomreel._libc import libc_function

__all__ = ["configure_logging", "count_metrics_in", "prefer_passive_openmp",
           "prepare_rendering", "render_threads", "RENDER_NICENESS"]


def prefer_passive_openmp() -> None:
    """Let Numba's OpenMP threads wait passively between kernels (unless the user chose).

    Spinning threads take CPU from x264 beside them: a 1080p render ran at ~86 frames/s
    that way and ~108 waiting passively, on 2 cores. Must run before Numba loads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def prepare_rendering() -> None:
    """Ready this process to render: Pillow's plugins registered once, before worker
    threads race to do it, and Pillow's decompression-bomb *warning* silenced, since every
    render enforces its own pixel limit from the image header (RenderSpec.max_pixels).

    SVT-AV1 (codec av1) writes some 25 lines of banner and configuration to stderr per
    encoder unless ``SVT_LOG`` says otherwise; it reads the variable once, when the
    process opens its first AV1 encoder, so this keeps errors only (unless the user chose).
    """
    from PIL import Image

    os.environ.setdefault("SVT_LOG", "1")

    Image.init()
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    _map_large_allocations()


#: mallopt's M_MMAP_THRESHOLD: allocations this large or larger are mapped on their own.
_M_MMAP_THRESHOLD = -3


def _map_large_allocations() -> None:
    """Have glibc map every allocation of 1 MB or more on its own, returned when freed.

    glibc raises its threshold as a program frees large blocks, after which freed frames
    (3.1 MB at 1080p) stay in its heap: a balanced 1080p render then peaked anywhere from
    278 to 296 MB; with the threshold fixed at 1 MB, at 275-278 MB (benchmarks.memory).
    No-op without glibc; ``MALLOC_MMAP_THRESHOLD_`` in the environment wins.
    """
    mallopt = libc_function("mallopt")
    if mallopt is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, 1_000_000)


#: The nice value of render threads: above the API's 0, so that on a machine that renders
#: and answers (serve) a busy CPU goes to the answers first; renders only lose time to them.
RENDER_NICENESS = 10


def render_threads() -> Any:
    """Dramatiq middleware for the threads that render (serve's and worker's broker).

    Before a render, its thread (and the threads it starts: the encoder's, Numba's pool
    when it starts it) goes to :data:`RENDER_NICENESS` (Linux: a thread's own nice
    value). After it, the memory the render freed goes back to the system: glibc keeps
    freed heap memory in per-thread arenas, and a worker thread's process stayed at
    395 MB after its second render of a 54 MP image and went down to 196 MB after
    malloc_trim. Each is a no-op where the system lacks it. (Built here, when a command
    runs workers: importing Dramatiq costs the other commands 0.1 s.)
    """
    import dramatiq
    from dramatiq.middleware import Middleware

    from zoomreel.jobs.broker import RENDER_QUEUE

    class RenderThreads(Middleware):
        def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
            if message.queue_name != RENDER_QUEUE or not hasattr(os, "setpriority"):
                return
            tid = threading.get_native_id()
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) < RENDER_NICENESS:
                    os.setpriority(os.PRIO_PROCESS, tid, RENDER_NICENESS)
            except OSError:  # not allowed here: renders keep the process's priority
                pass

        def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                                  result: Any = None, exception: Any = None) -> None:
            malloc_trim = libc_function("malloc_trim")
            if message.queue_name == RENDER_QUEUE and malloc_trim is not None:
                malloc_trim(0)

    return RenderThreads()


def count_metrics_in(path: Path) -> None:
    """Make every Prometheus metric this process creates from now on count in files under
    ``path``, summed with those of the other processes counting there (serve and its API
    processes), before the first :class:`zoomreel.jobs.JobMetrics` is made.

    prometheus_client picks its value class when it is imported, from the environment
    (``PROMETHEUS_MULTIPROC_DIR``); a process started with it set (an API process of
    serve) has it already, any other switches here.
    """
    from prometheus_client import values

    if (values.ValueClass is values.MutexValue
            or os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(path)):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)  # where the value class writes
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class _TextFormatter(logging.Formatter):
    """``time level logger [job id] message``, one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        line = (f"{self.formatTime(record)} {record.levelname} {record.name} "
                f"{f'[job {job}] ' if job else ''}{record.getMessage()}")
        if record.exc_info:  # kept on the event's line
            line += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


class _JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job_id", None)
        if job:
            event["job_id"] = job
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def configure_logging(log_format: str = "text") -> None:
    """Log every event as one line on stderr: ``text``, or ``json`` (one object a line);
    the format is checked with the other settings (config.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JSONFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # waitress warns "Task queue depth is N" for every request that waits for a thread:
    # under load, a line per request (and the cost of writing it). The wait shows in
    # the latency; /metrics and /health tell the queue that matters.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # boto3 says at INFO where it found credentials, once per client: noise, and a second
    # line before the one that says what is wrong with a bucket at start.
    logging.getLogger("botocore").setLevel(logging.WARNING)
