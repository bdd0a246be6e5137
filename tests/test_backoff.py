"""zoomreel._backoff: the one backoff rule, and the schedules its callers keep."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoomreel._backoff import backoff

pytestmark = pytest.mark.unit

_waits = st.floats(0.001, 1e6)
_attempts = st.integers(1, 5_000)
_jitter = st.tuples(st.floats(0.1, 1.0), st.floats(1.0, 3.0))


@given(_attempts, _waits, _waits, _jitter, st.integers(0, 2**32))
def test_a_wait_stays_between_the_first_and_the_cap_times_the_jitter(
        attempt: int, base: float, cap: float, jitter: tuple[float, float], seed: int) -> None:
    low, high = jitter
    delay = backoff(attempt, base, cap, jitter=jitter, rng=random.Random(seed))
    assert min(base, cap) * low * (1 - 1e-9) <= delay <= cap * high * (1 + 1e-9)


@given(st.integers(1, 1_000), _waits, st.none() | _waits)  # before doubling overflows
def test_without_jitter_a_wait_never_shrinks_and_doubles_until_the_cap(
        attempt: int, base: float, cap: float | None) -> None:
    limit = float("inf") if cap is None else cap
    now, later = backoff(attempt, base, limit), backoff(attempt + 1, base, limit)
    assert now <= later <= limit
    assert later == min(limit, 2 * now) or now == limit


@given(st.lists(_waits, min_size=1, max_size=20).map(sorted), _attempts)
def test_a_schedule_is_followed_then_its_last_wait_repeats(
        schedule: list[float], attempt: int) -> None:
    delay = backoff(attempt, schedule=schedule)
    assert delay == schedule[min(attempt, len(schedule)) - 1]
    assert delay <= backoff(attempt + 1, schedule=schedule)


def test_the_callers_schedules_are_kept() -> None:
    """Render and chunk retries (ms), storage steps and Redis steps (s): as before the
    rule was shared."""
    assert [backoff(n, 2_000, 60_000) for n in range(1, 8)] == [
        2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
    assert [backoff(n, 0.5, 15.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert [backoff(n, 0.1, 2.0) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff(0, 1.0, 2.0)
