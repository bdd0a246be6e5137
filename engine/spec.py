"""RenderSpec: what one render makes, validated when it is built."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import SpecError

__all__ = ["RenderSpec", "PRESETS", "MAX_SIDE", "MIN_SIDE"]

MIN_SIDE = 128
MAX_SIDE = 3840
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)


# key=value pairs joined by ':' (x264's own syntax), nothing a shell or option parser
# could read as something else.
_X264_PARAMS = re.compile(r"^([a-z0-9-]+=[A-Za-z0-9.,_-]+)(:[a-z0-9-]+=[A-Za-z0-9.,_-]+)*$")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RenderSpec:
    """The parameters of one render.

    Defaults follow the documented service (length 5 s, 30 fps, zoom speed 3) with a
    1920x1080 output. Building a spec with a bad value raises SpecError naming the field.

    Attributes:
        length: video length in seconds, > 0.
        frame_rate: frames per second, integer 15..60.
        zoom_speed: zoom growth in percent per second, 0..100 (z = 1 + zoom_speed/100 * t).
        width: output width, even, 128..3840.
        height: output height, even, 128..3840.
        crf: x264 constant rate factor, 0..51 (lower is better and bigger).
        preset: x264 preset name.
        x264_params: libx264 options over the preset, "key=value:key=value" ("" for none).

    The encoder defaults were chosen by measurement (``python -m benchmarks.bench``,
    see benchmarks/README.md): ``ultrafast`` is the only preset that renders 1080p more
    than 3x faster than the documented service's ffmpeg command within 300 MB on two
    cores; ``cabac=1:deblock=0,0`` gives back the entropy coder and the deblocking
    filter that ultrafast turns off, for ~25% smaller files and no blocking at about
    the same speed; crf 26 then lands below the ffmpeg command's file size at
    >= 37 dB from the exact reference.
        background: RGB colour that transparent pixels are composited onto.
        max_pixels: images with more pixels than this are refused before decoding.
    """

    length: float = 5.0
    frame_rate: int = 30
    zoom_speed: float = 3.0
    width: int = 1920
    height: int = 1080
    crf: int = 26
    preset: str = "ultrafast"
    x264_params: str = "cabac=1:deblock=0,0"
    background: tuple[int, int, int] = (0, 0, 0)
    max_pixels: int = 100_000_000

    def __post_init__(self) -> None:
        if not _is_number(self.length) or self.length <= 0:
            raise SpecError("length", "must be a number of seconds greater than 0", self.length)
        if not _is_int(self.frame_rate) or not 15 <= self.frame_rate <= 60:
            raise SpecError("frame_rate", "must be an integer from 15 to 60", self.frame_rate)
        if not _is_number(self.zoom_speed) or not 0 <= self.zoom_speed <= 100:
            raise SpecError("zoom_speed", "must be a number from 0 to 100", self.zoom_speed)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or not MIN_SIDE <= value <= MAX_SIDE or value % 2:
                raise SpecError(
                    name, f"must be an even integer from {MIN_SIDE} to {MAX_SIDE}", value
                )
        if not _is_int(self.crf) or not 0 <= self.crf <= 51:
            raise SpecError("crf", "must be an integer from 0 to 51", self.crf)
        if self.preset not in PRESETS:
            raise SpecError("preset", "must be one of " + ", ".join(PRESETS), self.preset)
        if not isinstance(self.x264_params, str) or (
            self.x264_params and not _X264_PARAMS.match(self.x264_params)
        ):
            raise SpecError(
                "x264_params", 'must be "key=value" pairs joined by ":"', self.x264_params
            )
        bg = self.background
        if (
            not isinstance(bg, tuple | list)
            or len(bg) != 3
            or not all(_is_int(c) and 0 <= c <= 255 for c in bg)
        ):
            raise SpecError("background", "must be three integers from 0 to 255", bg)
        object.__setattr__(self, "background", tuple(bg))
        if not _is_int(self.max_pixels) or self.max_pixels < 1:
            raise SpecError("max_pixels", "must be a positive integer", self.max_pixels)
        if self.total_frames < 1:
            raise SpecError(
                "length", "is too short to hold a single frame at this frame_rate", self.length
            )

    @property
    def total_frames(self) -> int:
        """Number of frames: round(length * frame_rate)."""
        return int(round(self.length * self.frame_rate))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able values."""
        data = asdict(self)
        data["background"] = list(self.background)
        return data
