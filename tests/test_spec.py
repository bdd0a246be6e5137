"""RenderSpec validation, and the one field table every front end derives from."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoomreel.errors import SpecError
from zoomreel.frontends.cli import build_parser
from zoomreel.frontends.cli import main as cli_main
from zoomreel.frontends.rest.schema import submit_schema, validate
from zoomreel.spec import CENTRE, RENDER_FIELDS, REQUEST_FIELDS, Field, RenderSpec

pytestmark = pytest.mark.unit


def test_defaults_follow_the_documented_service():
    spec = RenderSpec()
    assert (spec.length, spec.frame_rate, spec.zoom_speed) == (5.0, 30, 3.0)
    assert (spec.width, spec.height) == (None, None)  # the image decides, as upstream
    assert spec.size_for(4000, 3000) == (1920, 1080)   # wider than tall
    assert spec.size_for(3000, 4000) == (1080, 1920)   # taller
    assert spec.size_for(2000, 2000) == (1080, 1920)   # square: not wider than tall
    assert spec.total_frames == 150


@pytest.mark.parametrize("given, image, size", [
    ({"orientation": "landscape"}, (300, 400), (1920, 1080)),
    ({"orientation": "square"}, (400, 300), (1080, 1080)),
    ({"orientation": "auto"}, (1000, 1000), (1080, 1080)),
    ({"width": 640, "height": 360}, (300, 400), (640, 360)),
    ({"width": 1280}, (300, 400), (1280, 1080)),
])
def test_orientation_and_size_still_override_the_image(
        given: dict[str, Any], image: tuple[int, int], size: tuple[int, int]) -> None:
    assert RenderSpec(**given).size_for(*image) == size


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


# -- one definition per field, the same range everywhere -------------------------------

def _outside(field: Field) -> list[object]:
    """Values just outside a numeric field's range (and an odd one for even fields)."""
    values: list[object] = []
    if field.minimum is not None:
        values.append(field.minimum if field.exclusive_minimum else field.minimum - 1)
    if field.maximum is not None:
        values.append(field.maximum + (2 if field.even else 1))
    if field.even and field.minimum is not None:
        values.append(int(field.minimum) + 1)
    return values


NUMERIC = [f for f in RENDER_FIELDS.values() if f.kind in ("integer", "number")]
#: What a field needs beside it to be valid at all (cycles are for ping-pong; crf up to
#: 63 is for av1 and vp9).
CONTEXT: dict[str, dict[str, object]] = {"cycles": {"loop": "ping-pong"},
                                         "crf": {"codec": "av1"}}


def test_the_field_table_is_renderspecs_fields_and_defaults() -> None:
    spec = RenderSpec()
    assert list(RENDER_FIELDS) == [f.name for f in dataclasses.fields(RenderSpec)]
    for name, field in RENDER_FIELDS.items():
        assert field.name == name
        value = getattr(spec, name)
        # a field's default applies unless another form of the same thing is used
        assert value == field.default or value is None and field.optional, name
    assert (spec.zoom_keyframes, spec.focus_keyframes) == ((1.0, 1.15), (CENTRE, CENTRE))
    assert spec.size_for(100, 100) == (1080, 1920) and spec.loop == "none"
    assert {"image_url", "webhook_url", "id", "length", "frame_rate", "zoom_speed", "width",
            "height", "direction", "start_zoom", "end_zoom", "focus", "start_focus",
            "end_focus", "curve", "easing", "loop", "cycles", "fit", "background",
            "orientation", "resampler", "codec", "speed"} == set(REQUEST_FIELDS)


@pytest.mark.parametrize("field", NUMERIC, ids=lambda f: f.name)
def test_every_numeric_field_has_the_same_range_everywhere(
        field: Field, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # The command runs in this process (test_cli.py runs the installed script): the
    # variables it sets for rendering (OMP_WAIT_POLICY, SVT_LOG) go into a copy.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    name = field.name
    # the API document and the validation behind it
    schema = submit_schema(600.0)["properties"].get(name)
    if field.request:
        assert schema is not None
        assert schema.get("minimum", schema.get("exclusiveMinimum")) == field.minimum
        assert schema.get("maximum") == (600.0 if name == "length" else field.maximum)
        assert ("exclusiveMinimum" in schema) == field.exclusive_minimum
        assert schema.get("multipleOf") == (2 if field.even else None)
        assert schema.get("default") == field.default
    else:
        assert schema is None
    # the CLI's option
    option = next((a for a in build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
                   .choices["render"]._actions if a.dest == name), None)
    assert (option is not None) == field.cli
    if option is not None:
        assert option.type is (int if field.kind == "integer" else float)
        assert field.rule().removeprefix("must be ") in option.help
    # the bounds themselves are accepted, values just outside refused alike everywhere
    context = CONTEXT.get(name, {})
    request = {"image_url": "http://h/x", **context}
    for bound in (field.minimum, field.maximum):
        if bound is not None and not (bound == field.minimum and field.exclusive_minimum):
            value = int(bound) if field.kind == "integer" else bound
            if name != "length":
                RenderSpec(**{name: value, **context})  # type: ignore[arg-type]
            if field.request:
                validate({**request, name: value}, submit_schema(600.0))
    for value in _outside(field):
        with pytest.raises(SpecError) as lib:
            RenderSpec(**{name: value, **context})  # type: ignore[arg-type]
        assert lib.value.rule == field.rule()
        if field.request and name != "length":
            with pytest.raises(SpecError) as api:
                validate({**request, name: value}, submit_schema(600.0))
            assert (api.value.field, api.value.rule) == (name, field.rule())
        if field.cli:
            flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**context, name: value}.items()]
            assert cli_main(["render", "missing.jpg", "-o", "o.mp4", *flags]) == 2
            stderr = capsys.readouterr().err
            assert stderr.strip().splitlines()[-1] == f"error: {name}: {field.rule()}"


