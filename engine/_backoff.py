"""How long to wait before trying again: the one backoff every retry in zoomreel uses.

Renders and chunks given back after a failure, storage steps, Redis steps waiting out a
stall, and webhook deliveries each pass their own numbers (unit included: seconds or
milliseconds, as the caller counts them); the rule is written once, here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Uniform", "backoff"]

# 2.0 ** 1024 overflows a float: later attempts wait as long as this one (or the cap).
_MAX_DOUBLINGS = 1023


class Uniform(Protocol):
    """Where jitter comes from (``random``, a ``random.Random``, or a stand-in)."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff(attempt: int, base: float = 0.0, cap: float = math.inf, *,
            schedule: Sequence[float] = (), jitter: tuple[float, float] | None = None,
            rng: Uniform = random) -> float:
    """The wait after ``attempt`` failed attempts.

    ``base`` doubled for each attempt after the first, or, given a ``schedule``, its
    entry for the attempt (its last entry once it runs out); at most ``cap``; then
    times a random factor between ``jitter``'s bounds, so that many callers that failed
    together do not all try again at once.

    Args:
        attempt: failed attempts so far (1 after the first).
        base: the wait after the first failure (in the caller's unit).
        cap: the longest wait before jitter.
        schedule: the waits after each failure, in order, instead of doubling ``base``.
        jitter: (low, high) bounds of the random factor; None for none (``rng`` is then
            not used).
        rng: where the random factor comes from.

    Returns:
        The wait, in the unit of ``base`` (or of ``schedule``).

    Raises:
        ValueError: ``attempt`` is less than 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if schedule:
        delay = float(schedule[min(attempt, len(schedule)) - 1])
    else:
        delay = base * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS)
    delay = min(cap, delay)
    if jitter is not None:
        delay *= rng.uniform(*jitter)
    return delay
