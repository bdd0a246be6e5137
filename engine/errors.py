"""Every error zoomreel raises on purpose.

Each message is written for the person who caused it: one line, saying what was
wrong and, where it helps, what would be right. Front ends show ``str(error)`` as is.
"""

from __future__ import annotations

import errno

__all__ = [
    "ZoomreelError",
    "InputError",
    "SpecError",
    "SettingError",
    "ImageError",
    "ImageTooLargeError",
    "AudioError",
    "FetchError",
    "URLRefusedError",
    "TransientFetchError",
    "RenderError",
    "RenderCancelled",
    "StorageError",
    "DiskFullError",
    "disk_full",
    "JobError",
    "JobNotFound",
    "IdempotencyConflict",
    "QueueFullError",
    "TooManyWaiting",
    "ServiceStopping",
]


class ZoomreelError(Exception):
    """Base class of every error zoomreel raises on purpose."""


# -- input: the caller gave us something we cannot use -------------------------


class InputError(ZoomreelError, ValueError):
    """The request itself is wrong; retrying it unchanged cannot help."""


class SpecError(InputError):
    """A render parameter is out of its range.

    Attributes:
        field: the parameter's name, as the user spelled it.
        rule: what the value must be.
    """

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field}: {rule}")


class SettingError(InputError):
    """A configuration setting is out of its range; the service refuses to start.

    Attributes:
        setting: the setting as the user wrote it (``ZOOMREEL_RETENTION_DAYS``,
            ``--port``, a JobSettings field).
        rule: what the value must be.
    """

    def __init__(self, setting: str, rule: str, value: object = None, *,
                 show_value: bool = True) -> None:
        self.setting = setting
        self.rule = rule
        self.value = value
        text = f"{setting} must be {rule}"
        super().__init__(f"{text}, not {value!r}" if show_value else text)


class ImageError(InputError):
    """The source is not an image we can decode."""


class ImageTooLargeError(ImageError):
    """The image (or its download) is over a configured limit."""


class AudioError(InputError):
    """A reel's track is not audio we can decode."""


# -- fetch: getting the image (or delivering a webhook) over the network --------


class FetchError(ZoomreelError):
    """A URL could not be fetched; permanent unless it is a TransientFetchError."""


class URLRefusedError(FetchError, InputError):
    """The URL is not one we fetch: wrong scheme, credentials, or a private address."""


class TransientFetchError(FetchError):
    """A failure that may pass: connection reset, time-out, 5xx from the host."""


# -- render -------------------------------------------------------------------


class RenderError(ZoomreelError, RuntimeError):
    """The encoder failed for a reason that is not the input's fault."""


class RenderCancelled(RenderError):
    """The render was cancelled before it finished; nothing was written."""


# -- storage ------------------------------------------------------------------


class StorageError(ZoomreelError, RuntimeError):
    """Object storage did not take or give a file: unreachable, or refusing (bad
    credentials, no such bucket). The message names the storage and the cause; it may
    pass, so steps that meet it retry for a while (see zoomreel.storage)."""


# -- disks --------------------------------------------------------------------


class DiskFullError(ZoomreelError, OSError):
    """A disk zoomreel writes to is full (or over its quota); it passes once space is
    freed, so the request or render may be tried again then.

    Attributes:
        retry_after: seconds after which a retry may find space.
    """

    retry_after = 60


#: errno values that mean "no room left" (a full disk, a quota reached).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the disk is full."""
    seen = 0
    while exc is not None and seen < 8:
        # getattr: PyAV's errors carry an errno without always being OSErrors
        if isinstance(exc, DiskFullError) or getattr(exc, "errno", None) in _NO_ROOM:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# -- jobs ---------------------------------------------------------------------


class JobError(ZoomreelError):
    """Base class of job-system errors."""


class JobNotFound(JobError, KeyError):
    """No job has this id (or it expired)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(job_id)

    def __str__(self) -> str:
        return "Job not found"


class IdempotencyConflict(JobError):
    """An ``Idempotency-Key`` already made a job from another request.

    Attributes:
        key: the key, as the caller sent it.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"Idempotency-Key {key!r} was used with another request: send "
                         "this request with a new key")


class QueueFullError(JobError):
    """The queue holds as many jobs as it is allowed to; try again later.

    Attributes:
        retry_after: seconds after which a retry is likely to be accepted.
    """

    def __init__(self, queue_length: int, retry_after: int = 30, *,
                 per_key: bool = False) -> None:
        self.queue_length = queue_length
        self.retry_after = retry_after
        self.per_key = per_key
        if per_key:
            message = (f"This API key has {queue_length} jobs waiting, its limit; "
                       f"retry in {retry_after} s")
        else:
            message = f"The queue is full ({queue_length} jobs waiting); retry in {retry_after} s"
        super().__init__(message)


class TooManyWaiting(JobError):
    """As many requests as this process allows already wait for their jobs to finish;
    the request created nothing.

    Attributes:
        retry_after: seconds after which a retry is likely to be accepted.
    """

    def __init__(self, waiting: int, retry_after: int = 10) -> None:
        self.waiting = waiting
        self.retry_after = retry_after
        super().__init__(
            f"{waiting} requests already wait for their video here, the most this server "
            f"holds; nothing was queued: retry in {retry_after} s, or send a webhook_url "
            "to be told when the video is done")


class ServiceStopping(JobError):
    """The service stops while a request waits for its job; the job is kept and goes on
    when the service is back (poll it by its id).

    Attributes:
        job_id: the job waited for.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"The service is restarting; job {job_id} is kept and will be done: "
                         "poll /v1/toolkit/job/status with its job_id")
