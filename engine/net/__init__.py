"""Outbound HTTP: every request zoomreel makes to a URL a user gave it.

* :mod:`.addresses`: which IP addresses may be reached (pure classification);
* :mod:`.urls`: the rules a URL must pass, and the one DNS lookup;
* :mod:`.client`: one request over a connection pinned to a checked address;
* :mod:`.statuses`: what an HTTP status means (done, follow, retry, stop);
* :mod:`.download`: fetching an image; :mod:`.webhooks`: delivering a webhook.
"""

from __future__ import annotations

from .addresses import IPAddress, is_forbidden_address
from .client import open_checked
from .download import fetch_url
from .statuses import Outcome, classify
from .urls import check_url
from .webhooks import Delivery, check_secret, deliver, retry_delay

__all__ = [
    "Delivery",
    "IPAddress",
    "Outcome",
    "check_secret",
    "check_url",
    "classify",
    "deliver",
    "fetch_url",
    "is_forbidden_address",
    "open_checked",
    "retry_delay",
]
