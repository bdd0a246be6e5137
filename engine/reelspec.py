"""Reels: the slides, the reel's own fields, and the field table they come from.

A reel is many photos in one video: :class:`Slide` is one photo with its own length,
caption and motion (any motion field of :class:`~zoomreel.spec.RenderSpec`, with the very
same Field), and :class:`ReelSpec` the rest: the transition, the track, the title and the
output fields (again RenderSpec's own Fields). Each field is declared once, in
:data:`SLIDE_FIELDS` and on :class:`ReelSpec` (:data:`REEL_FIELDS`); a bad value raises
SpecError naming it, with the slide's index where there is one (``slides[2].length``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .fields import Field
from .spec import AUTO, RENDER_FIELDS, RenderSpec, _field

if TYPE_CHECKING:
    from .image import Source

__all__ = ["Transition", "Slide", "ReelSpec", "MOTION_FIELDS", "SLIDE_FIELDS",
           "REEL_FIELDS", "OUTPUT_FIELDS", "TEXT_PATTERN", "default_motion"]

#: Text a person can read: no control characters (C0, DEL, C1). Valid in Python's ``re``
#: and in JSON Schema's (ECMA-262) patterns alike.
TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
_TEXT_RULE = "must be text of at most {n} characters, without control characters"


class Transition(enum.StrEnum):
    """How one slide gives way to the next."""

    CUT = "cut"
    CROSSFADE = "crossfade"
    FADE = "fade"  # through black
    SLIDE_LEFT = "slide-left"  # the incoming slide pushes the outgoing one out
    SLIDE_UP = "slide-up"


#: The motion fields of the single-image route: what a slide may set for itself.
MOTION_FIELDS: dict[str, Field] = {n: f for n, f in RENDER_FIELDS.items()
                                   if f.group == "Motion"}

#: RenderSpec's output fields that a reel takes, once for all its slides.
OUTPUT_FIELDS: tuple[str, ...] = ("orientation", "width", "height", "frame_rate", "fit",
                                  "codec", "speed")

#: The fields of one slide, by name (besides its image).
SLIDE_FIELDS: dict[str, Field] = {
    "length": Field("number", None, optional=True, minimum=0, exclusive_minimum=True,
                    unit="seconds", name="length",
                    help="how long this slide lasts (default: an equal share)"),
    "caption": Field("string", None, optional=True, pattern=TEXT_PATTERN, max_length=200,
                     rule_text=_TEXT_RULE.format(n=200), name="caption",
                     help="text shown over this slide"),
    **MOTION_FIELDS,
}

#: The moves a slide without motion fields gets, in turn: never one twice in a row.
#: Each keeps a margin above zoom 1, so that its motion can run on through the half of
#: a transition the slide lends its neighbour.
_DEFAULT_MOVES: tuple[dict[str, Any], ...] = (
    {"start_zoom": 1.04, "end_zoom": 1.2},  # in
    {"start_zoom": 1.15, "end_zoom": 1.15, "start_focus": (0.3, 0.5),
     "end_focus": (0.7, 0.5)},  # pan right
    {"start_zoom": 1.2, "end_zoom": 1.04},  # out
    {"start_zoom": 1.15, "end_zoom": 1.15, "start_focus": (0.7, 0.5),
     "end_focus": (0.3, 0.5)},  # pan left
    {"start_zoom": 1.04, "end_zoom": 1.2, "focus": (0.5, 0.4)},  # in, towards the top
    {"start_zoom": 1.15, "end_zoom": 1.15, "start_focus": (0.5, 0.65),
     "end_focus": (0.5, 0.35)},  # pan up
)
#: The same moves aimed at a point (the slide's focus, or its subject with "auto"):
#: zooms in and out centred on it, pans ending on it (from ``pan``, fractions of the
#: image, away along their way; from the other side where the image ends first).
_MOVES_TOWARDS: tuple[dict[str, Any], ...] = (
    {"start_zoom": 1.04, "end_zoom": 1.2},  # in
    {"start_zoom": 1.15, "end_zoom": 1.15, "pan": (0.4, 0.0)},  # pan right
    {"start_zoom": 1.2, "end_zoom": 1.04},  # out
    {"start_zoom": 1.15, "end_zoom": 1.15, "pan": (-0.4, 0.0)},  # pan left
    {"start_zoom": 1.04, "end_zoom": 1.2, "from_centre": True},  # in, from the middle
    {"start_zoom": 1.15, "end_zoom": 1.15, "pan": (0.0, -0.3)},  # pan up
)


def default_motion(index: int, towards: tuple[float, float] | None = None,
                   ) -> dict[str, Any]:
    """The motion fields of slide ``index`` when it sets none: in, out and pans in turn
    (deterministic; two neighbours never get the same move).

    Args:
        index: the slide's index.
        towards: a point (fractions of the image) the move is aimed at: zooms centred on
            it, pans and the second zoom in ending on it. None: the centre's moves.
    """
    if towards is None:
        return dict(_DEFAULT_MOVES[index % len(_DEFAULT_MOVES)])
    move = dict(_MOVES_TOWARDS[index % len(_MOVES_TOWARDS)])
    x, y = towards
    if move.pop("from_centre", False):
        return {**move, "start_focus": (0.5, 0.5), "end_focus": (x, y)}
    pan = move.pop("pan", None)
    if pan is None:
        return {**move, "focus": (x, y)}
    dx, dy = pan

    def start(at: float, by: float) -> float:
        for where in (at - by, at + by):  # the other side where the image ends first
            if 0.0 <= where <= 1.0:
                return where
        return min(1.0, max(0.0, at - by))

    return {**move, "start_focus": (start(x, dx), start(y, dy)), "end_focus": (x, y)}


@dataclass(frozen=True, init=False)
class Slide:
    """One photo of a reel.

    Args:
        source: the image: a path, or its encoded bytes.
        length: seconds it lasts (default: an equal share, see ReelSpec).
        caption: text shown over it.
        **motion: any motion field of RenderSpec (``zoom_speed``, ``start_zoom``,
            ``focus``, ``easing``, ...); none given: a varied default move.

    Raises:
        SpecError: a field unknown or out of range (named without the slide's index:
            :func:`zoomreel.render_reel` names it with the index, as does
            :meth:`from_request`).
    """

    source: Source
    length: float | None
    caption: str | None
    motion: Mapping[str, Any]

    def __init__(self, source: Source, *, length: float | None = None,
                 caption: str | None = None, **motion: Any) -> None:
        given = {"length": length, "caption": caption, **motion}
        checked: dict[str, Any] = {}
        for name, value in given.items():
            field = SLIDE_FIELDS.get(name)
            if field is None:
                raise SpecError(name, "is not a field of a slide")
            if value is not None:
                checked[name] = field.check(value)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "length", checked.pop("length", None))
        object.__setattr__(self, "caption", checked.pop("caption", None))
        object.__setattr__(self, "motion", checked)

    @classmethod
    def from_request(cls, source: Source, fields: Mapping[str, Any], index: int) -> Slide:
        """Slide ``index`` of a request: its fields (others than the image) by name.

        Raises:
            SpecError: naming the field as ``slides[index].name``.
        """
        try:
            return cls(source, **fields)
        except SpecError as exc:
            raise SpecError(f"slides[{index}].{exc.field}", exc.rule, exc.value) from None

    @property
    def moves_by_default(self) -> bool:
        """Whether this slide gets a default move: it sets no motion field but its focus."""
        return not any(name != "focus" for name in self.motion)

    def render_spec(self, index: int, length: float, output: RenderSpec,
                    focus: tuple[float, float] | str | None = None) -> RenderSpec:
        """The RenderSpec render_video would render this slide's image with: its motion
        (or the default move of slide ``index``) over ``length`` s, ``output``'s
        output fields.

        Args:
            index: the slide's index.
            length: its length in seconds.
            output: the reel's output fields.
            focus: the reel's focus, for a slide that sets none (nor a pan). A default
                move is aimed at the focus; with ``"auto"`` it stays ``"auto"`` here,
                to be aimed at the subject once the image is decoded (zoomreel.reel).

        Raises:
            SpecError: the motion fields conflict (``slides[index].start_zoom: ...``).
        """
        motion = dict(self.motion)
        if not any(name in motion for name in ("focus", "start_focus", "end_focus")):
            if focus is not None:
                motion["focus"] = focus
        if self.moves_by_default:
            point = motion.pop("focus", None)
            if point == AUTO:  # the move's zooms for now (the largest of them, 1.2)
                move = default_motion(index, (0.5, 0.5))
                motion = {"start_zoom": move["start_zoom"], "end_zoom": move["end_zoom"],
                          "focus": AUTO}
            else:
                motion = default_motion(index, point)
        out = {name: getattr(output, name) for name in OUTPUT_FIELDS}
        try:
            return RenderSpec(length=length, **out, **motion)
        except SpecError as exc:
            raise SpecError(f"slides[{index}].{exc.field}", exc.rule, exc.value) from None


def _output_field(name: str) -> Any:
    """A ReelSpec attribute for RenderSpec's output field ``name``: the same Field."""
    field = RENDER_FIELDS[name]
    return dataclasses.field(default=None if field.optional else field.default,
                             metadata={"zoomreel": field})


