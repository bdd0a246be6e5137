"""JSON Schemas of the request bodies, and validation that names the field and the rule."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from engine.errors import SpecError
from engine.spec import MAX_SIDE, MIN_SIDE

__all__ = ["submit_schema", "STATUS_SCHEMA", "validate", "coerce_form"]

_URL = {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://[^\\s/?#]+", "maxLength": 2048}


def submit_schema(max_length: float, *, upload: bool = False) -> dict[str, Any]:
    """Schema of the submit body (JSON, or the form fields of a multipart upload)."""
    side = {"type": "integer", "minimum": MIN_SIDE, "maximum": MAX_SIDE, "multipleOf": 2}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "image_url": {**_URL, "description": "http(s) URL of the image"},
            "length": {"type": "number", "exclusiveMinimum": 0, "maximum": max_length,
                       "default": 5, "description": "video length in seconds"},
            "frame_rate": {"type": "integer", "minimum": 15, "maximum": 60, "default": 30},
            "zoom_speed": {"type": "number", "minimum": 0, "maximum": 100, "default": 3,
                           "description": "zoom growth in percent per second"},
            "width": {**side, "default": 1920},
            "height": {**side, "default": 1080},
            "webhook_url": {**_URL, "description": "POSTed the status answer when done"},
            "id": {"type": ["string", "integer", "null"], "maxLength": 256,
                   "description": "your own id, echoed in answers"},
        },
    }
    if not upload:
        schema["required"] = ["image_url"]
    return schema


STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["job_id"],
    "properties": {"job_id": {"type": "string", "maxLength": 256}},
}


def _rules(max_length: float) -> dict[str, str]:
    return {
        "image_url": "must be an http or https URL",
        "webhook_url": "must be an http or https URL",
        "length": f"must be a number of seconds greater than 0 and at most {max_length:g}",
        "frame_rate": "must be an integer from 15 to 60",
        "zoom_speed": "must be a number from 0 to 100",
        "width": f"must be an even integer from {MIN_SIDE} to {MAX_SIDE}",
        "height": f"must be an even integer from {MIN_SIDE} to {MAX_SIDE}",
        "id": "must be a string (at most 256 characters), an integer or null",
        "job_id": "must be a string",
    }


def validate(body: Any, schema: dict[str, Any], max_length: float = 600.0) -> dict[str, Any]:
    """Check ``body`` against ``schema``; return it with integral numbers as ints.

    Raises:
        SpecError: naming the first offending field and the rule it breaks.
    """
    if not isinstance(body, dict):
        raise SpecError("body", "must be a JSON object")
    errors = sorted(Draft202012Validator(schema).iter_errors(body),
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
        field = str(err.path[0]) if err.path else "body"
        raise SpecError(field, _rules(max_length).get(field, err.message), body.get(field))
    out = dict(body)
    for name in ("frame_rate", "width", "height"):
        if isinstance(out.get(name), float):
            out[name] = int(out[name])
    return out


def coerce_form(fields: dict[str, str]) -> dict[str, Any]:
    """Turn multipart text fields into JSON values where they look like numbers."""
    out: dict[str, Any] = {}
    for name, text in fields.items():
        value: Any = text
        if name in ("length", "zoom_speed", "frame_rate", "width", "height"):
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        out[name] = value
    return out
