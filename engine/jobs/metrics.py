"""What the job system counts, in Prometheus form (``GET /metrics``).

One :class:`JobMetrics` per process, on its own registry (never prometheus_client's
global one: importing zoomreel registers nothing). Counters count this process's events
(renders, webhook attempts, Redis connections), or, given a shared folder, those of every
process counting there (``serve`` and its API processes: whichever answers ``/metrics``
reports them all); the jobs by state and the queue's length are read from Redis when the
metrics are collected, so every process reports the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .states import JobState
from .store import JobStore

__all__ = ["JobMetrics", "counting_connections"]

_RENDER_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class JobMetrics:
    """The job system's metrics.

    Args:
        registry: what ``/metrics`` collects; a new one by default.
        shared_dir: report what every process counting in files in this folder
            counts (prometheus_client's multiprocess mode), this one included. One
            folder per run of the processes. The process must count in that folder
            already: prometheus_client's process-wide setting, which only an entry point
            makes (``PROMETHEUS_MULTIPROC_DIR`` at its start).

    Raises:
        ValueError: ``shared_dir`` is given, and this process does not count there.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 shared_dir: Path | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r: CollectorRegistry | None = self.registry
        if shared_dir is not None:
            if (values.ValueClass is values.MutexValue
                    or os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(shared_dir)):
                raise ValueError(f"this process does not count its metrics in {shared_dir}")
            MultiProcessCollector(  # type: ignore[no-untyped-call]
                self.registry, path=str(shared_dir))
            r = None  # the values live in the files, collected from there
        self.submitted = Counter("zoomreel_jobs_submitted", "Jobs accepted (202)", registry=r)
        self.finished = Counter("zoomreel_jobs_finished", "Jobs ended, by outcome",
                                ["status"], registry=r)
        self.render_seconds = Histogram("zoomreel_render_seconds",
                                        "Wall time of finished renders", registry=r,
                                        buckets=_RENDER_BUCKETS)
        self.render_frames = Counter("zoomreel_render_frames",
                                     "Frames encoded by finished renders", registry=r)
        self.render_fps = Gauge("zoomreel_render_frames_per_second",
                                "Frames per second of the last finished render", registry=r,
                                multiprocess_mode="mostrecent")
        self.webhook_attempts = Counter("zoomreel_webhook_attempts",
                                        "Webhook delivery attempts, by outcome "
                                        "(delivered, retry, failed)", ["outcome"], registry=r)
        self.redis_connections = Counter(
            "zoomreel_redis_connections",
            "Connections made to Redis (more than the pool's size: reconnects)", registry=r)

    def render_done(self, frames: int, seconds: float) -> None:
        """Count a finished render."""
        self.finished.labels(JobState.DONE).inc()
        self.render_frames.inc(frames)
        self.render_seconds.observe(seconds)
        if seconds > 0:
            self.render_fps.set(frames / seconds)

    def watch(self, store: JobStore) -> None:
        """Report the jobs by state from ``store`` at every collection."""
        self.registry.register(_StateCollector(store))


class _StateCollector(Collector):
    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        try:
            queued, unfinished = self.store.counts()
        except redis.RedisError:  # the scrape still answers, without these
            return
        jobs = GaugeMetricFamily("zoomreel_jobs", "Unfinished jobs by state", labels=["state"])
        jobs.add_metric([JobState.QUEUED], queued)
        jobs.add_metric([JobState.RUNNING], max(0, unfinished - queued))
        yield jobs
        yield GaugeMetricFamily("zoomreel_queue_length", "Jobs waiting for a worker",
                                value=queued)


def counting_connections(metrics: JobMetrics) -> type[redis.Connection]:
    """A redis-py connection class that counts the connections it makes."""

    class CountingConnection(redis.Connection):
        def _connect(self) -> Any:  # every socket it opens, whichever path opens it
            sock = super()._connect()  # type: ignore[no-untyped-call]
            metrics.redis_connections.inc()
            return sock

    return CountingConnection
