"""Job: a snapshot of one job's record, decoded from its Redis hash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import JobNotFound
from .states import JobState, WebhookState

__all__ = ["Job", "decode_job", "text"]


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


@dataclass(frozen=True)
class Job:
    """A snapshot of one job record.

    Attributes:
        id: the job id (uuid4).
        status: one of states.py's job states.
        request: the validated request fields (RenderSpec fields, image_url, ...).
        client_id: the request's optional ``id``, echoed in answers.
        queue_id: a number unique to the job, in submission order.
        pid: process id of the worker that ran it, None while queued.
        created_at: submission time (epoch seconds); started_at, finished_at likewise.
        frames_done: frames encoded so far; frames_total: frames in the video.
        filename: the video's file name in the storage folder.
        result: size, duration, width, height, frame_rate once done (and
            focus_used, {x, y, by}, for focus "auto").
        error: what went wrong, once ``error``.
        attempts: transient failures retried so far.
        webhook: delivery state (state, attempts, last_error, msg_id) or None.
        lost_runs: renders that stopped without a word (their worker died or lost
            Redis for longer than the lease) and were taken up again.
        endpoint: the route the job was submitted on.
        upstream: the job follows the upstream toolkit's semantics (its answers and
            webhook body are the upstream envelope; a failed one reads ``done``).
        error_code: once ``error``: 400 when the input was at fault (an image that could
            not be fetched or decoded, a bad field), 500 when zoomreel was.
        storage: once ``done``: the kind of storage that holds its video (``s3``);
            empty for the data dir (and for every job done before storage had kinds).
        poster: once ``done``: the file name of its poster (one JPEG frame, stored
            beside the video); empty when it has none (jobs done before posters).
    """

    id: str
    status: JobState
    request: dict[str, Any]
    client_id: Any
    queue_id: int
    pid: int | None
    created_at: float
    started_at: float | None
    run_started_at: float | None
    finished_at: float | None
    frames_done: int
    frames_total: int
    filename: str
    base_url: str | None
    upload: str | None
    webhook_url: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    webhook: dict[str, Any] | None
    lost_runs: int = 0
    endpoint: str = ""
    upstream: bool = False
    error_code: int | None = None
    storage: str = ""
    poster: str = ""

    @property
    def uploads(self) -> list[str]:
        """The names of its uploaded files (a reel may have several: ``upload`` holds
        them comma-separated)."""
        return [name for name in (self.upload or "").split(",") if name]

    @property
    def is_reel(self) -> bool:
        """Whether the job is a reel (POST /v1/video/reel): its request has slides."""
        return "slides" in self.request

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Job:
        """Build a Job from its Redis hash (decoded strings)."""
        result: dict[str, Any] | None = None
        if data.get("status") == JobState.DONE:
            result = {
                "size": _int(data.get("size")),
                "duration": _float(data.get("duration")),
                "width": _int(data.get("width")),
                "height": _int(data.get("height")),
                "frame_rate": _int(data.get("frame_rate")),
            }
            if data.get("focus_used"):  # focus "auto": {x, y, by}
                result["focus_used"] = json.loads(data["focus_used"])
        webhook = None
        if data.get("webhook_url"):
            webhook = {
                "state": WebhookState(data.get("webhook_state") or WebhookState.PENDING),
                "attempts": int(data.get("webhook_attempts") or 0),
                "last_error": data.get("webhook_last_error") or None,
                "msg_id": data.get("webhook_msg_id") or None,
            }
        return cls(
            id=data["id"],
            status=JobState(data["status"]),
            request=json.loads(data.get("request") or "{}"),
            client_id=json.loads(data.get("client_id") or "null"),
            queue_id=int(data.get("queue_id") or 0),
            pid=_int(data.get("pid")),
            created_at=float(data["created_at"]),
            started_at=_float(data.get("started_at")),
            run_started_at=_float(data.get("run_started_at")),
            finished_at=_float(data.get("finished_at")),
            frames_done=int(data.get("frames_done") or 0),
            frames_total=int(data.get("frames_total") or 0),
            filename=data.get("filename", ""),
            base_url=data.get("base_url") or None,
            upload=data.get("upload") or None,
            webhook_url=data.get("webhook_url") or None,
            result=result,
            error=data.get("error") or None,
            attempts=int(data.get("attempts") or 0),
            webhook=webhook,
            lost_runs=int(data.get("lost_runs") or 0),
            endpoint=data.get("endpoint", ""),
            upstream=data.get("upstream") == "1",
            error_code=_int(data.get("error_code")),
            storage=data.get("storage", ""),
            poster=data.get("poster", ""),
        )



def decode_job(job_id: str, raw: dict[Any, Any]) -> Job:
    """A job from its HGETALL answer. Raises JobNotFound for an empty or partial one."""
    if not raw or b"status" not in raw and "status" not in raw:
        raise JobNotFound(job_id)
    return Job.from_hash({text(k): text(v) for k, v in raw.items()})


def text(value: Any) -> str:
    """A Redis reply (bytes or not) as a string."""
    return value.decode() if isinstance(value, bytes) else str(value)
