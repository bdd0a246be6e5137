"""The camera path: exact CONTRACT.md geometry, and its invariants (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from zoomreel.camera import camera_path, cover_size, frame_rect
from zoomreel.spec import RenderSpec

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
