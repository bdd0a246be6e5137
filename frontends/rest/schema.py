"""JSON Schemas of the request bodies, derived from the field table, and validation
that names the field and the rule."""

from __future__ import annotations

import functools
import math
from typing import Any

from jsonschema import Draft202012Validator

from zoomreel.errors import SpecError
from zoomreel.reelspec import REEL_FIELDS, SLIDE_FIELDS
from zoomreel.spec import REQUEST_FIELDS, Field

__all__ = ["submit_schema", "reel_schema", "validate_reel", "path_schema", "PATH_FIELDS",
           "ROUTE_FIELDS", "STATUS_SCHEMA", "JOBS_STATUS_SCHEMA", "SUBJECT_SCHEMA", "MAX_DEPTH",
           "validate", "coerce_form"]

#: The deepest nesting of arrays and objects a request body may have.
MAX_DEPTH = 16

#: Request fields whose maximum is a setting rather than a fixed number.
_CONFIGURED_MAXIMUM = "length"


@functools.cache
def submit_schema(max_length: float, *, upload: bool = False) -> dict[str, Any]:
    """Schema of the submit body (JSON, or the form fields of a multipart upload).

    The same object for the same arguments (its compiled validator is kept): read it,
    never change it.
    """
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: field.json_schema(max_length if name == _CONFIGURED_MAXIMUM else None)
            for name, field in REQUEST_FIELDS.items()
        },
    }
    if not upload:
        schema["required"] = ["image_url"]
    return schema


@functools.cache
def reel_schema(max_length: float, max_slides: int, *, upload: bool = False,
                ) -> dict[str, Any]:
    """Schema of POST /v1/video/reel's body (JSON; or, with ``upload``, the form field
    ``reel`` of a multipart request, whose slides may take the uploaded images instead
    of an ``image_url``). Shared, as submit_schema's: read it, never change it."""
    slide: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {"image_url": REQUEST_FIELDS["image_url"].json_schema(),
                       **{name: field.json_schema() for name, field in SLIDE_FIELDS.items()}},
    }
    if not upload:
        slide["required"] = ["image_url"]
    slides: dict[str, Any] = {"type": "array", "items": slide, "maxItems": max_slides,
                              "description": "the slides, in order"}
    if not upload:
        slides["minItems"] = 1
    properties: dict[str, Any] = {"slides": slides}
    properties.update({name: field.json_schema(max_length if name == "length" else None)
                       for name, field in REEL_FIELDS.items()})
    properties["audio_url"] = {**REQUEST_FIELDS["image_url"].json_schema(),
                               "description": "the track: mp3, m4a/aac, wav, flac, "
                                              "ogg/opus"}
    for name in ("webhook_url", "id"):
        properties[name] = REQUEST_FIELDS[name].json_schema()
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": properties}
    if not upload:
        schema["required"] = ["slides"]
    return schema


def _reel_rule(path: list[Any], max_length: float, max_slides: int) -> str | None:
    if len(path) >= 3 and path[0] == "slides":
        field = SLIDE_FIELDS.get(str(path[2])) or REQUEST_FIELDS.get(str(path[2]))
        return None if field is None else field.rule()
    name = str(path[0]) if path else "body"
    if name == "slides":
        return f"must hold from 1 to {max_slides} slides"
    if name == "audio_url":
        return REQUEST_FIELDS["image_url"].rule()
    field = REEL_FIELDS.get(name) or REQUEST_FIELDS.get(name)
    return None if field is None else field.rule(max_length if name == "length" else None)


def _reel_name(path: list[Any]) -> str:
    """``["slides", 2, "zoom_speed"]`` as ``slides[2].zoom_speed``."""
    if not path:
        return "body"
    name = str(path[0])
    for part in path[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def validate_reel(body: Any, max_length: float, max_slides: int, *,
                  upload: bool = False) -> dict[str, Any]:
    """Check a reel body against :func:`reel_schema`; errors inside a slide name it with
    its index (``slides[2].zoom_speed``).

    Raises:
        SpecError: naming the first offending field and the rule it breaks.
    """
    if not isinstance(body, dict):
        raise SpecError("body", "must be a JSON object")
    slides = body.get("slides")
    if isinstance(slides, list) and len(slides) > max_slides:  # before reading them all
        raise SpecError("slides", f"must hold from 1 to {max_slides} slides",
                        len(slides))
    _check_values(body, max_length)
    schema = reel_schema(max_length, max_slides, upload=upload)
    errors = sorted(_validator(schema).iter_errors(body),
                    key=lambda e: (list(e.path), e.validator))
    if not errors:
        return dict(body)
    err = errors[0]
    path = list(err.path)
    if err.validator == "additionalProperties":
        where = body
        for part in path:
            where = where[part]
        known = err.schema.get("properties", {})
        unknown = sorted(k for k in where if k not in known)
        raise SpecError(_reel_name([*path, unknown[0]]) if unknown else _reel_name(path),
                        "is not a known field")
    if err.validator == "required":
        where = body
        for part in path:
            where = where[part]
        missing = [k for k in err.schema.get("required", []) if k not in where]
        raise SpecError(_reel_name([*path, missing[0]]) if missing else _reel_name(path),
                        "is required")
    value = body
    for part in path:
        value = value[part]
    raise SpecError(_reel_name(path), _reel_rule(path, max_length, max_slides) or err.message,
                    value)


#: Fields of routes other than submit: the status routes' and POST /v1/image/path's (an
#: image's size and how many frames to describe). Their rules and schemas come from these.
ROUTE_FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("string", name="job_id", max_length=256, rule_text="must be a string",
          help="the job_id a submit answered"),
    Field("number", 600, name="since_seconds", minimum=0, exclusive_minimum=True,
          maximum=30 * 86400, unit="seconds", help="jobs whose state changed this recently"),
    Field("integer", name="image_width", minimum=1, maximum=100_000,
          help="the image's width in pixels"),
    Field("integer", name="image_height", minimum=1, maximum=100_000,
          help="the image's height in pixels"),
    Field("integer", 2, name="samples", minimum=2, maximum=120,
          help="how many evenly spaced frames to describe (first and last included)"),
)}

