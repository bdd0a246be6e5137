"""The web page: its route, POST /v1/image/path against the renderer's own path, and
headless Chromium (Debian's, through Playwright) driving the whole workflow.

Without Chromium the browser tests skip on a developer machine and fail in CI (CI=true):
.ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import requests
from imagegen import encode, photo_like
from service_helpers import Serve

from zoomreel.camera import frame_rect
from zoomreel.canvas import canvas_geometry, fit_canvas
from zoomreel.jobs.keys import Keys
from zoomreel.jobs.redis_server import EmbeddedRedis
from zoomreel.spec import REQUEST_FIELDS, RenderSpec

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
def web(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("web"), workers=1)
    # The session's Redis, so that a test can read the jobs the page (or its curl) made.
    serve.env["ZOOMREEL_REDIS_URL"] = redis_server.url
    serve.start()
    yield serve
    serve.kill9()  # shutting down cleanly is test_serve.py's subject


def photo_bytes(width: int, height: int) -> bytes:
    return encode(photo_like(width, height, seed=5), "JPEG", quality=90)


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


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def page(browser: Any, web: Serve) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
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
    """Set request fields as a person would: open More options where a field is folded
    in it, choose the field's form of its alternative, then use its control."""
    for name, value in options.items():
        wrap = f"[data-field={name}]"
        if page.eval_on_selector(wrap, "e => Boolean(e.closest('details:not([open])'))"):
            page.click("#more summary")
        alternative = page.get_attribute(wrap, "data-alternative")
        if alternative:
            form = page.get_attribute(wrap, "data-form")
            page.check(f'[data-switch="{alternative}"] input[value="{form}"]')
        control = page.get_attribute(wrap, "data-control")
        if control == "segmented":
            page.check(f"{wrap} input[value={value}]")
        elif control == "switch":
            page.set_checked(f"{wrap} input", value == REQUEST_FIELDS[name].choices[1])
        elif control == "select":
            page.select_option(f"{wrap} select", str(value))
        else:
            page.fill(f"{wrap} input", ", ".join(map(str, value)) if isinstance(value, list)
                      else str(value))


def _request(page: Any) -> dict[str, Any]:
    """The request fields "Show the request" shows (the file left out)."""
    fields = json.loads(page.text_content("#request-json"))
    fields.pop("image", None)
    return dict(fields)


def _drawn(page: Any) -> list[list[float]]:
    """The first and last frames drawn over the image, as the elements hold them."""
    return [[float(page.get_attribute(e, f"data-{k}")) for k in ("frame", "x0", "y0", "x1", "y1")]
            for e in ("#rect-start", "#rect-end")]


def _until(check: Any, timeout: float = 60.0) -> Any:
    """Poll ``check()`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check}")
        time.sleep(0.1)


def _path_frames(web: Serve, fields: dict[str, Any], size: tuple[int, int]) -> list[list[float]]:
    """First and last frames of /v1/image/path for ``fields``, checked against the
    renderer's own frame_rect as well."""
    r = web.post("/v1/image/path", json={**fields, "image_width": size[0],
                                         "image_height": size[1], "samples": 2})
    assert r.status_code == 200, r.text
    samples = r.json()["response"]["samples"]
    spec = RenderSpec.from_request(fields)
    out = spec.size_for(*size)
    geometry = canvas_geometry(*size, spec.fit, *out, max_zoom=max(spec.zoom_keyframes))
    for sample in samples:
        assert sample["rect"] == list(frame_rect(sample["frame"], spec, geometry.width,
                                                 geometry.height, out))
    return [[s["frame"], *s["rect"]] for s in (samples[0], samples[-1])]


