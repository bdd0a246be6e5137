"""Words over a reel: what the font cannot draw is refused, where text may go, and the
overlay blended into the planes (against NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoomreel import ReelSpec
from zoomreel.compose import overlay
from zoomreel.errors import InputError, SpecError
from zoomreel.text import check_drawable, layout, safe_area

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["\U0001f600", "\u4e2d\u6587", "caf\u00e9", "\u0394", "a\u200bb"])
def test_text_the_font_cannot_draw_is_refused(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_drawable("slides[1].caption", text)
    assert str(caught.value).startswith("slides[1].caption: has ")
    assert isinstance(caught.value, InputError)  # the REST layer answers 400


@pytest.mark.parametrize("text", ["a\x00", "line\nbreak", "tab\t", "del\x7f", "c1\x85"])
def test_control_characters_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="^title: must be text"):
        ReelSpec(title=text)
    with pytest.raises(SpecError, match="control character"):
        check_drawable("title", text)


def test_what_the_font_draws_passes() -> None:
    check_drawable("title", "Hello, World! 0123456789 (c) \u00a9 \u201cquoted\u201d \u2026")
    assert ReelSpec(title="Summer 2026 - the lake").title == "Summer 2026 - the lake"


def test_portrait_text_stays_out_of_the_platforms_buttons() -> None:
    left, top, right, bottom = safe_area(1080, 1920)
    assert (left, top) == (64, 268) and right <= 1080 * 0.88 and bottom <= 1920 * 0.80
    long = "A caption long enough to wrap over several lines of the frame " * 3
    for where in ("top", "bottom"):
        o = layout(long.strip(), 1080, 1920, where=where, scale=1.5)
        h, w = o.alpha.shape
        assert left <= o.left and o.left + w <= right
        assert top <= o.top and o.top + h <= bottom
        assert o.top % 2 == 0 and o.left % 2 == 0 and h % 2 == 0 and w % 2 == 0


def test_landscape_text_keeps_a_margin() -> None:
    o = layout("Caption", 1920, 1080, where="bottom")
    h, w = o.alpha.shape
    assert o.top + h <= 1080 - 54 and o.left >= 96 and o.left + w <= 1920 - 96


@settings(max_examples=20, deadline=None)
@given(text=st.text(st.sampled_from("abc XYZ 0123,.!"), min_size=1, max_size=80),
       width=st.sampled_from([256, 640, 1080, 1920]))
def test_wrapped_text_fits_the_safe_area(text: str, width: int) -> None:
    height = width * 16 // 9 if width <= 1080 else 1080
    left, top, right, bottom = safe_area(width, height)
    o = layout(text, width, height, where="bottom")
    assert o.left >= left and o.left + o.alpha.shape[1] <= right
    assert o.top >= top and o.top + o.alpha.shape[0] <= bottom


def test_the_overlay_is_white_ink_on_a_translucent_backdrop() -> None:
    o = layout("HI", 640, 360, where="top")
    assert o.alpha.max() == pytest.approx(1.0)  # the ink is opaque
    corner = o.alpha[o.alpha.shape[0] // 2, 1]  # the backdrop's edge, no ink
    assert 0.5 <= corner <= 0.6
    assert np.allclose(o.u, 128 * o.chroma_alpha) and np.allclose(o.v, o.u)  # neutral grey


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), opacity=st.floats(0, 1))
def test_the_overlay_kernel_is_the_premultiplied_blend(seed: int, opacity: float) -> None:
    rng = np.random.default_rng(seed)
    plane = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    alpha = rng.random((10, 20)).astype(np.float32)
    colour = (alpha * rng.integers(16, 236, (10, 20))).astype(np.float32)
    out = plane.copy()
    overlay(out, 6, 8, colour, alpha, opacity)
    region = plane[6:16, 8:28].astype(np.float64)
    exact = region * (1 - opacity * alpha) + opacity * colour
    assert np.abs(out[6:16, 8:28] - exact).max() <= 0.5 + 1e-3
    outside = np.ones_like(plane, bool)
    outside[6:16, 8:28] = False
    assert np.array_equal(out[outside], plane[outside])