#: The fields POST /v1/image/path takes besides the submit fields, as JSON Schema.
PATH_FIELDS: dict[str, Any] = {
    name: ROUTE_FIELDS[name].json_schema() for name in ("image_width", "image_height", "samples")
}


@functools.cache
def path_schema(max_length: float) -> dict[str, Any]:
    """Schema of POST /v1/image/path: the submit fields (the image itself not needed) and
    the image's size. Shared, as submit_schema's: read it, never change it."""
    schema = dict(submit_schema(max_length, upload=True))  # a copy: that one is shared too
    schema["properties"] = {**schema["properties"], **PATH_FIELDS}
    schema["required"] = ["image_width", "image_height"]
    return schema


#: POST /v1/image/subject: the image by URL (or, in a multipart form, the file ``image``),
#: and the caller's id, with the submit route's rules for both.
SUBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {name: REQUEST_FIELDS[name].json_schema() for name in ("image_url", "id")},
}

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["job_id"],
    "properties": {"job_id": ROUTE_FIELDS["job_id"].json_schema()},
}


#: POST /v1/toolkit/jobs/status: the window, in seconds back from now (30 days at most).
JOBS_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"since_seconds": ROUTE_FIELDS["since_seconds"].json_schema()},
}

def _rule(field: str, max_length: float) -> str | None:
    known = ROUTE_FIELDS.get(field) or REQUEST_FIELDS.get(field)
    if known is None:
        return None
    return known.rule(max_length if field == _CONFIGURED_MAXIMUM else None)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate (JSON "\ud800"): no text at all
        return False
    return True


def _check_values(body: dict[str, Any], max_length: float) -> None:
    """Every name and string is text that can be stored and sent back, every number is
    finite, and nothing is nested deeper than MAX_DEPTH: checked before anything else
    looks at the body.

    Python's JSON reader takes ``NaN``, ``Infinity`` and ``1e999`` (infinity), and a form
    field ``nan`` reads as a float; JSON Schema lets NaN through every bound (each
    comparison with it is false), so a NaN reached Redis and came back as a 503.
    """
    for name in body:
        if not _is_text(name):
            raise SpecError("body", "field names must be valid text (no unpaired surrogates)")
    for name, value in body.items():
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            item, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise SpecError(name, f"must not be nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, float) and not math.isfinite(item):
                raise SpecError(name, _rule(name, max_length) or "must be a finite number")
            if isinstance(item, str) and not _is_text(item):
                raise SpecError(name, "must be valid text (it holds an unpaired surrogate)")
            if isinstance(item, dict):
                if not all(_is_text(k) for k in item):
                    raise SpecError(name, "must be valid text (it holds an unpaired surrogate)")
                stack.extend((v, depth + 1) for v in item.values())
            elif isinstance(item, list):
                stack.extend((v, depth + 1) for v in item)


_COMPILED: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The schema's validator, built once (building one costs more than validating)."""
    found = _COMPILED.get(id(schema))
    if found is None or found[0] is not schema:
        found = _COMPILED[id(schema)] = (schema, Draft202012Validator(schema))
    return found[1]


def validate(body: Any, schema: dict[str, Any], max_length: float = 600.0) -> dict[str, Any]:
    """Check ``body`` against ``schema``; return it with integral numbers as ints.

    Raises:
        SpecError: naming the first offending field and the rule it breaks.
    """
    if not isinstance(body, dict):
        raise SpecError("body", "must be a JSON object")
    _check_values(body, max_length)
    errors = sorted(_validator(schema).iter_errors(body),
                    key=lambda e: (list(e.path), e.validator))
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            known = schema["properties"]
            unknown = sorted(k for k in body if k not in known)
            raise SpecError(unknown[0] if unknown else "body", "is not a known field")
        if err.validator == "required":
            missing = [k for k in schema.get("required", []) if k not in body]
            raise SpecError(missing[0] if missing else "body", "is required")
        name = str(err.path[0]) if err.path else "body"
        raise SpecError(name, _rule(name, max_length) or err.message, body.get(name))
    out = dict(body)
    for name, field in (REQUEST_FIELDS | ROUTE_FIELDS).items():
        if field.kind == "integer" and isinstance(out.get(name), float):
            out[name] = int(out[name])
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text  # left as text: validation then names the field


def coerce_form(fields: dict[str, str]) -> dict[str, Any]:
    """Turn multipart text fields into JSON values: numbers, and points written ``x,y``
    (or ``[x, y]``)."""
    out: dict[str, Any] = {}
    for name, text in fields.items():
        value: Any = text
        known = REQUEST_FIELDS.get(name)
        if known is not None and text.strip() in known.literals:
            value = text.strip()
        elif known is not None and known.kind in ("integer", "number"):
            value = _number(text)
        elif known is not None and known.kind == "point":
            value = [_number(part.strip()) for part in text.strip("[] ").split(",")]
        out[name] = value
    return out
