"""The web page: its route, POST /v1/image/path against the renderer's own path, and
headless Chromium (Debian's, through Playwright) driving the whole workflow.

Without Chromium the browser tests skip on a developer machine and fail in CI (CI=true):
.ci/run installs it.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from imagegen import photo_like
from service_helpers import Serve

from zoomreel.camera import frame_rect
from zoomreel.canvas import canvas_geometry, fit_canvas
from zoomreel.spec import RenderSpec

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OPTIONS = {  # non-default options of every kind the page has
    "length": 3, "frame_rate": 24, "start_zoom": 1.4, "end_zoom": 2.5,
    "start_focus": [0.2, 0.3], "end_focus": [0.8, 0.6], "easing": "ease-in-out",
    "curve": "constant", "fit": "contain", "orientation": "portrait",
}


def _chromium() -> str:
    path = os.environ.get("ZOOMREEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if os.path.exists(path) else ""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("web"), workers=1)
    serve.start()
    yield serve
    serve.kill9()  # shutting down cleanly is test_serve.py's subject


def photo_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    photo_like(width, height, seed=5).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    photo_like(640, 360, seed=3).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if not executable:
        _unavailable("no chromium found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, web: Serve) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.goto(web.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def _wait(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll ``expression`` until it is true. (Playwright's wait_for_function compiles its
    predicate with eval, which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)


def _enter_key(page: Any, key: str) -> None:
    page.fill("input[name=api_key]", key)
    page.click("#key-save")
    _wait(page, "document.getElementById('key-status').textContent.length > 10"
                           " && !document.getElementById('key-status').textContent"
                           ".startsWith('Checking')")


def _set(page: Any, options: dict[str, Any]) -> None:
    for name, value in options.items():
        selector = f"[name={name}]"
        if page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            page.select_option(selector, str(value))
        else:
            page.fill(selector, ", ".join(map(str, value)) if isinstance(value, list)
                      else str(value))


# -- routes ---------------------------------------------------------------------------

def test_page_and_its_files_need_no_key(web: Serve) -> None:
    page = requests.get(web.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'name="image"' in page.text and 'name="api_key"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = requests.get(f"{web.url}/web/{name}", timeout=30)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text.replace(
            "https://example.com", "")  # nothing from another origin
    assert requests.get(web.url + "/web/nothing.js", timeout=30).status_code == 404
    assert requests.get(web.url + "/web/..%2fserve.py", timeout=30).status_code == 404


@pytest.mark.parametrize("options", [
    {},
    OPTIONS,
    {"zoom_speed": 20, "direction": "out", "focus": [0.9, 0.1], "loop": "ping-pong",
     "cycles": 2, "width": 640, "height": 480, "length": 2},
    {"fit": "contain-blur", "orientation": "square", "start_zoom": 3, "easing": "ease-out"},
    {"orientation": "auto", "start_focus": [0, 1], "start_zoom": 2, "end_zoom": 2},
])
def test_path_route_is_the_renderers_path(web: Serve, options: dict[str, Any]) -> None:
    image_w, image_h = 640, 360
    r = web.post("/v1/image/path", json={**options, "image_width": image_w,
                                         "image_height": image_h, "samples": 7})
    assert r.status_code == 200, r.text
    path = r.json()["response"]
    spec = RenderSpec.from_request(options)
    out = spec.size_for(image_w, image_h)
    # The canvas the renderer really builds has the size and layout the route reports.
    rgb = np.asarray(photo_like(image_w, image_h, seed=1))
    canvas = fit_canvas(rgb, spec.fit, *out, max_zoom=max(spec.zoom_keyframes))
    geometry = path["canvas"], path["image"]
    assert (canvas.shape[1], canvas.shape[0]) == (geometry[0]["width"], geometry[0]["height"])
    if spec.fit != "cover":
        x, y = geometry[1]["x"], geometry[1]["y"]
        inner = canvas[y:y + geometry[1]["height"], x:x + geometry[1]["width"]]
        assert np.array_equal(inner, rgb)
    assert (path["output"]["width"], path["output"]["height"]) == out
    assert path["frames"] == spec.total_frames
    last = spec.total_frames - 1
    assert [s["frame"] for s in path["samples"]] == sorted(
        {round(i * last / 6) for i in range(7)})
    for sample in path["samples"]:
        assert sample["rect"] == list(frame_rect(sample["frame"], spec, canvas.shape[1],
                                                 canvas.shape[0], out))


def test_path_route_refuses_what_submit_refuses(web: Serve) -> None:
    base = {"image_width": 640, "image_height": 360}
    for body, field in (({**base, "zoom_speed": 3, "start_zoom": 2}, "start_zoom"),
                        ({**base, "frame_rate": 100}, "frame_rate"),
                        ({**base, "samples": 1}, "samples"),
                        ({"image_width": 640}, "image_height"),
                        ({**base, "colour": "red"}, "colour")):
        r = web.post("/v1/image/path", json=body)
        assert r.status_code == 400, body
        assert r.json()["message"].startswith(field + ":"), r.json()
    assert requests.post(web.url + "/v1/image/path", json=base, timeout=30).status_code == 401


def test_canvas_geometry_matches_the_built_canvas_when_reduced() -> None:
    rgb = np.zeros((900, 300, 3), np.uint8)  # a tall image on a wide output: reduced
    geometry = canvas_geometry(300, 900, "contain", 256, 144, max_zoom=1.0)
    canvas = fit_canvas(rgb, "contain", 256, 144, background=(255, 0, 0))
    assert (canvas.shape[1], canvas.shape[0]) == (geometry.width, geometry.height)
    assert geometry.width == 256
    assert (canvas[:, :geometry.image_x] == (255, 0, 0)).all()
    assert not canvas[:, geometry.image_x:geometry.image_x + geometry.image_width].any()


# -- in the browser -------------------------------------------------------------------

def test_page_draws_the_renderers_start_and_end_frames(page: Any, web: Serve,
                                                       photo: Path) -> None:
    _enter_key(page, web.key)
    page.set_input_files("input[name=image]", str(photo))
    _set(page, OPTIONS)
    spec = RenderSpec.from_request(OPTIONS)
    out = spec.size_for(640, 360)
    geometry = canvas_geometry(640, 360, spec.fit, *out, max_zoom=max(spec.zoom_keyframes))
    last = spec.total_frames - 1
    _wait(page,
        f"document.getElementById('rect-end').dataset.frame === '{last}'"
        f" && document.getElementById('stage').dataset.canvasHeight === '{geometry.height}'")
    stage = page.eval_on_selector("#stage", "e => e.getBoundingClientRect().toJSON()")
    for element, n in (("#rect-start", 0), ("#rect-end", last)):
        drawn = page.eval_on_selector(element, "e => ({...e.dataset, "
                                               "box: e.getBoundingClientRect().toJSON()})")
        expected = frame_rect(n, spec, geometry.width, geometry.height, out)
        assert int(drawn["frame"]) == n
        assert [float(drawn[k]) for k in ("x0", "y0", "x1", "y1")] == list(expected)
        # ... and the element is drawn there (to within a pixel of the screen).
        scale = stage["width"] / geometry.width
        box = drawn["box"]
        assert box["x"] - stage["x"] == pytest.approx(expected[0] * scale, abs=1.0)
        assert box["y"] - stage["y"] == pytest.approx(expected[1] * scale, abs=1.0)
        assert box["width"] == pytest.approx((expected[2] - expected[0]) * scale, abs=1.0)
        assert box["height"] == pytest.approx((expected[3] - expected[1]) * scale, abs=1.0)
    # A click on the image sets the focus field (in fractions of the image).
    page.fill("[name=start_focus]", "")
    page.fill("[name=end_focus]", "")
    page.select_option("#click-sets", "focus")
    image = page.eval_on_selector("#picture", "e => e.getBoundingClientRect().toJSON()")
    page.mouse.click(image["x"] + image["width"] * 0.25, image["y"] + image["height"] * 0.75)
    fx, fy = (float(v) for v in page.input_value("[name=focus]").split(","))
    assert (fx, fy) == (pytest.approx(0.25, abs=0.01), pytest.approx(0.75, abs=0.01))
    # ... and so do the arrow keys, for keyboard users.
    page.focus("#stage")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowUp")
    fx2, fy2 = (float(v) for v in page.input_value("[name=focus]").split(","))
    assert (fx2, fy2) == (pytest.approx(fx + 0.02, abs=0.002), pytest.approx(fy - 0.1, abs=0.002))
    assert page.console_errors == []
    # A bad value is named in plain words, the API's own message, before submitting.
    page.fill("[name=frame_rate]", "100")
    _wait(page, "document.getElementById('form-error').textContent.length > 0")
    assert page.text_content("#form-error") == "frame_rate: must be an integer from 15 to 60"
    assert page.get_attribute("[name=frame_rate]", "aria-invalid") == "true"


def test_whole_workflow_in_the_browser(page: Any, web: Serve, photo: Path,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    _enter_key(page, "not-the-key")
    assert "not accepted" in page.text_content("#key-status")
    page.console_errors.clear()  # the 401 of the wrong key, logged by the browser
    _enter_key(page, web.key)
    assert page.text_content("#key-status") == "Key accepted."
    page.set_input_files("input[name=image]", str(photo))
    _set(page, {"length": 1, "frame_rate": 15, "width": 256, "height": 144})
    _wait(page, "document.getElementById('path-status').textContent"
                           ".startsWith('256×144, 15 frames')")
    _wait(page, "document.getElementById('preview-box').hidden === false")
    page.click("button[type=submit]")
    _wait(page, "document.querySelector('#recent li[data-job-id] .state')"
                           "?.textContent === 'done'", timeout=240)
    _wait(page, "document.querySelector('video').readyState >= 1", timeout=60)
    video = page.eval_on_selector("video", "v => ({w: v.videoWidth, h: v.videoHeight, "
                                           "d: v.duration, src: v.src})")
    assert (video["w"], video["h"]) == (256, 144)
    assert video["d"] == pytest.approx(1.0, abs=0.07)
    assert "signature=" in video["src"]  # a <video> cannot send the key: a signed link
    assert page.get_attribute("#download", "href") == video["src"]
    assert page.eval_on_selector("progress", "p => p.value") == 100
    assert page.console_errors == []
    shots = Path(os.environ.get("ZOOMREEL_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "page.png"), full_page=True)
    print(f"screenshot: {shots / 'page.png'}")
    # Stays usable on a phone-sized screen: nothing wider than the viewport.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "page-phone.png"), full_page=True)


def test_pasted_image_url_is_shown_and_submitted_as_json(page: Any, web: Serve,
                                                         image_server: Any) -> None:
    url = image_server.add("/web/pasted.jpg", photo_bytes(480, 320))
    _enter_key(page, web.key)
    page.fill("input[name=image_url]", url)
    page.dispatch_event("input[name=image_url]", "change")
    _wait(page, "document.getElementById('rect-end').dataset.frame === '149'")  # 5 s, 30 fps
    assert page.evaluate("() => document.getElementById('picture').naturalWidth") == 480
    _set(page, {"length": 1, "frame_rate": 15, "width": 128, "height": 128})
    page.click("button[type=submit]")
    _wait(page, "document.querySelector('#recent li[data-job-id]') !== null")
    job_id = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    answer = web.wait(job_id, timeout=240)  # the job the page queued, by URL
    assert answer["response"]["job_status"] == "done", answer
    assert answer["response"]["response"]["width"] == 128
    stored = page.evaluate("() => JSON.parse(localStorage.getItem('zoomreel.jobs'))")
    assert stored[0]["id"] == job_id and stored[0]["name"] == "pasted.jpg"
    assert page.console_errors == []
