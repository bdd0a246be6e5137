"""``Idempotency-Key`` on the submit routes: a retry answers the first call's job, and
never makes a second one (engine/jobs/idempotency.py, scripts.CREATE)."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from loopback import LoopbackServer
from service_helpers import SMALL, Serve, jpeg, probe
from waiting import eventually

pytestmark = pytest.mark.system

KEY_A, KEY_B = "idem-key-a", "idem-key-b"
SERVE_OPTIONS = {"api_key": f"{KEY_A},{KEY_B}", "workers": 1}
CONVERT, LEGACY = "/v1/image/convert/video", "/v1/image/transform/video"


def _post(serve: Serve, path: str, key: str | None, *, api_key: str = KEY_A,
          **kwargs: Any) -> requests.Response:
    headers = {"X-API-Key": api_key, **({} if key is None else {"Idempotency-Key": key})}
    return requests.post(serve.url + path, headers=headers, timeout=60, **kwargs)


def _jobs(serve: Serve, api_key: str = KEY_A) -> set[str]:
    r = _post(serve, "/v1/toolkit/jobs/status", None, api_key=api_key,
              json={"since_seconds": 3600})
    assert r.status_code == 200, r.text
    return set(r.json()["response"])


def test_a_repeat_on_the_same_key_answers_the_same_job(api: Serve, photo_url: str) -> None:
    key, body = str(uuid.uuid4()), {**SMALL, "image_url": photo_url, "id": "first"}
    before = _jobs(api)
    first = _post(api, CONVERT, key, json=body)
    again = _post(api, CONVERT, key, json=dict(reversed(body.items())))  # any field order
    assert first.status_code == again.status_code == 202, again.text
    same = ("code", "job_id", "id", "queue_id", "message", "endpoint", "response")
    assert {k: again.json()[k] for k in same} == {k: first.json()[k] for k in same}
    assert _jobs(api) - before == {first.json()["job_id"]}
    # without the header nothing changes: the same body makes a new job each time
    plain = {_post(api, CONVERT, None, json=body).json()["job_id"] for _ in range(2)}
    assert len(plain) == 2 and first.json()["job_id"] not in plain


def test_the_same_key_with_another_body_is_422_naming_it(api: Serve, photo_url: str) -> None:
    key = f"retry-{uuid.uuid4()}"
    first = _post(api, CONVERT, key, json={**SMALL, "image_url": photo_url})
    assert first.status_code == 202, first.text
    before = _jobs(api)
    other = _post(api, CONVERT, key, json={**SMALL, "image_url": photo_url, "frame_rate": 30})
    assert other.status_code == 422, other.text
    assert key in other.json()["message"] and "Idempotency-Key" in other.json()["message"]
    assert other.json()["idempotency_key"] == key
    # the same body on another submit route is another request too
    assert _post(api, LEGACY, key, json={**SMALL, "image_url": photo_url,
                                         "webhook_url": ""}).status_code == 422
    assert _jobs(api) == before


def test_a_key_is_scoped_to_its_api_key(api: Serve, photo_url: str) -> None:
    key, body = str(uuid.uuid4()), {**SMALL, "image_url": photo_url}
    a = _post(api, CONVERT, key, json=body, api_key=KEY_A)
    b = _post(api, CONVERT, key, json=body, api_key=KEY_B)
    assert a.status_code == b.status_code == 202, b.text
    assert a.json()["job_id"] != b.json()["job_id"]
    assert _post(api, CONVERT, key, json=body, api_key=KEY_B).json()["job_id"] == \
        b.json()["job_id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400_naming_the_header(api: Serve, photo_url: str,
                                                   key: str) -> None:
    r = requests.post(api.url + CONVERT, timeout=30, json={**SMALL, "image_url": photo_url},
                      headers={"X-API-Key": KEY_A, "Idempotency-Key": key.encode()})  # type: ignore[dict-item]
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "Idempotency-Key"


def test_uploads_are_fingerprinted_by_their_bytes(api: Serve) -> None:
    key = str(uuid.uuid4())
    fields = {name: str(value) for name, value in SMALL.items()}

    def upload(color: tuple[int, int, int]) -> requests.Response:
        return _post(api, CONVERT, key, data=fields,
                     files={"image": ("photo.jpg", jpeg(320, 180, color), "image/jpeg")})

    first, again = upload((10, 200, 10)), upload((10, 200, 10))
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["job_id"] == again.json()["job_id"]
    assert upload((200, 10, 10)).status_code == 422  # same fields, another image


def test_ten_concurrent_first_uses_make_one_job(api: Serve, photo_url: str) -> None:
    key, body = str(uuid.uuid4()), {**SMALL, "image_url": photo_url}
    before = _jobs(api)
    start = threading.Barrier(10)

    def submit(_: int) -> str:
        with requests.Session() as session:  # a connection each, opened before the go
            session.get(api.url + "/health", timeout=30)
            start.wait(timeout=30)
            r = session.post(api.url + CONVERT, json=body, timeout=60,
                             headers={"X-API-Key": KEY_A, "Idempotency-Key": key})
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    with ThreadPoolExecutor(10) as pool:
        answered = set(pool.map(submit, range(10)))
    assert len(answered) == 1
    assert _jobs(api) - before == answered
    done = api.wait(answered.pop(), timeout=120)["response"]
    assert done["job_status"] == "done", done


def _api_processes(serve: Serve) -> list[int]:
    """serve's API processes: its tree less serve itself and its Redis server."""
    assert serve.proc is not None
    redis_pid = int((serve.data_dir / "redis" / "redis.pid").read_text())
    return [pid for pid in serve.tree() if pid not in (serve.proc.pid, redis_pid)]


