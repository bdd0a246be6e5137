"""RenderSpec and the one table of request fields.

Every field a user can set (its type, range, default, help and the rule a bad value
breaks) is written once, here: the fields of :class:`RenderSpec` carry a :class:`Field`
in their metadata, and the fields that only a job has (``image_url``, ``webhook_url``,
``id``) are in :data:`JOB_FIELDS`. The REST API's JSON Schema and OpenAPI document, the
job system's defaults and the CLI's options are all derived from these, as attrs derives
``__init__`` and validation from one field list.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

__all__ = [
    "Field",
    "RenderSpec",
    "RENDER_FIELDS",
    "JOB_FIELDS",
    "REQUEST_FIELDS",
    "PRESETS",
    "MAX_SIDE",
    "MIN_SIDE",
]

MIN_SIDE = 128
MAX_SIDE = 3840
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)

# key=value pairs joined by ':' (x264's own syntax), nothing a shell or option parser
# could read as something else.
_X264_PARAMS = r"^([a-z0-9-]+=[A-Za-z0-9.,_-]+)(:[a-z0-9-]+=[A-Za-z0-9.,_-]+)*$"
# http(s) and a host; the full URL rules (addresses, credentials) are zoomreel.net's.
_URL = r"^[hH][tT][tT][pP][sS]?://[^\s/?#]+"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Field:
    """One request field: its type, range, default, help and the rule it states.

    Attributes:
        kind: ``integer``, ``number``, ``string`` (matching ``pattern``), ``choice`` (one
            of ``choices``), ``url``, ``rgb`` (three integers 0..255) or ``id`` (a string,
            an integer or null: the caller's own id).
        default: the value when the field is not given (None: no value).
        help: one line for the CLI and the API document.
        minimum, maximum: inclusive bounds of numbers (``maximum`` None: unbounded, or
            the configured limit a caller passes in, as for ``length``).
        exclusive_minimum: the minimum itself is not allowed.
        even: integers must be even.
        unit: the unit a number is in, named in the rule (``"seconds"``).
        choices: the allowed values of a ``choice``.
        pattern: regular expression a ``string`` must match ("" always passes).
        max_length: longest string accepted.
        rule_text: the rule, where the generated one would not say it well.
        request: part of the REST request (and of a job's record).
        cli: an option of ``zoomreel render``.
        name: the field's name; filled in from the attribute it is declared on.
    """

    kind: str
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    even: bool = False
    unit: str = ""
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    max_length: int | None = None
    rule_text: str = ""
    request: bool = True
    cli: bool = True
    name: str = ""

    def rule(self, maximum: float | None = None) -> str:
        """What a good value is, as the error message says it (``must be ...``)."""
        if self.rule_text:
            return self.rule_text
        if self.kind == "choice":
            return "must be one of " + ", ".join(self.choices)
        if self.kind == "url":
            return "must be an http or https URL"
        noun = {"integer": "an even integer" if self.even else "an integer",
                "number": "a number"}[self.kind]
        if self.unit:
            noun += f" of {self.unit}"
        low = self.minimum
        high = self.maximum if maximum is None else maximum
        if low is not None and high is not None and not self.exclusive_minimum:
            return f"must be {noun} from {low:g} to {high:g}"
        text = f"must be {noun}"
        if low is not None:
            text += f" greater than {low:g}" if self.exclusive_minimum else f" at least {low:g}"
        if high is not None:
            text += f" and at most {high:g}" if low is not None else f" at most {high:g}"
        return text

    def check(self, value: Any, maximum: float | None = None) -> Any:
        """Return ``value`` (integral floats of integer fields as ints, colours as tuples).

        Args:
            value: the value given.
            maximum: the configured upper bound, for fields without a fixed one.

        Raises:
            SpecError: naming this field and its rule.
        """
        if not self._ok(value, maximum):
            raise SpecError(self.name, self.rule(maximum), value)
        if self.kind == "integer":
            return int(value)
        if self.kind == "rgb":
            return tuple(value)
        return value

    def _ok(self, value: Any, maximum: float | None) -> bool:
        kind = self.kind
        if kind in ("integer", "number"):
            if not _is_number(value):
                return False
            if kind == "integer" and (value != int(value) or (self.even and int(value) % 2)):
                return False
            low, high = self.minimum, self.maximum if maximum is None else maximum
            if low is not None and (value <= low if self.exclusive_minimum else value < low):
                return False
            return high is None or value <= high
        if kind == "choice":
            return value in self.choices
        if kind in ("string", "url"):
            pattern = _URL if kind == "url" else self.pattern
            return (isinstance(value, str)
                    and (self.max_length is None or len(value) <= self.max_length)
                    and (not value and kind == "string" or not pattern
                         or re.match(pattern, value) is not None))
        if kind == "rgb":
            return (isinstance(value, tuple | list) and len(value) == 3
                    and all(_is_int(c) and 0 <= c <= 255 for c in value))
        if kind == "id":
            return (value is None or _is_int(value)
                    or isinstance(value, str) and len(value) <= (self.max_length or 256))
        raise AssertionError(f"unknown field kind {kind!r}")

    def json_schema(self, maximum: float | None = None) -> dict[str, Any]:
        """This field as JSON Schema (2020-12), with its default and help."""
        schema: dict[str, Any]
        if self.kind in ("integer", "number"):
            schema = {"type": self.kind}
            if self.minimum is not None:
                schema["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
            high = self.maximum if maximum is None else maximum
            if high is not None:
                schema["maximum"] = high
            if self.even:
                schema["multipleOf"] = 2
        elif self.kind == "choice":
            schema = {"type": "string", "enum": list(self.choices)}
        elif self.kind in ("string", "url"):
            schema = {"type": "string"}
            pattern = _URL if self.kind == "url" else self.pattern
            if pattern:
                schema["pattern"] = f"(^$)|({pattern})" if self.kind == "string" else pattern
            if self.max_length is not None:
                schema["maxLength"] = self.max_length
        elif self.kind == "rgb":
            schema = {"type": "array", "items": {"type": "integer", "minimum": 0,
                                                 "maximum": 255}, "minItems": 3, "maxItems": 3}
        else:  # id
            schema = {"type": ["string", "integer", "null"], "maxLength": self.max_length or 256}
        if self.default is not None:
            schema["default"] = list(self.default) if self.kind == "rgb" else self.default
        if self.help:
            schema["description"] = self.help
        return schema


def _field(default: Any, kind: str, **options: Any) -> Any:
    """A RenderSpec attribute: its default, and its Field in the metadata."""
    return dataclasses.field(default=default,
                             metadata={"zoomreel": Field(kind, default, **options)})


@dataclass(frozen=True)
class RenderSpec:
    """The parameters of one render, validated when it is built.

    Defaults follow the documented service (length 5 s, 30 fps, zoom speed 3) with a
    1920x1080 output. Building a spec with a bad value raises SpecError naming the
    field and the rule. Each attribute's range and help is its :class:`Field`
    (``RENDER_FIELDS[name]``).

    The encoder defaults were chosen by measurement (``python -m benchmarks.bench``,
    see benchmarks/README.md): ``ultrafast`` is the only preset that renders 1080p more
    than 3x faster than the documented service's ffmpeg command within 300 MB on two
    cores; ``cabac=1:deblock=0,0`` gives back the entropy coder and the deblocking
    filter that ultrafast turns off, for ~25% smaller files and no blocking at about
    the same speed; crf 26 then lands below the ffmpeg command's file size at
    >= 37 dB from the exact reference.

    ``max_pixels`` is checked from the image's header; Pillow's own limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, the host program's setting) still applies on top.
    """

    length: float = _field(5.0, "number", minimum=0, exclusive_minimum=True,
                           unit="seconds", help="video length in seconds")
    frame_rate: int = _field(30, "integer", minimum=15, maximum=60,
                             help="frames per second")
    zoom_speed: float = _field(3.0, "number", minimum=0, maximum=100,
                               help="zoom growth in percent per second "
                                    "(z = 1 + zoom_speed/100 * t)")
    width: int = _field(1920, "integer", minimum=MIN_SIDE, maximum=MAX_SIDE, even=True,
                        help="output width in pixels")
    height: int = _field(1080, "integer", minimum=MIN_SIDE, maximum=MAX_SIDE, even=True,
                         help="output height in pixels")
    crf: int = _field(26, "integer", minimum=0, maximum=51, request=False,
                      help="x264 constant rate factor (lower: better and bigger)")
    preset: str = _field("ultrafast", "choice", choices=PRESETS, request=False,
                         help="x264 preset")
    x264_params: str = _field("cabac=1:deblock=0,0", "string", pattern=_X264_PARAMS,
                              rule_text='must be "key=value" pairs joined by ":"',
                              request=False,
                              help='libx264 options over the preset, "key=value:key=value"')
    background: tuple[int, int, int] = _field((0, 0, 0), "rgb", request=False, cli=False,
                                              rule_text="must be three integers from 0 to 255",
                                              help="RGB colour under transparent pixels")
    max_pixels: int = _field(100_000_000, "integer", minimum=1, request=False, cli=False,
                             rule_text="must be a positive integer",
                             help="images with more pixels are refused before decoding")

    def __post_init__(self) -> None:
        for name, field in RENDER_FIELDS.items():
            object.__setattr__(self, name, field.check(getattr(self, name)))
        if self.total_frames < 1:
            raise SpecError(
                "length", "is too short to hold a single frame at this frame_rate", self.length
            )

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> RenderSpec:
        """The spec of a request's render fields (others ignored, defaults filled in)."""
        return cls(**{name: request[name] for name in RENDER_FIELDS
                      if RENDER_FIELDS[name].request and request.get(name) is not None})

    @property
    def total_frames(self) -> int:
        """Number of frames: round(length * frame_rate)."""
        return int(round(self.length * self.frame_rate))

    def request_fields(self) -> dict[str, Any]:
        """The request fields of this spec (what a job records), as JSON values."""
        return {name: getattr(self, name) for name, f in RENDER_FIELDS.items() if f.request}

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able values."""
        data = dataclasses.asdict(self)
        data["background"] = list(self.background)
        return data


#: The fields of RenderSpec, by name, in declaration order.
RENDER_FIELDS: dict[str, Field] = {
    f.name: dataclasses.replace(f.metadata["zoomreel"], name=f.name)
    for f in dataclasses.fields(RenderSpec)
}

#: Fields a job has besides its render: where the image comes from, whom to tell, and
#: the caller's own id.
JOB_FIELDS: dict[str, Field] = {
    f.name: f for f in (
        Field("url", name="image_url", max_length=2048, cli=False,
              help="http(s) URL of the image"),
        Field("url", name="webhook_url", max_length=2048, cli=False,
              help="POSTed the status answer when the job ends"),
        Field("id", name="id", max_length=256, cli=False,
              rule_text="must be a string (at most 256 characters), an integer or null",
              help="your own id, echoed in answers"),
    )
}

#: Every field of the REST request, in the order the API document lists them.
REQUEST_FIELDS: dict[str, Field] = {
    "image_url": JOB_FIELDS["image_url"],
    **{name: f for name, f in RENDER_FIELDS.items() if f.request},
    "webhook_url": JOB_FIELDS["webhook_url"],
    "id": JOB_FIELDS["id"],
}