def _job_request(web: Serve, redis_server: EmbeddedRedis, job_id: str) -> dict[str, Any]:
    """The request fields a job was stored with."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        return dict(json.loads(client.hget(Keys().job(job_id), "request")))
    finally:
        client.close()


def _run_curl(command: str, cwd: Path, key: str, *, replay: bool = False) -> dict[str, Any]:
    """Run the page's curl command in a shell, as a reader would (or, without curl or
    with ``replay``, do what it says with requests)."""
    env = {**os.environ, "ZOOMREEL_API_KEY": key}
    if shutil.which("curl") and not replay:
        done = subprocess.run(["bash", "-c", command + " --silent --show-error"], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=60, check=True)
        return dict(json.loads(done.stdout))
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["curl", "-X", "POST"]
    url, headers, files, data, body = words[3], {}, {}, {}, None
    options = iter(words[4:])
    for option in options:
        value = next(options)
        if option == "-H":
            name, text = value.split(": ", 1)
            headers[name] = text.replace("$ZOOMREEL_API_KEY", key)
        elif option in ("-F", "--form-string"):
            name, text = value.split("=", 1)
            if option == "-F" and text.startswith("@"):
                files[name] = open(cwd / text[1:].strip('"'), "rb")
            else:
                data[name] = text
        else:
            assert option == "-d", option
            body = value
    r = requests.post(url, headers=headers, files=files or None, data=body or data, timeout=60)
    return dict(r.json())


# -- routes ---------------------------------------------------------------------------

@pytest.mark.system
def test_page_and_its_files_need_no_key(web: Serve) -> None:
    page = requests.get(web.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'name="image"' in page.text and 'name="api_key"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script type="module" src="/web/app.js">' in page.text
    folder = Path(__file__).parent.parent / "frontends" / "web"
    files = sorted(p.name for p in folder.iterdir() if p.suffix in (".js", ".css"))
    assert {"app.js", "fields.js", "looks.js", "style.css"} <= set(files)
    for name in files:
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        r = requests.get(f"{web.url}/web/{name}", timeout=30)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind)
        assert "http://" not in r.text and "https://" not in r.text.replace(
            "https://example.com", "")  # nothing from another origin
    assert requests.get(web.url + "/web/nothing.js", timeout=30).status_code == 404
    assert requests.get(web.url + "/web/..%2fserve.py", timeout=30).status_code == 404


@pytest.mark.system
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


@pytest.mark.system
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


@pytest.mark.unit
def test_canvas_geometry_matches_the_built_canvas_when_reduced() -> None:
    rgb = np.zeros((900, 300, 3), np.uint8)  # a tall image on a wide output: reduced
    geometry = canvas_geometry(300, 900, "contain", 256, 144, max_zoom=1.0)
    canvas = fit_canvas(rgb, "contain", 256, 144, background=(255, 0, 0))
    assert (canvas.shape[1], canvas.shape[0]) == (geometry.width, geometry.height)
    assert geometry.width == 256
    assert (canvas[:, :geometry.image_x] == (255, 0, 0)).all()
    assert not canvas[:, geometry.image_x:geometry.image_x + geometry.image_width].any()


# -- in the browser -------------------------------------------------------------------

def _start(page: Any, web: Serve, photo: Path) -> None:
    _enter_key(page, web.key)
    page.set_input_files("input[name=image]", str(photo))
    _wait(page, "document.getElementById('stage').dataset.ready")


def _done(page: Any, job_id: str) -> bool:
    state = page.get_attribute(f"#recent li[data-job-id='{job_id}'] .state", "data-state")
    assert state != "error", page.text_content("#recent")
    return state == "done"


@pytest.mark.system
@pytest.mark.browser
def test_first_time_flow_a_look_and_the_button(page: Any, web: Serve, photo: Path,
                                               redis_server: EmbeddedRedis,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """A visitor picks a look, a length and a shape, and makes the video: More options
    stays folded, and the job is the request the page showed. With ZOOMREEL_SCREENSHOTS
    set, the page is photographed there at 1280x800 and 390x844 (docs/page.png and
    docs/page-phone.png, of ZOOMREEL_SCREENSHOT_PHOTO if given)."""
    _start(page, web, Path(os.environ.get("ZOOMREEL_SCREENSHOT_PHOTO") or photo))
    assert page.is_checked("#look-zoom-in")  # a look is chosen from the start
    assert not page.is_visible("[data-field=frame_rate]")  # the expert fields are folded
    # Every request field is on the page, from the schema alone.
    shown = page.eval_on_selector_all("[data-field]", "es => es.map(e => e.dataset.field)")
    assert sorted(shown) == sorted(REQUEST_FIELDS)
    page.check("#look-pan-right")
    page.fill("[data-field=length] input", "1")
    page.check("[data-field=orientation] input[value=square]")
    fields = _request(page)
    assert fields == {"length": 1, "orientation": "square", "start_zoom": 1.4, "end_zoom": 1.4,
                      "start_focus": [0, 0.5], "end_focus": [1, 0.5]}
    page.click("button[type=submit]")
    _wait(page, "document.querySelector('#recent li[data-job-id]')")
    job_id = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    _until(lambda: _done(page, job_id), timeout=240)
    _wait(page, "document.querySelector('video').readyState >= 1", timeout=60)
    video = page.eval_on_selector("video", "v => ({w: v.videoWidth, h: v.videoHeight, "
                                           "d: v.duration, src: v.src})")
    assert (video["w"], video["h"]) == (1080, 1080)
    assert video["d"] == pytest.approx(1.0, abs=0.07)
    assert "signature=" in video["src"]  # a <video> cannot send the key: a signed link
    assert page.get_attribute("#download", "href") == video["src"]
    assert page.eval_on_selector("progress", "p => p.value") == 100
    assert not page.eval_on_selector("#more", "d => d.open")
    assert _job_request(web, redis_server, job_id) == RenderSpec.from_request(
        fields).request_fields()
    assert page.console_errors == []
    shots = Path(os.environ.get("ZOOMREEL_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.eval_on_selector("video", "v => { v.currentTime = 0.5; }")  # a frame, not a spinner
    _wait(page, "document.querySelector('video').readyState >= 3"
                " && !document.querySelector('video').seeking")
    page.wait_for_timeout(2500)  # the player's loading sign fades out
    page.screenshot(path=str(shots / "page.png"))
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(shots / "page-phone.png"), full_page=True)
    print(f"screenshots: {shots / 'page.png'}, {shots / 'page-phone.png'}")


@pytest.mark.system
@pytest.mark.browser
def test_each_look_draws_the_renderers_frames(page: Any, web: Serve, photo: Path) -> None:
    """Each look, chosen or only hovered, draws the first and last frames of the path
    /v1/image/path gives for the fields it sets (which are the renderer's frame_rect)."""
    _start(page, web, photo)
    looks = page.eval_on_selector_all("input[name=look]", "es => es.map(e => e.value)")
    assert len(looks) >= 5
    frames = {}
    for look in looks:
        page.check(f"#look-{look}")
        fields = _request(page)
        expected = _path_frames(web, fields, (640, 360))
        _until(lambda expected=expected: _drawn(page) == expected)
        assert page.get_attribute("#stage", "data-look") == look
        frames[look] = expected
        # ... drawn where it says, to within a pixel of the screen.
        stage = page.eval_on_selector("#stage", "e => e.getBoundingClientRect().toJSON()")
        scale = stage["width"] / float(page.get_attribute("#stage", "data-canvas-width"))
        for element, (_, x0, y0, x1, y1) in zip(("#rect-start", "#rect-end"), expected,
                                                strict=True):
            box = page.eval_on_selector(element, "e => e.getBoundingClientRect().toJSON()")
            assert box["x"] - stage["x"] == pytest.approx(x0 * scale, abs=1.0)
            assert box["y"] - stage["y"] == pytest.approx(y0 * scale, abs=1.0)
            assert box["width"] == pytest.approx((x1 - x0) * scale, abs=1.0)
            assert box["height"] == pytest.approx((y1 - y0) * scale, abs=1.0)
    assert len({json.dumps(f) for f in frames.values()}) == len(looks)  # all different
    # Hovering another look previews it; leaving it goes back to the chosen one.
    chosen = looks[-1]
    page.hover(f"label[data-look={looks[2]}]")
    _until(lambda: _drawn(page) == frames[looks[2]])
    assert page.get_attribute("#stage", "data-look") == looks[2]
    assert page.is_checked(f"#look-{chosen}")
    page.mouse.move(0, 0)
    _until(lambda: _drawn(page) == frames[chosen])
    # "Zoom into a point you click": a click on the image chooses the point.
    image = page.eval_on_selector("#picture", "e => e.getBoundingClientRect().toJSON()")
    page.mouse.click(image["x"] + image["width"] * 0.25, image["y"] + image["height"] * 0.75)
    fx, fy = _request(page)["focus"]
    assert (fx, fy) == (pytest.approx(0.25, abs=0.01), pytest.approx(0.75, abs=0.01))
    assert page.is_checked(f"#look-{chosen}")
    expected = _path_frames(web, _request(page), (640, 360))
    _until(lambda: _drawn(page) == expected)
    # ... and so do the arrow keys, for keyboard users.
    page.focus("#stage")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowUp")
    fx2, fy2 = _request(page)["focus"]
    assert (fx2, fy2) == (pytest.approx(fx + 0.02, abs=0.002), pytest.approx(fy - 0.1, abs=0.002))
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_expert_fields_draw_the_renderers_frames(page: Any, web: Serve, photo: Path) -> None:
    _start(page, web, photo)
    _set(page, OPTIONS)
    assert _request(page) == OPTIONS
    expected = _path_frames(web, OPTIONS, (640, 360))
    _until(lambda: _drawn(page) == expected)
    spec = RenderSpec.from_request(OPTIONS)
    geometry = canvas_geometry(640, 360, spec.fit, *spec.size_for(640, 360),
                               max_zoom=max(spec.zoom_keyframes))
    assert page.get_attribute("#stage", "data-canvas-height") == str(geometry.height)
    assert page.eval_on_selector_all("input[name=look]:checked", "es => es.length") == 0
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_an_alternative_is_one_choice(page: Any, web: Serve, photo: Path) -> None:
    """Zoom by speed, or from ... to ...: the form not chosen is hidden and never sent,
    whatever its fields still hold."""
    _start(page, web, photo)
    _set(page, {"zoom_speed": 10, "direction": "out"})
    assert _request(page) == {"zoom_speed": 10, "direction": "out"}
    assert not page.is_visible("[data-field=start_zoom]")
    _set(page, {"start_zoom": 2, "end_zoom": 3})
    assert _request(page) == {"start_zoom": 2, "end_zoom": 3}
    assert not page.is_visible("[data-field=zoom_speed]")
    assert page.is_disabled("[data-field=zoom_speed] input")
    page.check('[data-switch="Zoom"] input[value="Zoom by speed"]')
    assert _request(page) == {"zoom_speed": 10, "direction": "out"}
    # The size: by the shape on the first screen, or exact under More options.
    _set(page, {"width": 640, "height": 480})
    assert _request(page) == {"zoom_speed": 10, "direction": "out", "width": 640,
                              "height": 480}
    assert page.is_disabled("[data-field=orientation] input[value=portrait]")
    assert "Not used" in page.text_content("[data-field=orientation]")
    page.check('[data-switch="Size"] input[value="By shape"]')
    page.check("[data-field=orientation] input[value=portrait]")
    assert _request(page) == {"zoom_speed": 10, "direction": "out", "orientation": "portrait"}
    _until(lambda: page.get_attribute("#stage", "data-canvas-height") == "360"
           and page.text_content("#path-status").startswith("The video: 1080×1920"))
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_an_invalid_value_is_focused_and_in_view(page: Any, web: Serve, photo: Path,
                                                 viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    _start(page, web, photo)
    assert page.console_errors == []
    _set(page, {"frame_rate": 100})
    page.click("#more summary")  # folded again: the error opens it
    page.evaluate("window.scrollTo(0, 0)")
    page.click("button[type=submit]")
    _wait(page, "document.activeElement && document.activeElement.name === 'frame_rate'")
    assert page.text_content("#form-error") == "Frames per second: must be an integer from 15 to 60"
    assert page.text_content("#e-frame_rate") == "must be an integer from 15 to 60"
    assert page.get_attribute("[name=frame_rate]", "aria-invalid") == "true"
    for selector in ("[name=frame_rate]", "#e-frame_rate", "#form-error"):
        assert _visible(page, selector), selector
    assert page.eval_on_selector_all("#recent li[data-job-id]", "es => es.length") == 0
    # Put right, the error goes.
    page.fill("[name=frame_rate]", "24")
    _wait(page, "document.getElementById('form-error').textContent === ''")
    assert page.get_attribute("[name=frame_rate]", "aria-invalid") is None
    # The browser logs the API's 400 answers (for the value, as it was typed): those only.
    assert page.console_errors and all("status of 400" in e for e in page.console_errors)


def _visible(page: Any, selector: str) -> bool:
    """The element is on screen and not covered: what is at its centre is it."""
    return bool(page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        if (r.width === 0 || y < 0 || y > innerHeight || x < 0 || x > innerWidth) return false;
        const hit = document.elementFromPoint(x, y);
        return hit === e || e.contains(hit) || Boolean(hit && hit.closest('label') &&
                                                       hit.closest('label').control === e);
    }"""))


# Every control and its text: none cut off (scrollWidth > clientWidth), and none under the
# button, whatever the scroll position of the page and of the options.
_LAYOUT = """() => {
    const clipped = [];
    for (const e of document.querySelectorAll(
            'select, label, legend, summary, button, .segment span, .look')) {
        if (e.checkVisibility() && !e.closest('.visually-hidden')
                && e.scrollWidth > e.clientWidth + 0.5) {
            clipped.push((e.id || e.textContent).trim().slice(0, 40));
        }
    }
    // A <select> reports no overflow: its options' text is measured against its room.
    const ctx = document.createElement('canvas').getContext('2d');
    for (const e of document.querySelectorAll('select')) {
        if (!e.checkVisibility()) continue;
        const style = getComputedStyle(e);
        ctx.font = style.font;
        const room = e.clientWidth - parseFloat(style.paddingLeft)
                     - parseFloat(style.paddingRight) - 20;  // the arrow
        for (const option of e.options) {
            if (ctx.measureText(option.text).width > room) clipped.push(option.text);
        }
    }
    const covered = [];
    const actions = document.querySelector('.actions');
    const scroller = document.querySelector('.options-scroll');
    const controls = [...document.querySelectorAll('input, select, .segment span, summary')]
        .filter((e) => e.checkVisibility());  // shown (folded ones are not)
    // Where an element can be seen at all: inside every ancestor that clips its overflow.
    const inside = (r, x, y) => x >= r.left && x <= r.right && y >= r.top && y <= r.bottom;
    const shown = (e, x, y) => {
        for (let a = e.parentElement; a; a = a.parentElement) {
            if (getComputedStyle(a).overflow !== 'visible'
                    && !inside(a.getBoundingClientRect(), x, y)) return false;
        }
        return x >= 0 && y >= 0 && x <= innerWidth && y <= innerHeight;
    };
    const check = () => {
        const bar = actions.getBoundingClientRect();
        for (const e of controls) {
            const r = e.getBoundingClientRect();
            if (r.width === 0) continue;
            for (const [x, y] of [[r.left + 2, r.top + 2], [r.right - 2, r.bottom - 2],
                                  [(r.left + r.right) / 2, (r.top + r.bottom) / 2]]) {
                if (!inside(bar, x, y) || !shown(e, x, y)) continue;
                const hit = document.elementFromPoint(x, y);
                if (hit && actions.contains(hit)) covered.push(e.name || e.textContent);
            }
        }
    };
    const page = document.documentElement.scrollHeight;
    for (let y = 0; y <= page; y += 120) {
        window.scrollTo(0, y);
        for (let s = 0; s <= scroller.scrollHeight; s += 120) {
            scroller.scrollTop = s;
            check();
        }
    }
    window.scrollTo(0, 0);
    scroller.scrollTop = 0;
    return {clipped, covered: [...new Set(covered)]};
}"""


MY_ID = 'it\'s mine; "quoted" & <odd>'


@pytest.mark.system
@pytest.mark.browser
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_no_clipped_text_and_nothing_under_the_button(page: Any, web: Serve, photo: Path,
                                                      viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    _start(page, web, photo)
    first = page.evaluate(_LAYOUT)
    assert first == {"clipped": [], "covered": []}
    page.click("#more summary")
    page.click("#request summary")
    _set(page, {"start_zoom": 1.5, "start_focus": [0.2, 0.2], "width": 640, "height": 360})
    assert page.evaluate(_LAYOUT) == {"clipped": [], "covered": []}
    # The first screen holds the looks, the length, the shape and the button.
    page.click("#more summary")
    page.click("#request summary")
    page.evaluate("window.scrollTo(0, 0)")
    if viewport == DESKTOP:
        for selector in ("#stage", "label[data-look=zoom-in]", "[data-field=length] input",
                         "[data-field=orientation] input[value=square]", "#submit"):
            assert _visible(page, selector), selector
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_show_the_request_is_a_curl_command_that_makes_the_same_job(
        page: Any, web: Serve, photo: Path, redis_server: EmbeddedRedis) -> None:
    _start(page, web, photo)
    page.check("#look-pan-left")
    _set(page, {"length": 1, "width": 256, "height": 144, "curve": "constant",
                "resampler": "catmull-rom", "id": MY_ID})
    page.click("#request summary")
    fields = _request(page)
    assert fields["id"] == MY_ID and fields["resampler"] == "catmull-rom"
    command = page.text_content("#request-curl")
    assert command.startswith("curl -X POST") and web.key not in command
    assert '"X-API-Key: $ZOOMREEL_API_KEY"' in command
    answer = _run_curl(command, photo.parent, web.key)
    assert answer["code"] == 202, answer
    by_curl = _job_request(web, redis_server, answer["job_id"])
    render = {k: v for k, v in fields.items() if k != "id"}
    assert by_curl == RenderSpec.from_request(render).request_fields()
    assert web.status(answer["job_id"])["id"] == fields["id"]
    # The replay a machine without curl makes reads the command the same way.
    replayed = _run_curl(command, photo.parent, web.key, replay=True)
    assert _job_request(web, redis_server, replayed["job_id"]) == by_curl
    # ... the same job the button makes.
    page.click("button[type=submit]")
    _wait(page, "document.querySelector('#recent li[data-job-id]')")
    by_page = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    assert _job_request(web, redis_server, by_page) == by_curl
    for job_id in (answer["job_id"], replayed["job_id"], by_page):
        assert web.wait(job_id, timeout=240)["response"]["job_status"] == "done"
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_two_jobs_back_to_back_show_the_second_ones_video(page: Any, web: Serve,
                                                          photo: Path) -> None:
    """The first job's status request is still on its way when the second job starts;
    its answer, let through once the second video shows, must not replace it."""
    from playwright.sync_api import Error as PlaywrightError

    held: list[Any] = []
    hold: list[str] = []

    def status(route: Any) -> None:
        if hold and (route.request.post_data_json or {}).get("job_id") == hold[0]:
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/toolkit/job/status", status)
    ended: list[Any] = []  # requests that got their answer, or that the page gave up
    page.on("requestfinished", lambda request: ended.append(request))
    page.on("requestfailed", lambda request: ended.append(request))
    _start(page, web, photo)
    # 600 frames of 720p: the first job still renders, and the page still polls it, for
    # seconds after the page lists it (30 frames of 144p were done before, on a quiet
    # machine, and no status request of it came to hold).
    _set(page, {"length": 40, "frame_rate": 15, "width": 1280, "height": 720})
    page.click("button[type=submit]")
    _wait(page, "document.querySelectorAll('#recent li[data-job-id]').length === 1")
    first = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    hold.append(first)
    _until(lambda: page.wait_for_timeout(50) or held)  # a status request of the first job
    page.fill("[name=length]", "1")
    page.click("button[type=submit]")
    _wait(page, "document.querySelectorAll('#recent li[data-job-id]').length === 2")
    second = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    assert second != first
    _until(lambda: page.get_attribute("#result", "data-job-id") == second, timeout=240)
    assert web.wait(first, timeout=240)["response"]["job_status"] == "done"
    hold.clear()
    late = []
    for route in held:  # the first job's answers come at last: "done", with its video
        try:
            route.continue_()
        except PlaywrightError:  # the page aborted it, following the second job: no answer
            continue
        late.append(route.request)
    _until(lambda: _done(page, first) and _done(page, second), timeout=60)
    # Every late answer has reached the page (or the page dropped the request), and the
    # page has run what it does on an answer: a late one would be shown by now.
    _until(lambda: all(request in ended for request in late), timeout=60)
    page.evaluate("() => new Promise(done => setTimeout(() => requestAnimationFrame(done)))")
    assert page.get_attribute("#result", "data-job-id") == second
    _wait(page, "document.querySelector('video').readyState >= 1", timeout=60)
    assert page.eval_on_selector("video", "v => v.duration") == pytest.approx(1.0, abs=0.07)
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_pasted_image_url_is_shown_and_submitted_as_json(page: Any, web: Serve,
                                                         image_server: Any,
                                                         redis_server: EmbeddedRedis) -> None:
    url = image_server.add("/web/pasted.jpg", photo_bytes(480, 320))
    _enter_key(page, web.key)
    page.fill("input[name=image_url]", url)
    page.dispatch_event("input[name=image_url]", "change")
    _wait(page, "document.getElementById('rect-end').dataset.frame === '149'")  # 5 s, 30 fps
    assert page.evaluate("() => document.getElementById('picture').naturalWidth") == 480
    _set(page, {"length": 1, "frame_rate": 15, "width": 128, "height": 128})
    page.click("#request summary")
    assert json.loads(page.text_content("#request-json"))["image_url"] == url
    command = page.text_content("#request-curl")
    assert "-H 'Content-Type: application/json'" in command
    by_curl = _run_curl(command, Path.cwd(), web.key)["job_id"]
    page.click("button[type=submit]")
    _wait(page, "document.querySelector('#recent li[data-job-id]') !== null")
    job_id = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    # The curl command's job is the page's, image_url included.
    assert _job_request(web, redis_server, by_curl) == _job_request(web, redis_server, job_id)
    assert _job_request(web, redis_server, job_id)["image_url"] == url
    assert web.wait(by_curl, timeout=240)["response"]["job_status"] == "done"
    answer = web.wait(job_id, timeout=240)  # the job the page queued, by URL
    assert answer["response"]["job_status"] == "done", answer
    assert answer["response"]["response"]["width"] == 128
    stored = page.evaluate("() => JSON.parse(localStorage.getItem('zoomreel.jobs'))")
    assert stored[0]["id"] == job_id and stored[0]["name"] == "pasted.jpg"
    assert page.console_errors == []


def _person_photo(tmp_path: Path) -> Path:
    """scikit-image's astronaut on a 960x540 field, right of centre: a face to find (the
    test is skipped without scikit-image or OpenCV)."""
    data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    from PIL import Image

    field = Image.new("RGB", (960, 540), (90, 110, 90))
    field.paste(Image.fromarray(data.astronaut()).resize((520, 520)), (400, 10))
    person = tmp_path / "person.jpg"
    field.save(person, quality=92)
    return person


@pytest.mark.browser
@pytest.mark.system
def test_focus_auto_shows_the_subject_before_the_job(page: Any, web: Serve,
                                                     tmp_path: Path) -> None:
    """Focus "auto" on a photo of a person: the page asks POST /v1/image/subject and draws
    the point and the faces box where the server found them, and the frames close in on
    that point, before any job is sent. ZOOMREEL_SCREENSHOTS keeps page-auto.png."""
    person = _person_photo(tmp_path)
    _start(page, web, person)
    assert page.is_hidden("#subject-point")  # not asked for without "auto"
    _set(page, {"focus": "auto"})
    _wait(page, "!document.getElementById('subject-point').hidden")
    point = page.eval_on_selector("#subject-point", "e => ({...e.dataset})")
    r = web.post("/v1/image/subject", files={"image": ("person.jpg", person.read_bytes(),
                                                        "image/jpeg")})
    assert r.status_code == 200, r.text
    subject = r.json()["response"]
    assert point["by"] == subject["by"] == "faces"
    assert (float(point["x"]), float(point["y"])) == (subject["x"], subject["y"])
    assert 0.55 < subject["x"] < 0.85 and subject["y"] < 0.4  # her face, right of centre
    # drawn where the answer says, over the image (the stage is the image: fit cover)
    stage = page.eval_on_selector("#stage", "e => e.getBoundingClientRect().toJSON()")
    dot = page.eval_on_selector("#subject-point", "e => e.getBoundingClientRect().toJSON()")
    assert dot["x"] + dot["width"] / 2 == pytest.approx(stage["x"] + subject["x"] * stage["width"],
                                                        abs=2)
    assert dot["y"] + dot["height"] / 2 == pytest.approx(
        stage["y"] + subject["y"] * stage["height"], abs=2)
    faces = page.eval_on_selector("#subject-faces", "e => e.getBoundingClientRect().toJSON()")
    x0, y0, x1, y1 = subject["faces"]
    assert page.is_visible("#subject-faces")
    assert faces["x"] == pytest.approx(stage["x"] + x0 * stage["width"], abs=2)
    assert faces["width"] == pytest.approx((x1 - x0) * stage["width"], abs=3)
    assert "faces" in page.text_content("#subject-status")
    # the last frame closes in on that point (the zoom-in look's end)
    _wait(page, "document.getElementById('rect-end').dataset.x0 !== undefined")
    _, ex0, ey0, ex1, ey1 = _drawn(page)[1]
    assert (ex0 + ex1) / 2 / 960 == pytest.approx(subject["x"], abs=0.12)
    assert not page.query_selector("#recent li[data-job-id]")  # nothing was sent
    assert page.console_errors == []
    shots = Path(os.environ.get("ZOOMREEL_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(shots / "page-auto.png"))
    print(f"screenshot: {shots / 'page-auto.png'}")


@pytest.mark.browser
@pytest.mark.system
def test_focus_auto_preview_stops_the_zoom_where_the_faces_fit(page: Any, web: Serve,
                                                               tmp_path: Path) -> None:
    """The frames drawn for focus "auto" are the ones the server renders: the zoom capped
    where the faces box fits the frame (RenderSpec.with_subject), not the zoom asked for,
    on the canvas of fit contain too."""
    from zoomreel.subject import FocusBy, Subject

    person = _person_photo(tmp_path)
    _start(page, web, person)
    r = web.post("/v1/image/subject", files={"image": ("person.jpg", person.read_bytes(),
                                                        "image/jpeg")})
    answer = r.json()["response"]
    assert answer["by"] == "faces"
    subject = Subject(answer["x"], answer["y"], FocusBy.FACES, tuple(answer["faces"]))
    for options in ({"focus": "auto", "start_zoom": 1, "end_zoom": 6},
                    {"focus": "auto", "start_zoom": 1, "end_zoom": 6, "fit": "contain",
                     "orientation": "portrait"}):
        _set(page, options)
        spec = RenderSpec.from_request(options)
        out = spec.size_for(960, 540)
        g = canvas_geometry(960, 540, spec.fit, *out, max_zoom=max(spec.zoom_keyframes))
        place = (g.image_x / g.width, g.image_y / g.height,
                 (g.image_x + g.image_width) / g.width, (g.image_y + g.image_height) / g.height)
        rendered = spec.with_subject(subject, g.width, g.height, out, place)
        assert rendered.zoom_keyframes[1] < 6  # capped: the control
        last = rendered.total_frames - 1
        expected = frame_rect(last, rendered, g.width, g.height, out)
        _until(lambda last=last, expected=expected: _drawn(page)[1][0] == last and all(
            abs(a - b) < 0.5 for a, b in zip(_drawn(page)[1][1:], expected, strict=True)))
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_a_click_again_after_a_dropped_submit_makes_one_video(page: Any, web: Serve,
                                                              photo: Path) -> None:
    """Each video asked for has its Idempotency-Key: a click after the server could not
    be reached, or a double click, sends the same key; another request, a new one."""
    keys: list[str] = []

    def convert(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.abort()  # the first submit never reaches the server
        else:
            route.continue_()

    page.route("**/v1/image/convert/video", convert)
    _start(page, web, photo)
    _set(page, {"length": 1, "width": 256, "height": 144})
    page.click("button[type=submit]")
    _until(lambda: len(keys) == 1 and page.is_enabled("button[type=submit]"))
    page.click("button[type=submit]")  # again, the same request
    _wait(page, "document.querySelectorAll('#recent li[data-job-id]').length === 1")
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) >= 32, keys
    page.fill("[name=length]", "2")  # another request: another key
    page.dblclick("button[type=submit]")
    _wait(page, "document.querySelectorAll('#recent li[data-job-id]').length === 2")
    page.wait_for_timeout(500)
    assert keys[2] != keys[0] and set(keys[2:]) == {keys[2]}, keys
    ids = page.eval_on_selector_all("#recent li[data-job-id]",
                                    "es => es.map(e => e.dataset.jobId)")
    assert len(set(ids)) == 2
    assert page.console_errors == ["Failed to load resource: net::ERR_FAILED"]  # the abort


REEL_COLOURS = {"red.png": (220, 30, 30), "green.png": (30, 200, 40), "blue.png": (30, 40, 220)}


@pytest.fixture
def three_photos(tmp_path: Path) -> list[str]:
    from PIL import Image

    paths = []
    for name, colour in REEL_COLOURS.items():
        Image.new("RGB", (400, 300), colour).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def _strip(page: Any) -> list[str]:
    return page.eval_on_selector_all("#reel-strip li", "es => es.map(e => e.dataset.name)")


@pytest.mark.system
@pytest.mark.browser
def test_several_photos_make_a_reel_strip_to_reorder(page: Any, web: Serve,
                                                     three_photos: list[str]) -> None:
    """Three photos chosen at once are a reel: a strip in their order, arrows that move
    a photo, a transition (crossfade by default), a title and a track; the single image's
    stage steps aside. Down to one photo, the page is the single image's again."""
    _enter_key(page, web.key)
    page.set_input_files("#image", three_photos)
    _wait(page, "document.querySelectorAll('#reel-strip li').length === 3")
    assert _strip(page) == ["red.png", "green.png", "blue.png"]
    assert page.is_visible("#reel") and not page.is_visible("#stage")
    assert page.text_content("#submit") == "Make the reel"
    assert page.input_value("#reel-transition") == "crossfade"
    assert page.is_visible("#reel-title") and page.is_visible("#reel-audio")
    page.click("[aria-label='Move photo 1 later']")
    assert _strip(page) == ["green.png", "red.png", "blue.png"]
    page.click("[aria-label='Move photo 3 earlier']")
    assert _strip(page) == ["green.png", "blue.png", "red.png"]
    assert page.is_disabled("[aria-label='Move photo 1 earlier']")
    page.click("[aria-label='Remove photo 2']")
    assert _strip(page) == ["green.png", "red.png"]
    page.click("[aria-label='Remove photo 1']")
    _wait(page, "document.body.dataset.mode === 'image'")
    assert not page.is_visible("#reel")
    assert page.text_content("#submit") == "Make the video"
    assert page.console_errors == []


@pytest.mark.system
@pytest.mark.browser
def test_a_reel_of_three_photos_takes_three_clicks(page: Any, web: Serve,
                                                   three_photos: list[str],
                                                   tmp_path: Path) -> None:
    """Issue 31: choose three photos (1), "Make the reel" (2), download the video (3):
    POST /v1/video/reel (CONTRACT.md "Reels"), the slides in the strip's order, 3 s
    each, a crossfade between them."""
    import av

    _enter_key(page, web.key)
    page.set_input_files("#image", three_photos)  # 1: the file chooser's one choice
    _wait(page, "document.querySelectorAll('#reel-strip li').length === 3")
    page.click("#submit")  # 2
    _wait(page, "document.querySelector('#recent li[data-job-id]')")
    job_id = page.get_attribute("#recent li[data-job-id]", "data-job-id")
    _until(lambda: _done(page, job_id), timeout=300)
    with page.expect_download() as download:
        page.click("#download")  # 3
    path = tmp_path / "reel.mp4"
    download.value.save_as(path)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 270  # 3 slides x 3 s x 30 fps: transitions take, never add
    for i, colour in enumerate(REEL_COLOURS.values()):
        mean = frames[i * 90 + 45].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - colour).max() < 12, (i, mean)
    assert page.console_errors == []