def test_length_is_bounded_by_the_configured_maximum_alike_in_api_and_jobs() -> None:
    rule = RENDER_FIELDS["length"].rule(120.0)
    assert rule == "must be a number of seconds greater than 0 and at most 120"
    with pytest.raises(SpecError) as api:
        validate({"image_url": "http://h/x", "length": 121}, submit_schema(120.0), 120.0)
    assert api.value.rule == rule
    with pytest.raises(SpecError) as job:
        RENDER_FIELDS["length"].check(121, maximum=120.0)
    assert job.value.rule == rule


# -- how the web page shows the fields (carried to it as OpenAPI x- keys) ---------------

_CONTROLS = {"integer": {"number"}, "number": {"number"}, "string": {"text"}, "url": {"url"},
             "id": {"text"}, "colour": {"colour"}, "point": {"point"},
             "choice": {"select", "segmented", "switch"}}


@pytest.mark.parametrize("name", list(REQUEST_FIELDS))
def test_every_request_field_says_how_the_page_shows_it(name: str) -> None:
    field = REQUEST_FIELDS[name]
    assert field.label and field.group, "a label and a place on the page"
    assert field.page_control in _CONTROLS[field.kind]
    if field.page_control == "switch":
        assert len(field.choices) == 2  # off is the first, on the second
    assert len(field.choice_labels) in (0, len(field.choices))
    assert bool(field.alternative) == bool(field.form)
    # The page's words: no formula, no raw API name in the label.
    assert "=" not in field.label and "_" not in field.label


def _alternatives() -> dict[str, dict[str, list[str]]]:
    forms: dict[str, dict[str, list[str]]] = {}
    for name, field in REQUEST_FIELDS.items():
        if field.alternative:
            forms.setdefault(field.alternative, {}).setdefault(field.form, []).append(name)
    return forms


def test_the_pages_alternatives_are_the_forms_renderspec_takes_one_of() -> None:
    """Each alternative of the table is a rule RenderSpec enforces: any field of one form
    with any field of another is refused; each form alone is accepted; and the first
    form listed is the one that applies when none is given (the page starts on it)."""
    value = {"zoom_speed": 5, "direction": "out", "start_zoom": 2, "end_zoom": 3,
             "focus": (0.2, 0.3), "start_focus": (0.1, 0.1), "end_focus": (0.9, 0.9),
             "orientation": "square", "width": 640, "height": 480}
    forms = _alternatives()
    assert {a: list(f) for a, f in forms.items()} == {
        "Zoom": ["Zoom by speed", "Zoom from … to …"],
        "Where it looks": ["One point", "Pan from … to …"],
        "Size": ["By shape", "Exact size"]}
    for by_form in forms.values():
        (first, first_fields), (_, second_fields) = by_form.items()
        for a in first_fields:
            for b in second_fields:
                with pytest.raises(SpecError, match="cannot be given with"):
                    RenderSpec(**{a: value[a], b: value[b]})
        RenderSpec(**{n: value[n] for n in first_fields})
        RenderSpec(**{n: value[n] for n in second_fields})
        assert all(getattr(RenderSpec(), n) is None for n in second_fields), first


def test_the_openapi_document_carries_the_page_keys() -> None:
    from zoomreel.frontends.rest.openapi import openapi_document

    doc = openapi_document(600.0, "test")
    props = doc["components"]["schemas"]["SubmitRequest"]["properties"]
    assert list(props) == list(REQUEST_FIELDS)
    for name, field in REQUEST_FIELDS.items():
        prop = props[name]
        assert prop["x-label"] == field.label and prop["x-group"] == field.group
        assert prop["x-control"] == field.page_control and prop["x-expert"] == field.expert
        assert prop.get("x-alternative", "") == field.alternative
        assert prop.get("x-form", "") == field.form
        assert prop.get("x-choice-labels", []) == list(field.choice_labels)
    assert props["resampler"]["x-label"] == "Sharper resampling (slower)"
    assert props["webhook_url"]["x-group"] == props["id"]["x-group"] == "For automations"
    # The validating schema itself is left as it was (a copy carries the keys).
    assert not any(k.startswith("x-") for p in submit_schema(600.0)["properties"].values()
                   for k in p)