@dataclass(frozen=True)
class ReelSpec:
    """What a reel is besides its slides, validated when it is built.

    Timing: a slide without a length gets an equal share of ``length`` (of the track with
    ``length="audio"``, else 3 s), split in whole frames. The reel lasts the sum of its
    slides' lengths; a transition takes its time from the two slides it joins, centred
    on their boundary, and is never longer than the shorter of them.

    ``focus`` is every slide's that sets none (see :meth:`Slide.render_spec`).

    ``audio`` (a path or the encoded bytes of a track) is not a request field: the REST
    layer fetches ``audio_url`` into it. The output fields (``orientation`` ... ``speed``)
    are RenderSpec's, with its Fields and rules; :attr:`output` is the RenderSpec of
    those fields alone.
    """

    transition: Transition = _field(
        "choice", "crossfade", choices=tuple(Transition),
        help="how each slide gives way to the next: cut, crossfade, fade (through black), "
             "slide-left or slide-up (the next slide pushes this one out)",
        label="Transition", group="Reel")
    transition_length: float = _field(
        "number", 0.5, minimum=0, maximum=5, unit="seconds",
        help="seconds each transition takes, centred on the boundary of its two slides",
        label="Transition length (seconds)", group="Reel", expert=True)
    length: float | str | None = _field(
        "number", None, optional=True, minimum=0, exclusive_minimum=True, unit="seconds",
        literals=("audio",),
        help='how long the reel lasts, shared by the slides without a length; "audio": '
             "as long as the track (default: the sum of the slides' lengths, 3 s each)",
        label="Length (seconds)", group="Reel")
    title: str | None = _field(
        "string", None, optional=True, pattern=TEXT_PATTERN, max_length=120,
        rule_text=_TEXT_RULE.format(n=120), help="text shown over the first slide",
        label="Title", group="Reel")
    focus: tuple[float, float] | str | None = _field(
        "point", None, optional=True, literals=(AUTO,),
        help="[x, y] every slide that sets no focus (nor a pan) closes in on, fractions "
             'of its image; "auto": each photo\'s faces, else its most salient region, '
             "else its centre. A slide without motion fields gets its default move "
             "(in, out, pans) aimed there, its faces kept in every frame",
        label="Zoom towards", group="Reel")
    orientation: str | None = _output_field("orientation")
    width: int | None = _output_field("width")
    height: int | None = _output_field("height")
    frame_rate: int = _output_field("frame_rate")
    fit: str = _output_field("fit")
    codec: str = _output_field("codec")
    speed: str = _output_field("speed")
    audio: Source | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name, field in REEL_FIELDS.items():
            object.__setattr__(self, name, field.check(getattr(self, name)))
        object.__setattr__(self, "transition", Transition(self.transition))
        if self.length == "audio" and self.audio is None:
            raise SpecError("length", '"audio" needs an audio track', self.length)
        _ = self.output  # the output fields' joint rules
        if self.title is not None:
            from .text import check_drawable

            check_drawable("title", self.title)

    @property
    def output(self) -> RenderSpec:
        """The output fields as a RenderSpec (its rules: width with height, not with
        orientation, ...)."""
        return RenderSpec(**{name: getattr(self, name) for name in OUTPUT_FIELDS})

    @classmethod
    def from_request(cls, request: Mapping[str, Any], audio: Source | None = None) -> ReelSpec:
        """The spec of a request's reel fields (others ignored, defaults filled in)."""
        return cls(audio=audio, **{name: request[name] for name in REEL_FIELDS
                                   if request.get(name) is not None})


#: The fields of ReelSpec, by name, in declaration order (the output fields are
#: RenderSpec's own).
REEL_FIELDS: dict[str, Field] = {
    f.name: dataclasses.replace(f.metadata["zoomreel"], name=f.name)
    for f in dataclasses.fields(ReelSpec) if "zoomreel" in f.metadata
}
