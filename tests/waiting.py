"""Waiting in tests: one way to wait until something observable has happened.

Tests never sleep "long enough" for something to happen: they wait for what shows that
it has (a job's state, a file, a process gone, a queue drained), and a wait that ends
without it fails saying what it waited for and what it saw last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, until: Callable[[T], object] = bool,
               timeout: float = 30.0, interval: float = 0.05, what: str = "",
               ignoring: tuple[type[Exception], ...] = ()) -> T:
    """Call ``check`` until its answer is truthy (or passes ``until``), and return it.

    Args:
        check: the condition, or a call whose answer is the thing awaited. An exception
            it raises ends the wait at once (an ``assert`` inside it fails the test
            early), unless it is one of ``ignoring``.
        until: whether an answer is the one awaited; the default takes a truthy one.
            The last answer is shown if the wait fails (a job's record, the processes
            still alive), so check returns what is worth seeing.
        timeout: seconds to wait; generous, for loaded machines: a wait that succeeds
            ends as soon as the condition holds.
        interval: seconds between calls.
        what: what is awaited, for the failure message.
        ignoring: exceptions that mean "not yet" (e.g. a connection refused while a
            server starts); the last one is shown if the wait fails.

    Raises:
        AssertionError: ``check`` did not return a truthy value within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ignoring as exc:
            last: object = exc
        else:
            if until(value):
                return value
            last = value
        left = deadline - time.monotonic()
        if left <= 0:
            seen = f"raised {last!r}" if isinstance(last, Exception) else f"was {last!r}"
            raise AssertionError(f"waited {timeout:g} s for {what or check!r}; "
                                 f"the last check {seen}") from (
                last if isinstance(last, Exception) else None)
        time.sleep(min(interval, left))
