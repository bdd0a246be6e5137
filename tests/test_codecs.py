"""Every codec at every speed, end to end: render a short job, decode the file with PyAV,
check the container, the stream and every frame against the exact reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from decoded import top_level_boxes, y_plane
from imagegen import luma, photo_like, psnr, reference_frame
from PIL import Image

from zoomreel import RenderSpec, render_video
from zoomreel.camera import frame_rect
from zoomreel.codecs import CODECS, CONTENT_TYPES, content_type_of, encoder_settings

pytestmark = pytest.mark.unit

SPEEDS = ("fastest", "balanced", "smallest")
#: What each codec must decode as: (demuxer, canonical codec name, codec tag).
EXPECTED = {
    "h264": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "avc1"),
    "h265": ("mov,mp4,m4a,3gp,3g2,mj2", "hevc", "hvc1"),  # hvc1: Apple players need it
    "av1": ("mov,mp4,m4a,3gp,3g2,mj2", "av1", "av01"),
    "vp9": ("matroska,webm", "vp9", None),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image.Image, Path]:
    path = tmp_path_factory.mktemp("src") / "photo.png"
    image = photo_like(800, 520, seed=11)
    image.save(path)
    return image, path


@pytest.fixture(scope="module", params=[(c, s) for c in CODECS for s in SPEEDS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def rendered(request: pytest.FixtureRequest, source: tuple[Image.Image, Path],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Render 1 s at 15 fps, 320x180, and decode everything the tests look at."""
    image, path = source
    codec, speed = request.param
    spec = RenderSpec(length=1, frame_rate=15, zoom_speed=30, width=320, height=180,
                      codec=codec, speed=speed)
    out = tmp_path_factory.mktemp(f"{codec}-{speed}") / f"zoom{CODECS[codec].extension}"
    result = render_video(path, out, spec)
    scores, times, sizes = [], [], set()
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = {
            "format": container.format.name,
            "codec": ctx.codec.canonical_name,
            "tag": stream.codec_tag.strip("\x00") or None,  # WebM: no tag (zeros)
            "colour": (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range),
            "pix_fmt": ctx.pix_fmt,
        }
        for n, frame in enumerate(container.decode(stream)):
            box = frame_rect(n, spec, image.width, image.height)
            reference = luma(reference_frame(image, box, (spec.width, spec.height)))
            scores.append(psnr(y_plane(frame), reference))
            times.append(frame.pts * frame.time_base)
            sizes.add((frame.width, frame.height))
    return {"spec": spec, "out": out, "result": result, "psnr": scores, "times": times,
            "sizes": sizes, "head": out.read_bytes()[:64], **info}


def test_container_codec_and_tag(rendered: dict[str, Any]) -> None:
    spec = rendered["spec"]
    demuxer, codec, tag = EXPECTED[spec.codec]
    assert (rendered["format"], rendered["codec"], rendered["tag"]) == (demuxer, codec, tag)
    assert rendered["out"].suffix == CODECS[spec.codec].extension
    if demuxer.startswith("matroska"):
        assert rendered["head"].startswith(b"\x1a\x45\xdf\xa3") and b"webm" in rendered["head"]
    else:  # an MP4 with its index at the front (+faststart)
        assert rendered["head"][4:8] == b"ftyp"
        assert b"moov" in top_level_boxes(rendered["out"])[:3]


def test_frames_size_and_timing(rendered: dict[str, Any]) -> None:
    spec, result = rendered["spec"], rendered["result"]
    assert len(rendered["psnr"]) == result.frames == spec.total_frames == 15
    assert rendered["sizes"] == {(320, 180)} and rendered["pix_fmt"] == "yuv420p"
    # WebM counts in milliseconds, MP4 in ticks of the frame rate: within half a frame.
    ticks = [float(t) * spec.frame_rate for t in rendered["times"]]
    assert ticks == pytest.approx(list(range(15)), abs=0.5)
    assert result.size_bytes == rendered["out"].stat().st_size > 0


def test_tagged_bt709_limited(rendered: dict[str, Any]) -> None:
    assert rendered["colour"] == (1, 1, 1, 1)  # BT.709 primaries, transfer, matrix; MPEG


def test_every_frame_is_close_to_the_exact_reference(rendered: dict[str, Any]) -> None:
    worst = min(rendered["psnr"])
    assert worst >= 30.0, (rendered["spec"].codec, rendered["spec"].speed, rendered["psnr"])


def test_speeds_are_different_settings() -> None:
    for codec in CODECS.values():
        settings = {speed: codec.speeds[speed] for speed in SPEEDS}
        assert set(codec.speeds) == set(SPEEDS)
        # fastest and smallest must not be the same encoder set-up (h264's fastest may
        # equal balanced: balanced is already x264's fastest preset)
        assert settings["fastest"] != settings["smallest"], codec.name


def test_expert_fields_override_the_speed() -> None:
    spec = RenderSpec(codec="h265", speed="smallest", crf=20, preset="veryfast")
    settings = encoder_settings(spec)
    assert (settings.crf, settings.preset) == (20, "veryfast")
    assert settings.options == CODECS["h265"].speeds["smallest"].options


def test_content_types_by_extension() -> None:
    assert CONTENT_TYPES == {".mp4": "video/mp4", ".webm": "video/webm"}
    assert content_type_of("video_20260101_000000_abcdef12.webm") == "video/webm"
    assert content_type_of("a.b.mp4") == "video/mp4"
    assert content_type_of("video.mkv") is None
    assert content_type_of("mp4") is None


