"""Webhook delivery: one signed POST per call, and the schedule for trying again.

Pure functions: :func:`deliver` makes one attempt and says what happened in a
:class:`Delivery`; the job system's actor stores the delivery state and schedules the
next attempt with :func:`retry_delay`. The request goes through the same
address-checked, pinned connection as image downloads (:mod:`zoomreel.net.client`), and
follows no redirect.

With a secret the request is signed per Standard Webhooks v1: ``webhook-id`` (the
same on every attempt of one delivery, so a receiver can drop duplicates),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 over "id.timestamp.body">``, keyed with the base64 part of
the ``whsec_...`` secret). A receiver verifies it with the ``standardwebhooks``
package (or any Standard Webhooks library)::

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    try:
        payload = Webhook("whsec_...").verify(request_body_bytes, request_headers)
    except WebhookVerificationError:
        ...  # answer 400 and ignore the request

``verify`` also refuses timestamps more than five minutes away from now, against
replays; it needs the body exactly as received, before any JSON parsing.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from .._backoff import Uniform, backoff
from ..errors import FetchError, InputError, TransientFetchError, URLRefusedError
from .client import open_checked
from .statuses import Outcome, classify

__all__ = [
    "Delivery",
    "check_secret",
    "RETRY_AFTER_CAP",
    "RETRY_SCHEDULE",
    "deliver",
    "encode_payload",
    "retry_delay",
    "sign_headers",
]

#: Seconds to wait after each failed attempt: attempt n failed -> wait
#: ``RETRY_SCHEDULE[n - 1]`` (with jitter). 13 attempts over about 23.7 hours.
RETRY_SCHEDULE: tuple[float, ...] = (
    5,
    30,
    2 * 60,
    10 * 60,
    30 * 60,
    60 * 60,
    2 * 3600,
    4 * 3600,
    4 * 3600,
    4 * 3600,
    4 * 3600,
    4 * 3600,
)

#: The longest ``Retry-After`` honoured; a receiver asking for more gets this.
RETRY_AFTER_CAP: float = 6 * 3600

# Spread retries so that receivers that came back are not hit by every job at once.
_JITTER = (0.8, 1.2)

_USER_AGENT = "zoomreel-webhooks"


@dataclass(frozen=True)
class Delivery:
    """What one delivery attempt came to.

    Attributes:
        ok: the receiver answered 2xx; never send this delivery again.
        retry: the failure may pass; try again after :func:`retry_delay`.
        retry_after: seconds the receiver asked us to wait (``Retry-After``), if any.
        status: the receiver's HTTP status, None when there was no answer.
        error: what went wrong, for the job's status answer; None when ok.
        gone: the receiver answered 410 Gone; stop for good.
    """

    ok: bool
    retry: bool
    retry_after: float | None = None
    status: int | None = None
    error: str | None = None
    gone: bool = False


def check_secret(secret: str) -> None:
    """Refuse a signing secret that is not ``whsec_`` + base64 of >= 16 bytes.

    Checked once at start-up, so a typo stops the service with a clear message instead
    of failing every delivery later.

    Raises:
        InputError: saying what a secret must look like.
    """
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else ""
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise InputError(
            "ZOOMREEL_WEBHOOK_SECRET must be 'whsec_' followed by the base64 of at least "
            "16 random bytes"
        )


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The request body: compact JSON, the same bytes for the same payload."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign_headers(
    msg_id: str, body: bytes, secret: str, *, timestamp: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks v1 headers that sign ``body``.

    Args:
        msg_id: the delivery's id, the same on every attempt.
        body: the exact request body.
        secret: the signing secret, ``whsec_`` followed by base64.
        timestamp: the signing time (timezone-aware); now when None.

    Returns:
        ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``.
    """
    from standardwebhooks.webhooks import Webhook  # ~0.1 s to import: only when signing

    # Webhook.sign overwrites the zone with UTC rather than converting: convert first.
    when = (timestamp or datetime.now(tz=UTC)).astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode("utf-8")),
    }


def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    msg_id: str,
    secret: str | None,
    allow_private: bool = False,
    timeout: float = 15.0,
) -> Delivery:
    """POST ``payload`` as JSON to ``url`` once, and say what came of it.

    Never raises for anything the receiver or the network does: every outcome is a
    :class:`Delivery`. 2xx is success; time-outs, connection errors, 408, 429 and 5xx
    are worth retrying; 410 means stop for good; any redirect (not followed) and other
    4xx are failures not retried, and so is a URL the address rules refuse.

    Args:
        url: the user's ``webhook_url``.
        payload: the JSON object to send (the job's status answer).
        msg_id: the delivery's id, sent as ``webhook-id`` on every attempt.
        secret: the ``whsec_...`` signing secret, or None to send unsigned.
        allow_private: lift the address rule (local use, tests).
        timeout: seconds the whole attempt may take.

    Returns:
        The attempt's outcome.
    """
    body = encode_payload(payload)
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
    if secret:
        headers.update(sign_headers(msg_id, body, secret))
    else:
        # Unsigned, the id and time still let a receiver drop duplicates.
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(int(time.time()))
    try:
        with open_checked(
            "POST",
            url,
            body=body,
            headers=headers,
            allow_private=allow_private,
            connect_timeout=timeout,
            read_timeout=timeout,
            total_timeout=timeout,
            label="webhook_url",
        ) as response:
            status = response.status
            reason = response.reason
            retry_after = _parse_retry_after(response.getheader("Retry-After"))
    except URLRefusedError as exc:
        return Delivery(ok=False, retry=False, error=str(exc))
    except TransientFetchError as exc:
        return Delivery(ok=False, retry=True, error=str(exc))
    except FetchError as exc:
        # DNS or TLS trouble on the receiver's side is often fixed within the day.
        return Delivery(ok=False, retry=True, error=str(exc))

    answered = f"webhook_url answered HTTP {status} {reason}".rstrip()
    outcome = classify(status)
    if outcome is Outcome.OK:
        return Delivery(ok=True, retry=False, status=status)
    if outcome is Outcome.GONE:
        return Delivery(ok=False, retry=False, status=status, error=answered, gone=True)
    if outcome is Outcome.RETRY:
        return Delivery(
            ok=False, retry=True, retry_after=retry_after, status=status, error=answered
        )
    if outcome is Outcome.REDIRECT:
        answered += " (webhooks do not follow redirects)"
    return Delivery(ok=False, retry=False, status=status, error=answered)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def retry_delay(
    attempt: int, retry_after: float | None = None, *, rng: Uniform = random
) -> float | None:
    """Seconds to wait before the next attempt, or None when there is none left.

    Args:
        attempt: how many attempts have failed so far (1 after the first).
        retry_after: seconds the receiver asked for (``Retry-After``), if any; honoured
            up to :data:`RETRY_AFTER_CAP`, never shortening the schedule.
        rng: where the jitter comes from (anything with ``uniform``).

    Returns:
        The delay, with jitter, or None after the last attempt of the schedule.

    Raises:
        ValueError: ``attempt`` is less than 1.
    """
    if attempt > len(RETRY_SCHEDULE):
        return None
    delay = backoff(attempt, schedule=RETRY_SCHEDULE, jitter=_JITTER, rng=rng)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay
