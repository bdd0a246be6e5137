"""Threads an encoder library moved to a real-time scheduling class, put back.

SVT-AV1 (libsvtav1, the ``av1`` codec), where its process may (root, as in most
containers, or CAP_SYS_NICE), moves the thread that opens it and every thread it starts
to ``SCHED_FIFO`` at priority 99, and leaves them there. A real-time thread that keeps
a core busy starves everything else on it: the API's answers, Redis, the other
renders. And every thread or process the moved thread starts afterwards inherits the
class: a test run whose worker process had rendered AV1 later started Chromium from it
at priority 99, and the machine stopped answering anything but Chromium. A render
never needs real time, so the encoder puts such threads back after each call into the
library (:class:`RealtimeGuard`). Linux only; elsewhere nothing is checked.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CHECK_ALL_CALLS", "RealtimeGuard", "realtime_threads"]

_REALTIME = frozenset(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR")
                      if hasattr(os, name))
_LINUX = sys.platform.startswith("linux") and hasattr(os, "sched_getscheduler")
_TASKS = "/proc/self/task"

#: Calls into the encoder after which every thread of the process is checked (an
#: encoder starts its threads within its first frames); after them, the calling thread,
#: and every thread again if it was moved.
CHECK_ALL_CALLS = 8


def _policies() -> dict[int, int]:
    """{thread id: scheduling policy} of this process's threads."""
    policies = {}
    for name in os.listdir(_TASKS):
        try:
            policies[int(name)] = os.sched_getscheduler(int(name))
        except OSError:  # it ended meanwhile
            continue
    return policies


def realtime_threads() -> set[int]:
    """Ids of this process's threads in a real-time scheduling class (Linux; else none)."""
    if not _LINUX:
        return set()
    return {tid for tid, policy in _policies().items() if policy in _REALTIME}


class RealtimeGuard:
    """Made before an encoder opens; :meth:`check` after each call into it puts every
    thread that has entered a real-time class since back in its own class (a thread
    started since: ``SCHED_OTHER``), its nice value kept. Threads that were real-time
    already are the program's own business and are left alone."""

    def __init__(self) -> None:
        self._before = _policies() if _LINUX else {}
        self._calls = 0
        self.restored = 0  # threads put back, for the log and the tests

    def check(self) -> None:
        if not _LINUX:
            return
        self._calls += 1
        if self._calls > CHECK_ALL_CALLS and os.sched_getscheduler(0) not in _REALTIME:
            return
        for tid, policy in _policies().items():
            was = self._before.get(tid, os.SCHED_OTHER)
            if policy in _REALTIME and was not in _REALTIME:
                try:
                    os.sched_setscheduler(tid, was, os.sched_param(0))
                    self.restored += 1
                except OSError:  # it ended meanwhile
                    continue