def test_a_legacy_call_cut_by_kill_9_retried_with_its_key_answers_the_first_job(
        serve_factory: Any, image_server: LoopbackServer) -> None:
    serve = serve_factory(workers=1, env={"ZOOMREEL_HTTP_PROCESSES": "2"})
    url = image_server.add("/idempotency/legacy.jpg", jpeg(1280, 720, (60, 90, 200)))
    body = {"image_url": url, "length": 4, "frame_rate": 30, "width": 1280, "height": 720}
    key = str(uuid.uuid4())
    cut: list[BaseException] = []

    def first_call() -> None:
        try:
            r = requests.post(serve.url + LEGACY, json=body, timeout=120,
                              headers={**serve.headers, "Idempotency-Key": key})
            cut.append(AssertionError(f"the call was answered: {r.status_code} {r.text}"))
        except requests.ConnectionError as exc:  # its API process was killed
            cut.append(exc)

    caller = threading.Thread(target=first_call)
    caller.start()
    jobs = eventually(lambda: _jobs(serve, serve.key), until=bool, timeout=30, interval=0.05,
                      what="the first call's job")
    (job_id,) = jobs
    processes = _api_processes(serve)
    assert len(processes) == 2, processes
    for pid in processes:  # whichever of them holds the call
        os.kill(pid, signal.SIGKILL)
    caller.join(60)
    assert cut and isinstance(cut[0], requests.ConnectionError), cut

    retry = eventually(
        lambda: requests.post(serve.url + LEGACY, json=body, timeout=120,
                              headers={**serve.headers, "Idempotency-Key": key}),
        until=lambda r: r.status_code != 503, timeout=60, interval=0.2,
        ignoring=(requests.ConnectionError,), what="the retry to be answered")
    assert retry.status_code == 200, retry.text
    answer = retry.json()
    assert answer["job_id"] == job_id
    video = requests.get(answer["response"], timeout=30)
    assert video.status_code == 200
    assert probe(video.content)["frames"] == 120
    assert _jobs(serve, serve.key) == {job_id}  # one job, rendered once
