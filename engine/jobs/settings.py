"""JobSettings: everything the job system needs to know, passed explicitly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SettingError

__all__ = ["JobSettings", "DEFAULT_RETENTION_S", "DEFAULT_MAX_IMAGE_BYTES",
           "DEFAULT_MAX_QUEUE_LENGTH", "DEFAULT_MAX_SLIDES", "DEFAULT_MAX_AUDIO_BYTES"]

DEFAULT_RETENTION_S = 7 * 86400
DEFAULT_MAX_IMAGE_BYTES = 50 * 2**20
#: Queued jobs before a submit gets 429: about an hour of 10 s 1080p jobs on two cores.
DEFAULT_MAX_QUEUE_LENGTH = 1000
#: Slides a reel may have.
DEFAULT_MAX_SLIDES = 100
#: Size cap of a reel's track.
DEFAULT_MAX_AUDIO_BYTES = 50 * 2**20

#: The numeric fields' lower bounds: (field, bound, ">" exclusive or ">=" inclusive).
_RANGES = (
    ("retention_s", 0, ">="),  # 0 = keep forever: never "delete at once"
    ("max_queue_length", 0, ">="),
    ("max_jobs_per_key", 0, ">="),
    ("max_length", 0, ">"),
    ("max_image_bytes", 1, ">="),
    ("transient_retries", 0, ">="),
    ("lease_s", 0, ">"),
    ("max_lost_runs", 1, ">="),
    ("max_waiting", 0, ">="),
    ("wait_timeout_s", 0, ">"),
    ("storage_retry_s", 0, ">="),
    ("chunk_s", 0, ">="),
    ("idempotency_ttl_s", 0, ">"),
    ("max_slides", 1, ">="),
    ("max_audio_bytes", 1, ">="),
)
_RULES = {">": "a finite number greater than {}", ">=": "a finite number of at least {}"}


@dataclass(frozen=True)
class JobSettings:
    """Configuration of the job system; only entry points build it from the environment.

    Attributes:
        data_dir: root of everything the service writes (videos, uploads, Redis files).
        retention_s: seconds a finished job (record and video) is kept; 0 = forever.
        max_queue_length: queued jobs accepted before QueueFullError; 0 = unlimited.
        max_jobs_per_key: queued jobs one API key may have; 0 = unlimited.
        max_length: the longest video, in seconds, a request may ask for.
        max_image_bytes: size cap of a downloaded or uploaded image.
        allow_private_urls: let image and webhook URLs reach private addresses.
        webhook_secret: Standard Webhooks secret (``whsec_...``); None = unsigned.
        transient_retries: retries of a job whose image host failed transiently.
        lease_s: how long a render's lease lasts unrenewed: a job whose worker vanished
            is taken up again this long after its last sign of life.
        max_lost_runs: renders of one job that may stop without a word (the worker
            process died each time) before the job ends ``error``.
        max_waiting: requests one process lets wait for their job (the upstream
            toolkit's synchronous calls); 0 = none (such calls are refused).
        wait_timeout_s: how long such a request waits before it is answered that the
            job is still running (its job goes on).
        storage_retry_s: how long a storage step (a result's upload, an upload's read)
            is retried while object storage is unreachable or refusing, before its job
            ends ``error``.
        chunk_s: a video longer than this, in seconds, is rendered in chunks of about
            this length by every worker at once, then joined (chunks.py); 0 = never.
        idempotency_ttl_s: how long an ``Idempotency-Key`` is remembered, in seconds.
        max_slides: the most slides a reel may have.
        max_audio_bytes: size cap of a reel's track (downloaded or uploaded).
    """

    data_dir: Path = field(default_factory=lambda: Path("zoomreel-data"))
    retention_s: float = DEFAULT_RETENTION_S
    max_queue_length: int = DEFAULT_MAX_QUEUE_LENGTH
    max_jobs_per_key: int = 0
    max_length: float = 600.0
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    allow_private_urls: bool = False
    webhook_secret: str | None = None
    transient_retries: int = 3
    lease_s: float = 15.0
    max_lost_runs: int = 3
    max_waiting: int = 64
    wait_timeout_s: float = 3600.0
    storage_retry_s: float = 300.0
    chunk_s: float = 60.0
    idempotency_ttl_s: float = 86400.0
    max_slides: int = DEFAULT_MAX_SLIDES
    max_audio_bytes: int = DEFAULT_MAX_AUDIO_BYTES

    def __post_init__(self) -> None:
        """Refuse values that would destroy data or turn every request away.

        Raises:
            SettingError: a field out of its range (a ValueError).
        """
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name, low, rule in _RANGES:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)
                    and (value > low if rule == ">" else value >= low)):
                raise SettingError(name, _RULES[rule].format(low), value)

    @property
    def storage_dir(self) -> Path:
        """Where finished videos live (the only folder the download route serves)."""
        return self.data_dir / "videos"

    @property
    def upload_dir(self) -> Path:
        """Where uploaded images wait for their render."""
        return self.data_dir / "uploads"

    @property
    def redis_dir(self) -> Path:
        """Where the embedded Redis server keeps its append-only file."""
        return self.data_dir / "redis"
