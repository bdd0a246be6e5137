"""RenderSpec validation: every bad value names its field and the rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zoomreel.errors import SpecError
from zoomreel.spec import RenderSpec


def test_defaults_follow_the_documented_service():
    spec = RenderSpec()
    assert (spec.length, spec.frame_rate, spec.zoom_speed) == (5.0, 30, 3.0)
    assert (spec.width, spec.height) == (1920, 1080)
    assert spec.total_frames == 150


@pytest.mark.parametrize(
    "field, value, rule",
    [
        ("length", 0, "greater than 0"),
        ("length", -1, "greater than 0"),
        ("length", math.inf, "greater than 0"),
        ("length", math.nan, "greater than 0"),
        ("length", "5", "greater than 0"),
        ("length", 0.01, "too short"),
        ("frame_rate", 14, "15 to 60"),
        ("frame_rate", 61, "15 to 60"),
        ("frame_rate", 30.5, "integer"),
        ("frame_rate", True, "integer"),
        ("zoom_speed", -0.1, "0 to 100"),
        ("zoom_speed", 100.5, "0 to 100"),
        ("width", 1921, "even"),
        ("width", 126, "128 to 3840"),
        ("height", 3842, "128 to 3840"),
        ("crf", 52, "0 to 51"),
        ("preset", "warp", "one of"),
        ("background", (0, 0, 256), "three integers"),
        ("background", (0, 0), "three integers"),
        ("max_pixels", 0, "positive"),
        ("x264_params", "cabac=1;rm -rf /", "key=value"),
        ("x264_params", "cabac", "key=value"),
        ("x264_params", 1, "key=value"),
    ],
)
def test_bad_values_name_the_field_and_rule(field, value, rule):
    with pytest.raises(SpecError) as info:
        RenderSpec(**{field: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert rule in str(info.value)
    assert isinstance(info.value, ValueError)


@given(
    length=st.floats(0.1, 600),
    frame_rate=st.integers(15, 60),
    zoom_speed=st.floats(0, 100),
    width=st.integers(64, 1920).map(lambda v: v * 2),
)
def test_every_value_in_range_is_accepted(length, frame_rate, zoom_speed, width):
    spec = RenderSpec(length=length, frame_rate=frame_rate, zoom_speed=zoom_speed, width=width)
    assert spec.total_frames == round(length * frame_rate)
    assert spec.to_dict()["width"] == width
