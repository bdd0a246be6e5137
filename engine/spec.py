"""RenderSpec and the one table of request fields.

Every field a user can set (its type, range, default, help and the rule a bad value
breaks) is written once, here: the attributes of :class:`RenderSpec` carry a
:class:`~zoomreel.fields.Field` in their metadata, and the fields only a job has
(``image_url``, ``webhook_url``, ``id``) are in :data:`JOB_FIELDS`. The REST API's JSON
Schema and OpenAPI document, the job system's defaults and the CLI's options are all
derived from these, as attrs derives ``__init__`` and validation from one field list.
Rules that join fields (one form of a thing, not two) are in ``RenderSpec.__post_init__``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .fields import Field

if TYPE_CHECKING:
    from .subject import Box, Subject

__all__ = [
    "Field",
    "RenderSpec",
    "RENDER_FIELDS",
    "JOB_FIELDS",
    "REQUEST_FIELDS",
    "CENTRE",
    "AUTO",
    "PAGE_GROUPS",
    "ORIENTATIONS",
    "PRESETS",
    "MAX_SIDE",
    "MAX_SHORT_SIDE",
    "MIN_SIDE",
]

MIN_SIDE = 128
MAX_SIDE = 3840
MAX_SHORT_SIDE = 2160  # the largest outputs are 3840x2160 and 2160x3840
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)
#: Output sizes by orientation (``auto`` picks one of these from the image).
ORIENTATIONS = {"landscape": (1920, 1080), "portrait": (1080, 1920), "square": (1080, 1080)}
CENTRE = (0.5, 0.5)
#: ``focus: "auto"``: the image's subject (zoomreel.subject) picks the point.
AUTO = "auto"
#: The sections of the web page's "More options", in order (a new group goes last).
PAGE_GROUPS = ("Motion", "Framing", "Video file", "For automations")

# key=value pairs joined by ':' (x264's own syntax), nothing a shell or option parser
# could read as something else.
_X264_PARAMS = r"^([a-z0-9-]+=[A-Za-z0-9.,_-]+)(:[a-z0-9-]+=[A-Za-z0-9.,_-]+)*$"


def _field(kind: str, default: Any, *, optional: bool = False, **options: Any) -> Any:
    """A RenderSpec attribute: its Field in the metadata. An optional field's attribute
    defaults to None ("not given"), and ``default`` is what then applies."""
    return dataclasses.field(default=None if optional else default, metadata={
        "zoomreel": Field(kind, default, optional=optional, **options)})


@dataclass(frozen=True)
class RenderSpec:
    """The parameters of one render, validated when it is built.

    Defaults follow the documented service (length 5 s, 30 fps, zoom speed 3, a linear
    zoom into the centre) with an H.264 output of 1920x1080 for a wide image and
    1080x1920 for any other. Building a spec with a bad or
    conflicting value raises SpecError naming the field and the rule. Each attribute's
    range and help is its Field (``RENDER_FIELDS[name]``).

    A thing given in two forms is a conflict: ``zoom_speed``/``direction`` or
    ``start_zoom``/``end_zoom``; ``focus`` or ``start_focus``/``end_focus``;
    ``orientation`` or ``width``/``height``. Attributes of the form not used stay None;
    :attr:`zoom_keyframes`, :attr:`focus_keyframes` and :meth:`size_for` give what
    applies either way.

    ``max_pixels`` is checked from the image's header; Pillow's own limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, the host program's setting) still applies on top.
    """

    length: float = _field("number", 5.0, minimum=0, exclusive_minimum=True, unit="seconds",
                           help="video length in seconds",
                           label="Length (seconds)", group="Video file",
                           hint="how long the video is")
    frame_rate: int = _field("integer", 30, minimum=15, maximum=60, help="frames per second",
                             label="Frames per second", group="Video file", expert=True,
                             hint="30 suits most screens; 60 is smoother, twice the work")
    zoom_speed: float | None = _field(
        "number", 3.0, optional=True, minimum=0, maximum=100,
        help="zoom growth in percent per second (z = 1 + zoom_speed/100 * t)",
        label="Zoom speed (% per second)", group="Motion", expert=True,
        alternative="Zoom", form="Zoom by speed",
        hint="how much closer the picture gets each second: 3 is gentle, 20 is fast")
    direction: str | None = _field(
        "choice", "in", optional=True, choices=("in", "out"),
        help="with zoom_speed: zoom in (from 1 up) or out (the same path reversed)",
        label="Direction", control="segmented", choice_labels=("In", "Out"),
        group="Motion", expert=True, alternative="Zoom", form="Zoom by speed",
        hint="in: closer and closer; out: the same motion backwards")
    start_zoom: float | None = _field(
        "number", None, optional=True, minimum=1, maximum=1000,
        help="zoom of the first frame (instead of zoom_speed; the other end defaults to 1)",
        label="Zoom at the start", group="Motion", expert=True,
        alternative="Zoom", form="Zoom from … to …",
        hint="1 shows the whole picture, 2 twice as close")
    end_zoom: float | None = _field(
        "number", None, optional=True, minimum=1, maximum=1000,
        help="zoom of the last frame (instead of zoom_speed; the other end defaults to 1)",
        label="Zoom at the end", group="Motion", expert=True,
        alternative="Zoom", form="Zoom from … to …",
        hint="1 shows the whole picture, 2 twice as close")
    focus: tuple[float, float] | str | None = _field(
        "point", CENTRE, optional=True, literals=(AUTO,),
        help="[x, y] the zoom closes in on, fractions of the image (0.5, 0.5: the centre), "
             'or "auto": the faces, else the most salient region, else the centre '
             "(with fit cover, the crop keeps the faces in every frame)",
        label="Zoom towards", group="Motion", expert=True,
        alternative="Where it looks", form="One point",
        hint='click the image, or x, y from 0 to 1 (0.5, 0.5 is the centre); "auto": '
             "the faces, else what stands out")
    start_focus: tuple[float, float] | None = _field(
        "point", None, optional=True,
        help="focus of the first frame, for a pan (the other end defaults to the centre)",
        label="Pan from", group="Motion", expert=True,
        alternative="Where it looks", form="Pan from … to …",
        hint="where the video starts looking: x, y from 0 to 1")
    end_focus: tuple[float, float] | None = _field(
        "point", None, optional=True,
        help="focus of the last frame, for a pan (the other end defaults to the centre)",
        label="Pan to", group="Motion", expert=True,
        alternative="Where it looks", form="Pan from … to …",
        hint="where the video ends looking: x, y from 0 to 1")
    curve: str = _field(
        "choice", "linear", choices=("linear", "constant"),
        help="linear: the zoom grows evenly; constant: its apparent speed stays the same",
        label="Zoom growth", choice_labels=("Even", "Steady to the eye"),
        group="Motion", expert=True,
        hint="even: the zoom number grows by the same step each second; steady to the eye: "
             "it looks as fast at the end as at the start")
    easing: str = _field(
        "choice", "linear", choices=("linear", "ease-in", "ease-out", "ease-in-out"),
        help="how the motion starts and stops",
        label="Start and stop",
        choice_labels=("Steady", "Slow start", "Slow stop", "Slow start and stop"),
        group="Motion", expert=True)
    loop: str | None = _field(
        "choice", "none", optional=True, choices=("none", "ping-pong"),
        help="ping-pong: there and back again, cycles times",
        label="Repeat", control="segmented", choice_labels=("Once", "There and back"),
        group="Motion", expert=True,
        hint="there and back: the motion plays forwards, then backwards")
    cycles: int | None = _field(
        "integer", 1, optional=True, minimum=1, maximum=100,
        help="with loop ping-pong: how many times there and back",
        label="Times there and back", group="Motion", expert=True,
        hint='with Repeat "There and back"')
    fit: str = _field(
        "choice", "cover", choices=("cover", "contain", "contain-blur"),
        help="cover: crop to fill; contain: the whole image on bars of background; "
             "contain-blur: the whole image over a blurred, darkened copy of itself",
        label="Fit", group="Framing", expert=True,
        choice_labels=("Fill the frame (crop)", "Whole image on bars", "Whole image on a blur"),
        hint="fill crops the image to the video's shape; the other two show all of it")
    background: tuple[int, int, int] = _field(
        "colour", (0, 0, 0),
        help="colour of the bars (fit contain) and under transparent pixels",
        label="Bar colour", group="Framing", expert=True,
        hint="the bars of \"Whole image on bars\", and under transparent pixels")
    orientation: str | None = _field(
        "choice", None, optional=True,
        choices=("landscape", "portrait", "square", "auto"),
        help="landscape 1920x1080, portrait 1080x1920, square 1080x1080, "
             "or auto (the one nearest the image's shape); not given (and no width and "
             "height): landscape when the image is wider than tall, else portrait",
        label="Shape", control="segmented",
        choice_labels=("Landscape", "Portrait", "Square", "As the image"),
        group="Framing", alternative="Size", form="By shape",
        hint="1920×1080, 1080×1920, 1080×1080, or the one nearest the image's shape; "
             "none chosen: landscape for a wide image, else portrait")
    width: int | None = _field(
        "integer", 1920, optional=True, minimum=MIN_SIDE, maximum=MAX_SIDE, even=True,
        help="output width in pixels (instead of orientation)",
        label="Width (pixels)", group="Framing", expert=True,
        alternative="Size", form="Exact size", hint="an even number")
    height: int | None = _field(
        "integer", 1080, optional=True, minimum=MIN_SIDE, maximum=MAX_SIDE, even=True,
        help="output height in pixels (instead of orientation)",
        label="Height (pixels)", group="Framing", expert=True,
        alternative="Size", form="Exact size", hint="an even number")
    resampler: str = _field(
        "choice", "bilinear", choices=("bilinear", "catmull-rom"),
        help="bilinear: Pillow's bilinear resize; catmull-rom: its bicubic, sharper where "
             "the zoom magnifies the image",
        label="Sharper resampling (slower)", control="switch", group="Video file",
        expert=True, hint="bicubic instead of bilinear: crisper where the zoom magnifies")
    codec: str = _field(
        "choice", "h264", choices=("h264", "h265", "av1", "vp9"),
        help="h264, h265 and av1 in MP4; vp9 in WebM",
        label="Format", group="Video file", expert=True,
        choice_labels=("H.264 (MP4)", "H.265 (MP4)", "AV1 (MP4)", "VP9 (WebM)"),
        hint="H.264 plays everywhere")
    speed: str = _field(
        "choice", "balanced", choices=("fastest", "balanced", "smallest"),
        help="encoder trade-off: fastest render, balanced, or smallest file",
        label="Encoding", group="Video file", expert=True,
        choice_labels=("Fastest", "Balanced", "Smallest file"),
        hint="the quickest render, the smallest file, or between the two")
    crf: int | None = _field(
        "integer", None, optional=True, minimum=0, maximum=63, request=False,
        help="encoder quality, lower is better and bigger (default: from speed)")
    preset: str | None = _field(
        "choice", None, optional=True, choices=PRESETS, request=False,
        help="x264/x265 preset (default: from speed)")
    x264_params: str | None = _field(
        "string", None, optional=True, pattern=_X264_PARAMS, request=False,
        rule_text='must be "key=value" pairs joined by ":"',
        help='libx264 options over the preset, "key=value:key=value" (default: from speed)')
    max_pixels: int = _field("integer", 100_000_000, minimum=1, request=False, cli=False,
                             rule_text="must be a positive integer",
                             help="images with more pixels are refused before decoding")

    def __post_init__(self) -> None:
        for name, field in RENDER_FIELDS.items():
            object.__setattr__(self, name, field.check(getattr(self, name)))
        self._one_form("start_zoom", "end_zoom", ("zoom_speed", "direction"), 1.0,
                       {"zoom_speed": 3.0, "direction": "in"})
        self._one_form("start_focus", "end_focus", ("focus",), CENTRE, {"focus": CENTRE})
        self._one_form("width", "height", ("orientation",), None, {})
        if self.width is not None or self.height is not None:  # the other by default
            width, height = self.width or 1920, self.height or 1080
            self._set(width=width, height=height)
            if min(width, height) > MAX_SHORT_SIDE:
                raise SpecError("height", f"must be at most {MAX_SHORT_SIDE} when the width "
                                f"is over {MAX_SHORT_SIDE} (the largest outputs are "
                                "3840x2160 and 2160x3840)", height)
        if self.cycles is not None and self.loop != "ping-pong":
            raise SpecError("cycles", 'needs loop "ping-pong"', self.cycles)
        self._set(loop=self.loop or "none")
        if self.loop == "ping-pong":
            self._set(cycles=self.cycles or 1)
        self._encoder_fields_fit_the_codec()
        if self.total_frames < 1:
            raise SpecError(
                "length", "is too short to hold a single frame at this frame_rate", self.length
            )

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _one_form(self, first: str, second: str, others: tuple[str, ...], missing: Any,
                  defaults: dict[str, Any]) -> None:
        """``first``/``second`` or ``others``, never both; fill in the chosen form."""
        if getattr(self, first) is None and getattr(self, second) is None:
            self._set(**{k: v for k, v in defaults.items() if getattr(self, k) is None})
            return
        for other in others:
            if getattr(self, other) is not None:
                given = first if getattr(self, first) is not None else second
                raise SpecError(given, f"cannot be given with {other} (choose one of the two)",
                                getattr(self, given))
        if missing is not None:
            self._set(**{k: missing for k in (first, second) if getattr(self, k) is None})

    def _encoder_fields_fit_the_codec(self) -> None:
        if self.codec != "h264" and self.x264_params is not None:
            raise SpecError("x264_params", "is only for codec h264", self.x264_params)
        if self.codec in ("av1", "vp9") and self.preset is not None:
            raise SpecError("preset", "is only for codecs h264 and h265", self.preset)
        if self.codec in ("h264", "h265") and self.crf is not None and self.crf > 51:
            raise SpecError("crf", f"must be an integer from 0 to 51 for {self.codec}", self.crf)

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> RenderSpec:
        """The spec of a request's render fields (others ignored, defaults filled in)."""
        return cls(**{name: request[name] for name in RENDER_FIELDS
                      if RENDER_FIELDS[name].request and request.get(name) is not None})

    @property
    def total_frames(self) -> int:
        """Number of frames: round(length * frame_rate)."""
        return int(round(self.length * self.frame_rate))

    @property
    def zoom_keyframes(self) -> tuple[float, float]:
        """(z0, z1): the zoom of the path's start and end keyframes."""
        if self.zoom_speed is None:
            assert self.start_zoom is not None and self.end_zoom is not None
            return self.start_zoom, self.end_zoom
        far = 1.0 + self.zoom_speed / 100.0 * self.length
        return (1.0, far) if self.direction == "in" else (far, 1.0)

    @property
    def focus_keyframes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The focus (fractions of the image) of the path's start and end keyframes.

        Raises:
            ValueError: the focus is ``"auto"``, not yet resolved (:meth:`with_subject`).
        """
        if self.focus == AUTO:
            raise ValueError('focus "auto" is resolved against the image first '
                             "(RenderSpec.with_subject)")
        if self.focus is not None:
            assert not isinstance(self.focus, str)
            return self.focus, self.focus
        assert self.start_focus is not None and self.end_focus is not None
        return self.start_focus, self.end_focus

    def size_for(self, image_width: int, image_height: int) -> tuple[int, int]:
        """The output (width, height) for an image of this size (as shown: after its EXIF
        rotation). Neither an orientation nor a size given: landscape for an image wider
        than tall, else portrait (as the documented service)."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        orientation = self.orientation or (
            "landscape" if image_width > image_height else "portrait")
        if orientation == "auto":  # the nearest shape, judged on the log of aspect ratios
            ratio = image_width / image_height
            orientation = ("landscape" if ratio >= 4 / 3 else
                           "portrait" if ratio <= 3 / 4 else "square")
        return ORIENTATIONS[orientation]

    def with_subject(self, subject: Subject, path_w: float, path_h: float,
                     out_size: tuple[int, int], place: Box = (0.0, 0.0, 1.0, 1.0),
                     ) -> RenderSpec:
        """This spec with ``focus: "auto"`` resolved: the focus on the subject and, where
        it has faces, the zoom capped so that the box holding them fits every frame
        (the path centres on that box, so a frame it fits in holds it whole).

        Args:
            subject: the image's subject (:func:`zoomreel.subject.find_subject`).
            path_w, path_h: the size of what the path runs over (the image, or its canvas).
            out_size: the output size.
            place: where the image lies on that (x0, y0, x1, y1 in fractions of it; the
                whole of it for ``fit: cover``).

        Returns:
            ``self`` when the focus is not ``"auto"``, else a spec with a point focus.
        """
        if self.focus != AUTO:
            return self
        from .camera import cover_size

        px0, py0, px1, py1 = place

        def on_path(x: float, y: float) -> tuple[float, float]:
            return px0 + x * (px1 - px0), py0 + y * (py1 - py0)

        changes: dict[str, Any] = {"focus": on_path(subject.x, subject.y)}
        if subject.faces_box is not None:
            (x0, y0), (x1, y1) = on_path(*subject.faces_box[:2]), on_path(*subject.faces_box[2:])
            cw, ch = cover_size(path_w, path_h, *out_size)
            fits = min(cw / max((x1 - x0) * path_w, 1e-9), ch / max((y1 - y0) * path_h, 1e-9))
            z0, z1 = self.zoom_keyframes
            if max(z0, z1) > fits:  # closer than the faces allow: stop where they fit
                top = max(1.0, fits)
                changes.update(zoom_speed=None, direction=None, start_zoom=min(z0, top),
                               end_zoom=min(z1, top))
        return dataclasses.replace(self, **changes)

    def request_fields(self) -> dict[str, Any]:
        """The request fields of this spec (what a job records), as JSON values; building
        a spec from them gives this spec again."""
        return {name: f.to_json(getattr(self, name)) for name, f in RENDER_FIELDS.items()
                if f.request and getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Every attribute as plain JSON values."""
        return {name: f.to_json(getattr(self, name)) for name, f in RENDER_FIELDS.items()}


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
              help="http(s) URL of the image",
              label="Image URL", group="Image"),
        Field("url", name="webhook_url", max_length=2048, cli=False, empty="no webhook",
              help="POSTed the status answer when the job ends",
              label="Webhook URL", group="For automations", expert=True,
              hint="gets the job's status (a POST) when the video is done or fails"),
        Field("id", name="id", max_length=256, cli=False,
              rule_text="must be a string (at most 256 characters), an integer or null",
              help="your own id, echoed in answers",
              label="Your id", group="For automations", expert=True,
              hint="any text or number of yours, echoed in every answer about the job"),
    )
}

#: Every field of the REST request, in the order the API document lists them.
REQUEST_FIELDS: dict[str, Field] = {
    "image_url": JOB_FIELDS["image_url"],
    **{name: f for name, f in RENDER_FIELDS.items() if f.request},
    "webhook_url": JOB_FIELDS["webhook_url"],
    "id": JOB_FIELDS["id"],
}
