"""The output codecs, their containers, and the encoder settings behind each ``speed``.

The settings were chosen by measurement on real photographs (``python -m
benchmarks.encoders``, see benchmarks/README.md): ``balanced`` is the default, ``fastest``
trades file size for render time, ``smallest`` render time for file size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import RenderSpec

__all__ = ["Codec", "CODECS", "CONTENT_TYPES", "EncoderSettings", "content_type_of",
           "encoder_settings"]


@dataclass(frozen=True)
class EncoderSettings:
    """What the encoder is told: its quality, its preset (if it has presets) and options."""

    crf: int
    preset: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Codec:
    """One output codec.

    Attributes:
        name: the API's name (``codec`` field).
        encoder: the FFmpeg encoder PyAV opens.
        container: the FFmpeg muxer.
        extension: the file name's extension.
        content_type: the download's media type.
        tag: the codec tag written into the container (None: the muxer's default).
        speeds: encoder settings for each ``speed``.
    """

    name: str
    encoder: str
    container: str
    extension: str
    content_type: str
    tag: str | None
    speeds: dict[str, EncoderSettings]


_X264_BALANCED = "cabac=1:deblock=0,0"

CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("h264", "libx264", "mp4", ".mp4", "video/mp4", None, {
        "fastest": EncoderSettings(26, "ultrafast", {"x264-params": _X264_BALANCED}),
        "balanced": EncoderSettings(26, "ultrafast", {"x264-params": _X264_BALANCED}),
        "smallest": EncoderSettings(21, "faster"),
    }),
    # hvc1, not hev1: Apple's players open only HEVC tagged hvc1.
    Codec("h265", "libx265", "mp4", ".mp4", "video/mp4", "hvc1", {
        "fastest": EncoderSettings(30, "ultrafast", {"x265-params": "log-level=error"}),
        "balanced": EncoderSettings(28, "superfast", {"x265-params": "log-level=error"}),
        "smallest": EncoderSettings(26, "fast", {"x265-params": "log-level=error"}),
    }),
    Codec("av1", "libsvtav1", "mp4", ".mp4", "video/mp4", None, {
        "fastest": EncoderSettings(40, None, {"preset": "12", "svtav1-params": "lp=2"}),
        "balanced": EncoderSettings(36, None, {"preset": "10", "svtav1-params": "lp=2"}),
        "smallest": EncoderSettings(34, None, {"preset": "8", "svtav1-params": "lp=2"}),
    }),
    Codec("vp9", "libvpx-vp9", "webm", ".webm", "video/webm", None, {
        "fastest": EncoderSettings(40, None, {"deadline": "realtime", "cpu-used": "8",
                                              "row-mt": "1", "b": "0"}),
        "balanced": EncoderSettings(36, None, {"deadline": "realtime", "cpu-used": "7",
                                               "row-mt": "1", "b": "0"}),
        "smallest": EncoderSettings(34, None, {"deadline": "good", "cpu-used": "4",
                                               "row-mt": "1", "b": "0"}),
    }),
)}

#: The media type of each extension a codec writes: ``{".mp4": "video/mp4", ".webm": ...}``.
CONTENT_TYPES: dict[str, str] = {c.extension: c.content_type for c in CODECS.values()}


def content_type_of(filename: str) -> str | None:
    """The media type of the video ``filename`` by its extension; None if no codec writes
    files with that extension."""
    _, dot, ext = filename.rpartition(".")
    return CONTENT_TYPES.get("." + ext) if dot else None


def encoder_settings(spec: RenderSpec) -> EncoderSettings:
    """The settings for ``spec``: its speed's, with the expert fields (crf, preset,
    x264_params) taking precedence where given."""
    base = CODECS[spec.codec].speeds[spec.speed]
    options = dict(base.options)
    if spec.x264_params is not None:
        if spec.x264_params:
            options["x264-params"] = spec.x264_params
        else:
            options.pop("x264-params", None)
    return EncoderSettings(
        crf=base.crf if spec.crf is None else spec.crf,
        preset=base.preset if spec.preset is None else spec.preset,
        options=options,
    )
