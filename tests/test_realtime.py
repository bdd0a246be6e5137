"""No render leaves a thread in a real-time scheduling class.

SVT-AV1 moves the thread that opens it, and every thread it starts, to SCHED_FIFO at
priority 99 wherever the process may (root, CAP_SYS_NICE); zoomreel.realtime keeps the
encoder from doing so and puts back what still did. Where this process may not use real
time, neither may SVT-AV1, and these skip.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imagegen import photo_like

from zoomreel import RenderSpec, render_video
from zoomreel.realtime import CHECK_ALL_CALLS, RealtimeGuard, no_realtime, realtime_threads

pytestmark = pytest.mark.unit


def _in_thread(target: Callable[[], object]) -> None:
    """Run ``target`` in a thread of its own and re-raise what it raised: a thread that
    ends takes its scheduling class with it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _may_use_real_time() -> bool:
    moved: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            moved.append(True)
        except (OSError, AttributeError):
            moved.append(False)

    _in_thread(probe)
    return moved[0]


needs_real_time = pytest.mark.skipif(
    not _may_use_real_time(),
    reason="this process may not use real-time scheduling (not root): nor may SVT-AV1")


@contextmanager
def _parked_thread(real_time: bool) -> Iterator[int]:
    """A thread waiting until the block ends, in SCHED_FIFO if ``real_time``; yields its id."""
    started, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def park() -> None:
        if real_time:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        tid.append(threading.get_native_id())
        started.set()
        done.wait()

    thread = threading.Thread(target=park, daemon=True)
    thread.start()
    started.wait()
    try:
        yield tid[0]
    finally:
        done.set()
        thread.join()


@needs_real_time
def test_an_av1_render_leaves_no_thread_in_real_time(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    photo_like(320, 180, seed=2).save(source)
    before = realtime_threads()
    during: list[set[int]] = []
    caller: list[int] = []

    def render() -> None:
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        render_video(source, tmp_path / "out.mp4",
                     RenderSpec(codec="av1", length=1, frame_rate=24, width=320, height=180),
                     progress=lambda done, total: during.append(realtime_threads()))
        caller.extend([os.sched_getscheduler(0),
                       os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - nice])

    _in_thread(render)
    assert len(during) == 24
    assert all(found == before for found in during)  # after each frame, SVT's threads too
    assert caller == [os.SCHED_OTHER, 0]  # the rendering thread: its class and nice value
    assert realtime_threads() == before


@needs_real_time
def test_inside_no_realtime_no_thread_may_enter_real_time_and_after_it_may_again() -> None:
    def inside() -> None:
        with no_realtime():
            with pytest.raises(PermissionError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # lowering: allowed
            started = []
            _in_thread(lambda: started.append(_may_use_real_time()))
            assert started == [False]  # what it starts inherits it
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        assert os.sched_getscheduler(0) == os.SCHED_FIFO

    _in_thread(inside)


@needs_real_time
def test_the_guard_puts_back_what_moved_since_and_leaves_what_was_real_time() -> None:
    with _parked_thread(real_time=True) as older, _parked_thread(real_time=False) as moved:
        guard = RealtimeGuard()
        with _parked_thread(real_time=True) as started_since:
            os.sched_setscheduler(moved, os.SCHED_FIFO, os.sched_param(1))
            guard.check()
            assert os.sched_getscheduler(moved) == os.SCHED_OTHER
            assert os.sched_getscheduler(started_since) == os.SCHED_OTHER
            assert os.sched_getscheduler(older) == os.SCHED_FIFO
            assert guard.restored == 2


@needs_real_time
def test_after_the_first_calls_the_guard_checks_every_thread_once_the_caller_moved() -> None:
    def calls() -> None:
        guard = RealtimeGuard()
        for _ in range(CHECK_ALL_CALLS):
            guard.check()
        with _parked_thread(real_time=True) as started_since:
            guard.check()  # the caller did not move: the other threads are not looked at
            assert os.sched_getscheduler(started_since) == os.SCHED_FIFO
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            guard.check()
            assert os.sched_getscheduler(started_since) == os.SCHED_OTHER
            assert os.sched_getscheduler(0) == os.SCHED_OTHER

    _in_thread(calls)
