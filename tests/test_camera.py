"""The camera path: exact CONTRACT.md geometry, and its invariants (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import contract_rect

from zoomreel.camera import camera_path, cover_size, frame_rect
from zoomreel.spec import RenderSpec

pytestmark = pytest.mark.unit

sides = st.integers(min_value=64, max_value=4000).map(lambda v: v * 2)


def test_documented_example_numbers():
    spec = RenderSpec(length=10, frame_rate=30, zoom_speed=3, width=1920, height=1080)
    assert cover_size(4000, 3000, 1920, 1080) == (4000.0, 2250.0)
    x0, y0, x1, y1 = frame_rect(0, spec, 4000, 3000)
    assert (x0, y0, x1, y1) == (0.0, 375.0, 4000.0, 2625.0)
    # t = 1 s: z = 1.03, no rounding to whole pixels.
    x0, y0, x1, y1 = frame_rect(30, spec, 4000, 3000)
    assert math.isclose(x1 - x0, 4000 / 1.03, rel_tol=1e-12)
    assert math.isclose(y1 - y0, 2250 / 1.03, rel_tol=1e-12)
    assert math.isclose((x0 + x1) / 2, 2000.0) and math.isclose((y0 + y1) / 2, 1500.0)


@given(
    image_w=st.integers(1, 9000),
    image_h=st.integers(1, 9000),
    out_w=sides,
    out_h=sides,
    zoom_speed=st.floats(0, 100),
    frame_rate=st.integers(15, 60),
    n=st.integers(0, 2000),
)
def test_rectangle_is_centred_inside_with_output_aspect(
    image_w, image_h, out_w, out_h, zoom_speed, frame_rate, n
):
    out_w, out_h = min(out_w, 3840), min(out_h, 3840)
    if min(out_w, out_h) > 2160:  # the largest outputs are 3840x2160 and 2160x3840
        out_h = 2160 if out_h <= out_w else out_h
        out_w = 2160 if out_w < out_h else out_w
    spec = RenderSpec(
        length=100, frame_rate=frame_rate, zoom_speed=zoom_speed, width=out_w, height=out_h
    )
    x0, y0, x1, y1 = frame_rect(n, spec, image_w, image_h)
    eps = 1e-9 * max(image_w, image_h)
    # inside the image (cover: never padded)
    assert -eps <= x0 < x1 <= image_w + eps and -eps <= y0 < y1 <= image_h + eps
    # centred
    assert math.isclose(x0 + x1, image_w, abs_tol=eps)
    assert math.isclose(y0 + y1, image_h, abs_tol=eps)
    # the output's aspect ratio (never stretched)
    assert math.isclose((x1 - x0) * out_h, (y1 - y0) * out_w, rel_tol=1e-9)
    # frame 0 touches two opposite edges: the largest such rectangle
    x0, y0, x1, y1 = frame_rect(0, spec, image_w, image_h)
    assert math.isclose(x1 - x0, image_w) or math.isclose(y1 - y0, image_h)
    # the zoom: width shrinks as 1 / (1 + zoom_speed/100 * t)
    cw, _ = cover_size(image_w, image_h, out_w, out_h)
    z = 1 + zoom_speed / 100 * n / frame_rate
    xa, _, xb, _ = frame_rect(n, spec, image_w, image_h)
    assert math.isclose(xb - xa, cw / z, rel_tol=1e-9)


@given(length=st.floats(0.05, 30), frame_rate=st.integers(15, 60), zoom=st.floats(0, 100))
def test_path_has_round_length_times_rate_frames_and_never_zooms_out(length, frame_rate, zoom):
    frames = round(length * frame_rate)
    if frames < 1:
        return
    spec = RenderSpec(length=length, frame_rate=frame_rate, zoom_speed=zoom, width=320, height=240)
    rects = list(camera_path(spec, 1000, 700))
    assert len(rects) == frames == spec.total_frames
    widths = [r[2] - r[0] for r in rects]
    assert all(b <= a for a, b in zip(widths, widths[1:], strict=False))
    assert rects == [frame_rect(n, spec, 1000, 700) for n in range(frames)]


# -- the general path (start and end keyframes, easing, loop, curve, focus) -------------

PATHS = {
    "zoom out": dict(zoom_speed=20, direction="out"),
    "keyframes, constant speed": dict(start_zoom=1.5, end_zoom=4, curve="constant"),
    "pan with easing": dict(start_focus=(0.1, 0.2), end_focus=(0.9, 0.7), start_zoom=2,
                            end_zoom=2, easing="ease-in-out"),
    "ping-pong twice": dict(zoom_speed=30, loop="ping-pong", cycles=2, easing="ease-out"),
    "focus in a corner": dict(zoom_speed=50, focus=(1.0, 0.0), easing="ease-in"),
}


@pytest.mark.parametrize("kind", PATHS)
def test_each_kind_of_path_follows_the_contract(kind: str) -> None:
    spec = RenderSpec(length=2, frame_rate=15, width=320, height=180, **PATHS[kind])
    for n in range(spec.total_frames):
        got = frame_rect(n, spec, 1200, 800)
        want = contract_rect(n, spec, 1200, 800, (320, 180))
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(
            got, want, strict=True)), (n, got, want)


def test_keyframes_are_where_the_path_says() -> None:
    out = RenderSpec(length=10, frame_rate=30, zoom_speed=3, direction="out",
                     width=1920, height=1080)
    assert out.zoom_keyframes == (1.3, 1.0)
    x0, _, x1, _ = frame_rect(0, out, 4000, 3000)
    assert math.isclose(x1 - x0, 4000 / 1.3)  # starts zoomed in
    pong = RenderSpec(length=2, frame_rate=30, zoom_speed=50, loop="ping-pong", cycles=2,
                      width=1920, height=1080)
    # in then out, twice: full width again at u = 1/2, deepest at u = 1/4 and 3/4
    widths = [frame_rect(n, pong, 4000, 3000)[2] - frame_rect(n, pong, 4000, 3000)[0]
              for n in (0, 15, 30, 45)]
    assert math.isclose(widths[0], 4000) and math.isclose(widths[2], 4000)
    assert math.isclose(widths[1], 4000 / 2) and math.isclose(widths[3], 4000 / 2)
    corner = RenderSpec(start_zoom=2, end_zoom=2, focus=(0.0, 1.0), width=1920, height=1080)
    x0, y0, x1, y1 = frame_rect(0, corner, 4000, 2250)
    assert (x0, y1) == (0.0, 2250.0)  # clamped into the image's bottom-left corner


points = st.tuples(st.floats(0, 1), st.floats(0, 1))


@st.composite
def paths(draw: st.DrawFn) -> RenderSpec:
    options: dict[str, object] = {
        "length": draw(st.floats(0.5, 20)), "frame_rate": draw(st.integers(15, 60)),
        "curve": draw(st.sampled_from(["linear", "constant"])),
        "easing": draw(st.sampled_from(["linear", "ease-in", "ease-out", "ease-in-out"])),
        "orientation": draw(st.sampled_from(["landscape", "portrait", "square"])),
    }
    if draw(st.booleans()):
        options.update(start_zoom=draw(st.floats(1, 8)), end_zoom=draw(st.floats(1, 8)))
    else:
        options.update(zoom_speed=draw(st.floats(0, 100)),
                       direction=draw(st.sampled_from(["in", "out"])))
    if draw(st.booleans()):
        options.update(start_focus=draw(points), end_focus=draw(points))
    else:
        options["focus"] = draw(points)
    if draw(st.booleans()):
        options.update(loop="ping-pong", cycles=draw(st.integers(1, 5)))
    return RenderSpec(**options)  # type: ignore[arg-type]


@given(spec=paths(), image_w=st.integers(16, 8000), image_h=st.integers(16, 8000))
def test_every_rectangle_is_inside_and_the_motion_is_continuous(
    spec: RenderSpec, image_w: int, image_h: int
) -> None:
    out = spec.size_for(image_w, image_h)
    cw, ch = cover_size(image_w, image_h, *out)
    z0, z1 = spec.zoom_keyframes
    (fx0, fy0), (fx1, fy1) = spec.focus_keyframes
    # the most the path can move per frame: progress at most 2 (easing) x 2k (ping-pong)
    # per unit of u; the zoom's slope in p; a clamped centre moves at most as far as the
    # unclamped one plus half the size change
    dp = 2 * (2 * (spec.cycles or 1) if spec.loop == "ping-pong" else 1) / spec.total_frames
    dp *= spec.total_frames / (spec.length * spec.frame_rate)
    dz = dp * (abs(z1 - z0) if spec.curve == "linear"
               else max(z0, z1) * abs(math.log(z1 / z0)))
    eps = 1e-9 * max(image_w, image_h)
    previous = None
    for n in range(spec.total_frames):
        x0, y0, x1, y1 = frame_rect(n, spec, image_w, image_h)
        assert -eps <= x0 < x1 <= image_w + eps and -eps <= y0 < y1 <= image_h + eps
        assert math.isclose((x1 - x0) * out[1], (y1 - y0) * out[0], rel_tol=1e-9)
        if previous is not None:
            px0, py0, px1, py1 = previous
            dw, dh = abs((x1 - x0) - (px1 - px0)), abs((y1 - y0) - (py1 - py0))
            assert dw <= cw * dz + eps and dh <= ch * dz + eps
            assert abs((x0 + x1) - (px0 + px1)) / 2 <= abs(fx1 - fx0) * image_w * dp + dw / 2 + eps
            assert abs((y0 + y1) - (py0 + py1)) / 2 <= abs(fy1 - fy0) * image_h * dp + dh / 2 + eps
        previous = (x0, y0, x1, y1)


@pytest.mark.parametrize("image, orientation, size", [
    ((4000, 3000), "auto", (1920, 1080)),   # 4:3 is nearer 16:9 than 1:1 on a log scale
    ((3000, 4000), "auto", (1080, 1920)),
    ((1000, 1100), "auto", (1080, 1080)),
    ((4000, 3000), "portrait", (1080, 1920)),
    ((4000, 3000), "square", (1080, 1080)),
    ((4000, 3000), "landscape", (1920, 1080)),
])
def test_orientation_picks_the_output_size(image, orientation, size) -> None:
    assert RenderSpec(orientation=orientation).size_for(*image) == size
