"""The routes existing clients of the documented service also call, and CORS for
browser clients on other origins, against ``zoomreel serve`` over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from service_helpers import API_KEY, SMALL, Serve
from waiting import eventually

pytestmark = pytest.mark.system

ALLOWED = "https://studio.example.com"
OTHER = "https://evil.example.net"
#: The module's ``api`` and ``photo_url`` (tests/conftest.py).
SERVE_OPTIONS = {"workers": 1,
                 "env": {"ZOOMREEL_CORS_ORIGINS": f"{ALLOWED}, https://other.example.org"}}
PHOTO = {"width": 480, "height": 270, "color": (200, 120, 30)}


def test_authenticate_says_whether_a_key_is_good(api: Serve) -> None:
    r = api.get("/v1/toolkit/authenticate")
    assert r.status_code == 200
    assert r.json()["response"] == "Authorized" and r.json()["code"] == 200
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = requests.get(api.url + "/v1/toolkit/authenticate", headers=headers, timeout=10)
        assert (r.status_code, r.json()) == (401, {"message": "Unauthorized"})


def test_jobs_status_lists_the_jobs_changed_in_the_window(api: Serve, photo_url: str) -> None:
    ids = [api.submit(image_url=photo_url, **SMALL) for _ in range(2)]
    for job_id in ids:
        assert api.wait(job_id)["response"]["job_status"] == "done"
    for body in ({}, {"since_seconds": 600}, None):
        r = api.post("/v1/toolkit/jobs/status", **({} if body is None else {"json": body}))
        assert r.status_code == 200, r.text
        states = r.json()["response"]
        assert all(states[j] == "done" for j in ids)
        assert set(states.values()) <= {"queued", "running", "done", "error"}

    def recent() -> dict[str, str]:
        r = api.post("/v1/toolkit/jobs/status", json={"since_seconds": 0.5})
        assert r.status_code == 200, r.text
        return dict(r.json()["response"])

    # half a second after their last change the jobs are out of a half-second window
    eventually(recent, until=lambda states: not set(ids) & set(states), timeout=10,
               what="the finished jobs to leave a 0.5 s window")


@pytest.mark.parametrize("body, field", [
    ({"since_seconds": 0}, "since_seconds"),
    ({"since_seconds": "600"}, "since_seconds"),
    ({"since_seconds": 10**9}, "since_seconds"),
    ({"since": 600}, "since"),
    ([600], "body"),
])
def test_jobs_status_refuses_bad_windows(api: Serve, body: Any, field: str) -> None:
    r = api.post("/v1/toolkit/jobs/status", json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def preflight(api: Serve, origin: str, path: str = "/v1/image/convert/video",
              headers: str = "x-api-key, content-type") -> requests.Response:
    return requests.options(api.url + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers})


def test_preflight_from_an_allowed_origin_is_answered_without_a_key(api: Serve) -> None:
    for path in ("/v1/image/convert/video", "/v1/image/transform/video",
                 "/v1/toolkit/job/status"):
        r = preflight(api, ALLOWED, path)
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {"x-api-key", "content-type", "idempotency-key"}
        assert "Origin" in r.headers["Vary"]
    # a header the API does not take is not allowed, whatever the browser asks for
    r = preflight(api, ALLOWED, headers="x-api-key, x-custom")
    assert r.headers["Access-Control-Allow-Headers"] == "X-API-Key, Content-Type, Idempotency-Key"


def test_preflight_from_another_origin_gets_no_cors_headers(api: Serve) -> None:
    r = preflight(api, OTHER)
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_requests_from_an_allowed_origin_can_read_the_answer(api: Serve, photo_url: str) -> None:
    r = api.post("/v1/image/convert/video", json={"image_url": photo_url, **SMALL},
                 headers={"X-API-Key": API_KEY, "Origin": ALLOWED})
    assert r.status_code == 202
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    # a wrong key is readable too, so a page can say "wrong key" rather than "network error"
    r = requests.get(api.url + "/v1/toolkit/authenticate", timeout=10,
                     headers={"X-API-Key": "wrong", "Origin": ALLOWED})
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == ALLOWED
    r = api.get("/v1/toolkit/authenticate", headers={"X-API-Key": API_KEY, "Origin": OTHER})
    assert r.status_code == 200  # served (CORS is the browser's rule) but not readable there
    assert "Access-Control-Allow-Origin" not in r.headers


def test_no_origin_is_allowed_unless_configured(serve_factory: Any) -> None:
    api = serve_factory(workers=0)
    assert not [h for h in preflight(api, ALLOWED).headers
                if h.lower().startswith("access-control-")]
    r = api.get("/v1/toolkit/authenticate", headers={"X-API-Key": API_KEY, "Origin": ALLOWED})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_the_routes_are_in_the_api_document(api: Serve) -> None:
    doc = requests.get(api.url + "/openapi.json", timeout=10).json()
    paths = doc["paths"]
    assert paths["/v1/image/transform/video"]["post"]["requestBody"] == \
        paths["/v1/image/convert/video"]["post"]["requestBody"]
    assert "get" in paths["/v1/toolkit/authenticate"]
    body = paths["/v1/toolkit/jobs/status"]["post"]["requestBody"]["content"]
    schema = doc["components"]["schemas"]["JobsStatusRequest"]
    assert body["application/json"]["schema"]["$ref"].endswith("JobsStatusRequest")
    assert schema["properties"]["since_seconds"]["default"] == 600
