"""The output codecs, their containers, and the encoder settings behind each ``speed``.

The settings were chosen by measurement on real photographs: ``balanced`` is the default,
``fastest`` trades file size for render time, ``smallest`` render time for file size.
h264's come from its own sweep (``python -m benchmarks.encoders``). h265's, av1's and
vp9's: 1920x1080, 30 fps, zoom speed 3, 2 s of the corpus's redpanda-foliage.jpg and
castle-facade.jpg, each render a fresh process (``benchmarks._render_once --settings``)
on 2 shared cores at load 6 to 10, so sizes, PSNR and peak RSS are firm and speeds only
roughly relative. Against h264 balanced as issue 8 set it (2.4 / 3.1 MB, 37.3 / 37.6 dB
min luma PSNR, ~250 MB): x265 veryfast crf 28 (low memory) 0.21 / 0.22 MB at 36.5 / 36.7 dB, 370 MB;
SVT-AV1 real-time preset 12 crf 36 0.54 / 0.59 MB at 38.6 / 39.2 dB, 290 MB, crf 40
0.36 / 0.39 MB at 37.4 / 37.9 dB; libvpx realtime cpu-used 8 crf 36 0.68 / 0.65 MB at
38.5 / 39.0 dB, 380 MB; vp9 good cpu-used 4 crf 36 0.36 / 0.34 MB at 40.1 / 40.8 dB,
~4x slower. The table by codec, speed and size: ``python -m benchmarks.codecs``,
benchmarks/README.md ("codecs"; the sweep's rounds in benchmarks/history/).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import RenderSpec

__all__ = ["Codec", "CODECS", "CONTENT_TYPES", "EncoderSettings", "content_type_of",
           "encoder_settings"]


@dataclass(frozen=True)
class EncoderSettings:
    """What the encoder is told: its quality, its preset (if it has presets) and options."""

    crf: float  # x264 and x265 take fractions
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
        audio: the FFmpeg encoder of a reel's track in this container (AAC in MP4,
            Opus in WebM), and its bit rate.
    """

    name: str
    encoder: str
    container: str
    extension: str
    content_type: str
    tag: str | None
    speeds: dict[str, EncoderSettings]
    audio: tuple[str, int] = ("aac", 160_000)


# h264, from benchmarks/history/ "Encoder settings on real photos" (issues 8 and 22),
# against the documented ffmpeg command (x264 medium crf 23). One B-frame is the largest
# gain (+1.7 dB at equal size); more B-frames and mbtree cost 25-60 MB each, so balanced
# stays at one. Issue 22 judged fidelity in SSIM as well as PSNR and spent the CPU left
# over against the 2.5x target: ref=3 (+0.2-0.3 dB at equal size, +12 MB), deblock=-1,-1
# (the synthetic photo +0.3 dB in both at 7% less size, no photo worse) and aq-mode=2
# (+0.2-0.5 dB SSIM). Then the macroblock tree over 8 frames (the command has it, over
# 40): it takes bits from what no later frame uses, such as the office photo's sensor
# noise (0.75x the size at the same crf) and not from the tree photo's leaves, so crf 21
# gives the tree photo the bits its SSIM needs (0.69x the command's size, +0.01 dB SSIM;
# at crf 22.5 without it 0.56x, -0.67 dB) at 0.93x on office. Its lookahead costs ~55 MB,
# paid by giving LLVM's pages back after the first frame (render.py).
_X264_BALANCED = ("bframes=1:subme=2:trellis=1:ref=3:deblock=-1,-1:aq-mode=2:"
                  "mbtree=1:rc-lookahead=8")
# x265's memory at 1080p: +245 MB with its defaults, +145 MB with one frame thread, no
# B-frames and a 2-frame lookahead (at some cost in file size per dB).
_X265_LOW_MEMORY = "log-level=error:frame-threads=1:bframes=0:rc-lookahead=2"
_VP9 = {"row-mt": "1", "lag-in-frames": "0", "b": "0"}

CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("h264", "libx264", "mp4", ".mp4", "video/mp4", None, {
        "fastest": EncoderSettings(25, "superfast", {"x264-params": "bframes=1"}),
        "balanced": EncoderSettings(21, "superfast", {"x264-params": _X264_BALANCED}),
        # 0.46-0.62x ffmpeg's size at -1.5..+0.1 dB PSNR, 293-307 MB peak RSS (issue 22)
        "smallest": EncoderSettings(22, "veryfast"),
    }),
    # hvc1, not hev1: Apple's players open only HEVC tagged hvc1.
    Codec("h265", "libx265", "mp4", ".mp4", "video/mp4", "hvc1", {
        "fastest": EncoderSettings(28, "ultrafast", {"x265-params": _X265_LOW_MEMORY}),
        "balanced": EncoderSettings(26, "veryfast", {"x265-params": _X265_LOW_MEMORY}),
        "smallest": EncoderSettings(30, "fast", {"x265-params": "log-level=error"}),
    }),
    # SVT-AV1's real-time mode: no lookahead, a fraction of the memory (1080p: +70 to
    # +110 MB instead of +380 MB) and no "non-RTC M10+" warning; preset via the option,
    # since RenderSpec.preset names x264/x265 presets.
    Codec("av1", "libsvtav1", "mp4", ".mp4", "video/mp4", None, {
        "fastest": EncoderSettings(40, None, {"preset": "13", "svtav1-params": "lp=2:rtc=1"}),
        "balanced": EncoderSettings(38, None, {"preset": "12", "svtav1-params": "lp=2:rtc=1"}),
        "smallest": EncoderSettings(40, None, {"preset": "8", "svtav1-params": "lp=2:rtc=1"}),
    }),
    # lag-in-frames=0: the same file here, ~130 MB less memory at 1080p. b=0 with crf:
    # constant quality, no bitrate cap.
    Codec("vp9", "libvpx-vp9", "webm", ".webm", "video/webm", None, {
        "fastest": EncoderSettings(40, None, {"deadline": "realtime", "cpu-used": "8",
                                              **_VP9}),
        "balanced": EncoderSettings(36, None, {"deadline": "realtime", "cpu-used": "6",
                                               **_VP9}),
        "smallest": EncoderSettings(38, None, {"deadline": "good", "cpu-used": "4", **_VP9}),
    }, audio=("libopus", 128_000)),
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
