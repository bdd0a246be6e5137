"""Fair scheduling (engine/jobs/fair.py): the rule in-process, and short jobs that never wait
behind long ones on a real ``zoomreel serve`` (its default two render threads).

The service's log says in order when each render and chunk started, so the tests look at
that order, not at times: under the queue's plain order (FIFO) a job submitted after a
long job's split starts only once every chunk of it has started, and another key's job
only once every job queued before it has.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from loopback import LoopbackServer
from service_helpers import Serve, ServeFactory, jpeg
from waiting import eventually

from zoomreel.jobs.fair import SHORT_WORK, SPARE, Running, _work, admit

#: Scaled down from the benchmark's 600 s 1080p job: 20 chunks of 15 frames (chunks of
#: 1 s), a few seconds on two shared cores.
LONG = {"length": 20, "frame_rate": 15, "zoom_speed": 30, "width": 640, "height": 360}
SHORT = {"length": 1, "frame_rate": 15, "zoom_speed": 30, "width": 320, "height": 180}
#: One key's backlog: 8 whole jobs (not chunked: chunks of 60 s), a few seconds each here;
#: short by the spare thread's measure (fair.SHORT_WORK), so one takes it.
BACKLOG = {"length": 10, "frame_rate": 15, "zoom_speed": 30, "width": 1280, "height": 720}


def _started(lines: list[str]) -> list[str]:
    """Job ids, in the order their renders and chunks started (one entry each)."""
    return [m.group(1) for line in lines
            if (m := re.search(r"\[job (\S+)\] (?:render started|chunk \d+ \(frames)", line))]


@pytest.fixture
def photo(image_server: LoopbackServer) -> str:
    return image_server.add(f"/fair-{uuid.uuid4().hex}.jpg", jpeg(640, 360))


# -- the rule ------------------------------------------------------------------------------

def _running(*held: tuple[str, str]) -> list[Running]:
    return [Running(job, owner) for job, owner in held]


@pytest.mark.unit
def test_a_free_slot_goes_to_whoever_comes_first() -> None:
    one = _running(("a", ""))
    assert admit("b", "", False, one, 2, others_wait=False)
    assert admit("a", "", False, one, 2, others_wait=False)  # a second chunk of a


@pytest.mark.unit
def test_a_rendering_job_yields_to_a_job_of_its_key_holding_none() -> None:
    one = _running(("long", "A"))
    assert not admit("long", "A", False, one, 2, others_wait=False,
                     waiting=[("other", "A", 9.0)], arrived=1.0)
    assert admit("other", "A", False, one, 2, others_wait=False,
                 waiting=[("long", "A", 1.0)], arrived=9.0)
    # not to one of another key (the key rule weighs those), nor to one holding a thread
    assert admit("long", "A", False, one, 4, others_wait=True, waiting=[("b", "B", 0.0)])
    two = _running(("long", "A"), ("other", "A"))
    assert admit("long", "A", False, two, 3, others_wait=False,
                 waiting=[("other", "A", 0.0)])


@pytest.mark.unit
def test_a_keys_jobs_start_in_their_order_however_often_re_sent() -> None:
    # a2 and a3 were both refused; a3's message comes back first
    assert not admit("a3", "A", False, [], 2, others_wait=False,
                     waiting=[("a2", "A", 2.0)], arrived=3.0)
    assert admit("a2", "A", False, [], 2, others_wait=False,
                 waiting=[("a3", "A", 3.0)], arrived=2.0)
    assert admit("b1", "B", False, [], 2, others_wait=True,
                 waiting=[("a2", "A", 2.0)], arrived=3.0)


@pytest.mark.unit
def test_the_spare_thread_is_for_short_jobs_holding_none() -> None:
    long_job = _running(("long", ""), ("long", ""))
    assert admit("short", "", True, long_job, 2, others_wait=False)
    # a long one of a backlog, or another chunk of the running job: no
    assert not admit("backlog", "", False, long_job, 2, others_wait=False)
    assert not admit("long", "", False, long_job, 2, others_wait=False)
    # one spare thread only
    assert SPARE == 1
    full = [*long_job, Running("short", "")]
    assert not admit("short2", "", True, full, 2, others_wait=False)


@pytest.mark.unit
def test_a_key_holding_half_the_slots_yields_while_other_keys_wait() -> None:
    one = _running(("a1", "A"))
    assert not admit("a2", "A", False, one, 2, others_wait=True)
    assert admit("b1", "B", False, one, 2, others_wait=True)
    assert admit("a2", "A", False, one, 2, others_wait=False)  # nobody else waits
    # the spare: not for a key that holds a thread while others wait, even a short job
    both = _running(("a1", "A"), ("a2", "A"))
    assert not admit("a3", "A", True, both, 2, others_wait=True)
    assert admit("b1", "B", True, both, 2, others_wait=True)
    # four slots: two per key while others wait
    assert not admit("a3", "A", False, both, 4, others_wait=True)
    assert admit("a3", "A", False, one, 4, others_wait=True)


@pytest.mark.unit
def test_no_api_key_means_no_key_rule() -> None:
    assert admit("a2", "", False, _running(("a1", "")), 2, others_wait=True)


@pytest.mark.unit
@pytest.mark.parametrize(("frames", "request_fields", "short"), [
    (300, {"width": 1920, "height": 1080}, True),   # 10 s of 1080p30: the limit
    (301, {"width": 1920, "height": 1080}, False),
    (30, {"width": 320, "height": 180}, True),
    (150, {"image_url": "https://example.com/a.jpg"}, True),  # the default: 5 s, 1080p
    (18_000, {"image_url": "https://example.com/a.jpg"}, False),
    (90, {"slides": [{}, {}, {}]}, True),  # a reel of 3 s, its size from its first image
    (30, "not json", False),
    (None, {"width": 320, "height": 180}, False),
])
def test_short_means_at_most_ten_seconds_of_1080p(
        frames: int | None, request_fields: object, short: bool) -> None:
    body = request_fields if isinstance(request_fields, str) else json.dumps(request_fields)
    assert (_work(None if frames is None else str(frames), body) <= SHORT_WORK) is short


# -- on a real serve ----------------------------------------------------------------------

def _answer(api: Serve, job_id: str) -> dict[str, object]:
    return dict(api.status(job_id)["response"])


@pytest.mark.system
def test_short_jobs_do_not_wait_for_a_long_jobs_chunks(
        serve_factory: ServeFactory, photo: str) -> None:
    api = serve_factory(env={"ZOOMREEL_CHUNK_SECONDS": "1"})  # two render threads
    long_id = api.submit(image_url=photo, **LONG)
    eventually(lambda: any(f"[job {long_id}] render split into 20 chunks" in line
                           for line in api.lines), what="the long job to be split")
    shorts: list[str] = []
    percents: list[float] = []
    for _ in range(5):
        shorts.append(api.submit(image_url=photo, **SHORT))
        long_answer = _answer(api, long_id)
        progress = long_answer["progress"]
        assert isinstance(progress, dict)
        percents.append(float(progress["percent"]))
        time.sleep(0.2)
    for job_id in shorts:
        assert api.wait(job_id, timeout=60)["response"]["job_status"] == "done"
    assert api.wait(long_id, timeout=120)["response"]["job_status"] == "done"
    order = _started(api.lines)
    assert order.count(long_id) == 20  # each chunk once
    # each started while the long job still had chunks to start (FIFO: after all 20)
    after = [order[order.index(job_id):].count(long_id) for job_id in shorts]
    assert min(after) >= 1 and after[0] >= 5, (after, order)
    assert percents == sorted(percents)  # its progress never went back meanwhile
    final = _answer(api, long_id)["progress"]
    assert isinstance(final, dict) and final["frames_done"] == final["frames_total"] == 300


@pytest.mark.system
def test_one_keys_backlog_does_not_hold_back_another_keys_job(
        serve_factory: ServeFactory, photo: str) -> None:
    api = serve_factory(api_key="key-of-a,key-of-b")
    a = {"X-API-Key": "key-of-a"}
    b = {"X-API-Key": "key-of-b"}

    def submit(headers: dict[str, str], body: dict[str, object]) -> str:
        r = api.post("/v1/image/convert/video", json={"image_url": photo, **body},
                     headers=headers)
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    backlog = [submit(a, BACKLOG) for _ in range(8)]
    eventually(lambda: len(_started(api.lines)) >= 2, what="two of A's jobs to start")
    other = submit(b, SHORT)
    # meanwhile A's waiting jobs say so: queued, nothing done, no ETA
    waiting = [j for j in backlog if _answer(api, j)["job_status"] == "queued"]
    assert waiting
    for job_id in waiting:
        progress = _answer(api, job_id)["progress"]
        assert isinstance(progress, dict)
        assert progress["frames_done"] == 0 and progress["eta_seconds"] is None
    assert api.wait(other, timeout=60)["response"]["job_status"] == "done"
    for job_id in backlog:
        assert api.wait(job_id, timeout=120)["response"]["job_status"] == "done"
    order = _started(api.lines)
    # B's job started after at most A's first three (the two slots, the spare) and one
    # that may start before B's submit; FIFO: after all 8
    assert len([j for j in order[:order.index(other)] if j in backlog]) <= 4, order
