"""Field: one request field's type, range, default, help and the rule a bad value breaks.

The fields themselves are declared once, on :class:`~zoomreel.spec.RenderSpec` and in
:data:`~zoomreel.spec.JOB_FIELDS`; this module is the machinery every front end derives
from them: the check, the error message, the JSON Schema.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

__all__ = ["Field", "URL_PATTERN", "COLOUR_PATTERN"]

# http(s) and a host; the full URL rules (addresses, credentials) are zoomreel.net's.
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[^\s/?#]+"
COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"


#: The web page's usual control for each kind of field.
_CONTROLS = {"integer": "number", "number": "number", "string": "text", "choice": "select",
             "url": "url", "colour": "colour", "point": "point", "id": "text"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def _shown(bound: float) -> str:
    """A bound as a person writes it: 2592000, not 2.592e+06; 0.5 stays 0.5."""
    return str(int(bound)) if bound == int(bound) else f"{bound:g}"


@dataclass(frozen=True)
class Field:
    """One request field.

    Attributes:
        kind: ``integer``, ``number``, ``string`` (matching ``pattern``), ``choice`` (one
            of ``choices``), ``url``, ``colour`` (``"#rrggbb"``, or three integers
            0..255), ``point`` (``[x, y]``, each 0..1) or ``id`` (a string, an
            integer or null: the caller's own id).
        default: the value that applies when the field is not given.
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
        empty: what an empty ``url`` means, where it is allowed ("": not allowed).
        optional: None is a value ("not given": another field, or a rule, decides).
        request: part of the REST request (and of a job's record).
        cli: an option of ``zoomreel render``.
        name: the field's name; filled in from the attribute it is declared on.
        label: what the web page calls the field, in a person's words ("" : the name).
        hint: the page's line under the control ("": ``help``).
        group: the section of the page it is in ("Motion", "Framing", ...).
        control: how the page shows it: ``number``, ``text``, ``url``, ``select``,
            ``segmented`` (a row of buttons), ``switch`` (a choice of two: off is the
            first), ``point`` or ``colour`` ("": the usual one for ``kind``).
        choice_labels: the words the page shows for ``choices``, in their order.
        alternative: the thing this field gives one form of, where the request takes
            one form or another (``"Zoom"``: by speed, or from ... to ...).
        form: the name of this field's form of ``alternative`` ("Zoom by speed").
        expert: folded away on the page, under "More options".
        literals: words accepted besides the kind's values (a reel's ``length`` is a
            number of seconds or ``"audio"``; a ``focus`` is [x, y] or ``"auto"``).
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
    empty: str = ""
    optional: bool = False
    request: bool = True
    cli: bool = True
    name: str = ""
    label: str = ""
    hint: str = ""
    group: str = ""
    control: str = ""
    choice_labels: tuple[str, ...] = ()
    alternative: str = ""
    form: str = ""
    expert: bool = False
    literals: tuple[str, ...] = ()

    @property
    def page_control(self) -> str:
        """The control the web page shows: ``control``, else the usual one for ``kind``."""
        return self.control or _CONTROLS[self.kind]

    def rule(self, maximum: float | None = None) -> str:
        """What a good value is, as the error message says it (``must be ...``)."""
        if self.rule_text:
            return self.rule_text
        if self.literals:
            words = " or ".join(f'"{w}"' for w in self.literals)
            plain = dataclasses.replace(self, literals=())
            return f"{plain.rule(maximum)} or {words}"
        if self.kind == "choice":
            return "must be one of " + ", ".join(self.choices)
        if self.kind == "url":
            return "must be an http or https URL" + (f" (or empty: {self.empty})"
                                                     if self.empty else "")
        if self.kind == "colour":
            return 'must be a colour written "#rrggbb" (or three integers from 0 to 255)'
        if self.kind == "point":
            return "must be [x, y], each a number from 0 to 1 (a fraction of the image)"
        noun = {"integer": "an even integer" if self.even else "an integer",
                "number": "a number"}[self.kind]
        if self.unit:
            noun += f" of {self.unit}"
        top = self.maximum if maximum is None else maximum
        low = None if self.minimum is None else _shown(self.minimum)
        high = None if top is None else _shown(top)
        if low is not None and high is not None and not self.exclusive_minimum:
            return f"must be {noun} from {low} to {high}"
        text = f"must be {noun}"
        if low is not None:
            text += f" greater than {low}" if self.exclusive_minimum else f" at least {low}"
        if high is not None:
            text += f" and at most {high}" if low is not None else f" at most {high}"
        return text

    def check(self, value: Any, maximum: float | None = None) -> Any:
        """Return ``value`` normalised: integral floats of integer fields as ints,
        colours as (r, g, b) tuples, points as (x, y) tuples of floats.

        Args:
            value: the value given.
            maximum: the configured upper bound, for fields without a fixed one.

        Raises:
            SpecError: naming this field and its rule.
        """
        if value is None and self.optional:
            return None
        if isinstance(value, str) and value in self.literals:
            return value
        if not self._ok(value, maximum):
            raise SpecError(self.name, self.rule(maximum), value)
        if self.kind == "integer":
            return int(value)
        if self.kind == "colour":
            if isinstance(value, str):
                return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
            return tuple(value)
        if self.kind == "point":
            return (float(value[0]), float(value[1]))
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
            pattern = URL_PATTERN if kind == "url" else self.pattern
            return (isinstance(value, str)
                    and (self.max_length is None or len(value) <= self.max_length)
                    and (not value and (kind == "string" or bool(self.empty)) or not pattern
                         or re.match(pattern, value) is not None))
        if kind == "colour":
            if isinstance(value, str):
                return re.match(COLOUR_PATTERN, value) is not None
            return (isinstance(value, tuple | list) and len(value) == 3
                    and all(_is_int(c) and 0 <= c <= 255 for c in value))
        if kind == "point":
            return (isinstance(value, tuple | list) and len(value) == 2
                    and all(_is_number(c) and 0 <= c <= 1 for c in value))
        if kind == "id":
            return (value is None or _is_int(value)
                    or isinstance(value, str) and len(value) <= (self.max_length or 256))
        raise AssertionError(f"unknown field kind {kind!r}")

    def to_json(self, value: Any) -> Any:
        """A checked value as the request writes it (colours as "#rrggbb", points as lists)."""
        if value is None:
            return None
        if self.kind == "colour":
            return "#" + "".join(f"{c:02x}" for c in value)
        if self.kind == "point" and value not in self.literals:
            return list(value)
        return value

    def json_schema(self, maximum: float | None = None) -> dict[str, Any]:
        """This field as JSON Schema (2020-12), with its default and help."""
        schema: dict[str, Any]
        if self.kind in ("integer", "number"):
            schema = self._number_schema(maximum)
        elif self.kind == "choice":
            schema = {"type": "string", "enum": list(self.choices)}
        elif self.kind in ("string", "url"):
            schema = self._string_schema()
        elif self.kind == "colour":
            schema = {"anyOf": [
                {"type": "string", "pattern": COLOUR_PATTERN},
                {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
                 "minItems": 3, "maxItems": 3}]}
        elif self.kind == "point":
            schema = {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                      "minItems": 2, "maxItems": 2}
        else:  # id
            schema = {"type": ["string", "integer", "null"], "maxLength": self.max_length or 256}
        if self.literals:
            schema = {"anyOf": [schema, {"type": "string", "enum": list(self.literals)}]}
        if self.default is not None:
            schema["default"] = self.to_json(self.default)
        if self.help:
            schema["description"] = self.help
        return schema

    def _number_schema(self, maximum: float | None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.kind}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        high = self.maximum if maximum is None else maximum
        if high is not None:
            schema["maximum"] = high
        if self.even:
            schema["multipleOf"] = 2
        return schema

    def _string_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        pattern = URL_PATTERN if self.kind == "url" else self.pattern
        if pattern:
            empty_ok = self.kind == "string" or bool(self.empty)
            schema["pattern"] = f"(^$)|({pattern})" if empty_ok else pattern
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema
