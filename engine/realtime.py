"""No thread of a render left in a real-time scheduling class, whatever its encoder does.

SVT-AV1 (libsvtav1, the ``av1`` codec), where its process may (root, as in most
containers, or CAP_SYS_NICE), moves the thread that opens it and every thread it starts
to ``SCHED_FIFO`` at priority 99, and leaves them there. A real-time thread that keeps
a core busy starves everything else on it: the API's answers, Redis, the other
renders. And every thread or process the moved thread starts afterwards inherits the
class: a test run whose worker process had rendered AV1 later started Chromium from it
at priority 99, and the machine stopped answering anything but Chromium. A render
never needs real time, so the encoder calls into the library inside
:func:`no_realtime`: the calling thread may not raise a priority there (CAP_SYS_NICE is
out of its effective capabilities, and out of every thread it starts), as for any user
but root, and SVT-AV1 runs as it does for them. What still enters a real-time class (a
process with a real-time limit, RLIMIT_RTPRIO, that allows it) is put back after each
call (:class:`RealtimeGuard`). Linux only; elsewhere both do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ._libc import libc_function

__all__ = ["CHECK_ALL_CALLS", "RealtimeGuard", "no_realtime", "realtime_threads"]

_REALTIME = frozenset(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR")
                      if hasattr(os, name))
_LINUX = sys.platform.startswith("linux") and hasattr(os, "sched_getscheduler")
_TASKS = "/proc/self/task"

#: Calls into the encoder after which every thread of the process is checked (an
#: encoder starts its threads within its first frames); after them, the calling thread,
#: and every thread again if it was moved.
CHECK_ALL_CALLS = 8


_CAP_VERSION_3 = 0x20080522  # capget/capset's header: 64-bit sets, two 32-bit words each
_CAP_SYS_NICE = 1 << 23  # in the first word


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAPGET = libc_function("capget") if _LINUX else None
_CAPSET = libc_function("capset") if _LINUX else None


@contextmanager
def no_realtime() -> Iterator[None]:
    """Inside, this thread (and every thread it starts) may not raise a thread's
    priority, nor move one to a real-time class: CAP_SYS_NICE is out of its effective
    capabilities, and back on leaving (it stays permitted). Lowering a priority (a
    higher nice value, as render threads do) needs no capability. Where the thread does
    not hold it, or capabilities cannot be read or set, nothing changes."""
    if _CAPGET is None or _CAPSET is None:
        yield
        return
    header = _CapHeader(_CAP_VERSION_3, 0)  # pid 0: this thread
    data = (_CapData * 2)()
    if _CAPGET(ctypes.byref(header), data) != 0 or not data[0].effective & _CAP_SYS_NICE:
        yield
        return
    data[0].effective &= ~_CAP_SYS_NICE
    if _CAPSET(ctypes.byref(header), data) != 0:
        yield
        return
    try:
        yield
    finally:
        data[0].effective |= _CAP_SYS_NICE
        _CAPSET(ctypes.byref(header), data)


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
