"""Idempotent submits: a client's key names one job, whatever the retries.

As the IETF httpapi ``Idempotency-Key`` draft and Stripe do it: the first request with a
key creates the job and the key remembers it (with the request's fingerprint) for
``JobSettings.idempotency_ttl_s``; the same key with the same request returns that job,
with another request it is refused (:class:`~zoomreel.errors.IdempotencyConflict`).
Keys are scoped to the owner (API key). The record is made by the same Lua script that
creates the job (scripts.CREATE), so concurrent first uses of a key make one job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import SpecError

__all__ = ["HEADER", "MAX_KEY_LENGTH", "check_key", "fingerprint"]

#: The header's name, also in the messages that name a key.
HEADER = "Idempotency-Key"
#: The longest key accepted (Stripe's limit).
MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    """``key`` if it is 1 to MAX_KEY_LENGTH printable ASCII characters.

    Raises:
        SpecError: it is not (400, naming the header).
    """
    if not (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
        raise SpecError(HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters "
                        "(a UUID, say)")
    return key


def fingerprint(endpoint: str, request: dict[str, Any], upload: bytes | None = None) -> str:
    """The sha256 of a submit: its route, its fields (in any order, JSON's types) and the
    uploaded file's bytes, if any. Two submits with one fingerprint ask for one job."""
    digest = hashlib.sha256()
    digest.update(json.dumps([endpoint, request], sort_keys=True, separators=(",", ":"),
                             default=str).encode())
    if upload is not None:
        digest.update(b"\0upload\0" + hashlib.sha256(upload).digest())
    return digest.hexdigest()
