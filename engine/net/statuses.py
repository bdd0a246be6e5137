"""What an HTTP status means for us, decided once for image downloads and webhooks."""

from __future__ import annotations

import enum

__all__ = ["Outcome", "classify", "REDIRECT_STATUSES", "RETRY_STATUSES"]

#: Statuses that carry a ``Location`` to follow (image downloads do; webhooks do not).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: 4xx statuses that say "not now" rather than "never": worth trying again later.
RETRY_STATUSES = frozenset({408, 429})


class Outcome(enum.Enum):
    """How a caller should treat an answer's status."""

    OK = "ok"  #: 2xx: it worked
    REDIRECT = "redirect"  #: 301/302/303/307/308: follow ``Location`` (or refuse to)
    RETRY = "retry"  #: 408, 429, 5xx: may pass, try again later
    GONE = "gone"  #: 410: gone for good, stop trying
    FAIL = "fail"  #: anything else: the request is wrong, retrying cannot help


def classify(status: int) -> Outcome:
    """The :class:`Outcome` of an HTTP status code."""
    if 200 <= status < 300:
        return Outcome.OK
    if status in REDIRECT_STATUSES:
        return Outcome.REDIRECT
    if status >= 500 or status in RETRY_STATUSES:
        return Outcome.RETRY
    if status == 410:
        return Outcome.GONE
    return Outcome.FAIL
