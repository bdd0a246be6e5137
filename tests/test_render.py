"""render_video end to end: decode the MP4 with PyAV and compare with the reference."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest
from decoded import luma_frames, top_level_boxes, y_plane
from imagegen import luma, photo_like, psnr, reference_frame, text
from PIL import Image

from zoomreel import RenderSpec, render_video
from zoomreel.camera import frame_rect
from zoomreel.canvas import fit_canvas
from zoomreel.errors import ImageError, RenderCancelled, RenderError

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "photo.png"
    image = photo_like(1200, 800, seed=7)
    # some hard edges too, so the encoder has work to do
    image.paste(text(400, 200), (400, 300))
    image.save(path)
    return image, path


@pytest.fixture(scope="module")
def rendered(source, tmp_path_factory):
    image, path = source
    spec = RenderSpec(length=2, frame_rate=15, zoom_speed=40, width=480, height=270)
    out = tmp_path_factory.mktemp("out") / "zoom.mp4"
    calls = []
    result = render_video(path, out, spec, progress=lambda d, t: calls.append((d, t)))
    return spec, out, result, calls


def test_result_describes_the_file(rendered):
    spec, out, result, calls = rendered
    assert result.path == os.fspath(out)
    assert result.frames == 30 and result.duration == 2.0
    assert (result.width, result.height, result.frame_rate) == (480, 270, 15)
    assert result.size_bytes == os.path.getsize(out) > 0
    assert calls == [(n, 30) for n in range(1, 31)]
    assert not [p for p in os.listdir(out.parent) if p.endswith(".part")]


def test_stream_properties(rendered):
    spec, out, _, _ = rendered
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        assert ctx.name == "h264"
        assert ctx.pix_fmt == "yuv420p"
        assert (ctx.width, ctx.height) == (480, 270)
        assert stream.average_rate == 15
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)  # BT.709
        assert ctx.color_range == 1  # limited (MPEG)
        frames = list(container.decode(stream))
    assert len(frames) == spec.total_frames
    assert [f.pts * f.time_base * 15 for f in frames] == list(range(30))
    assert container.format.name.startswith("mov,mp4")


def test_index_is_at_the_front(rendered):
    _, out, _, _ = rendered
    boxes = top_level_boxes(out)
    assert b"moov" in boxes and b"mdat" in boxes
    assert boxes.index(b"moov") < boxes.index(b"mdat")


def test_every_encoded_frame_is_close_to_the_exact_reference(source, rendered):
    image, _ = source
    spec, out, _, _ = rendered
    with av.open(str(out)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            box = frame_rect(n, spec, image.width, image.height)
            reference = luma(reference_frame(image, box, (spec.width, spec.height)))
            assert psnr(y_plane(frame), reference) >= 30.0, n


def test_the_zoom_moves(rendered):
    """A frame-to-frame check that could fail: later frames show less of the image."""
    _, out, _, _ = rendered
    with av.open(str(out)) as container:
        frames = [y_plane(f).astype(float) for f in container.decode(video=0)]
    assert psnr(frames[0], frames[-1]) < 25.0


def test_bad_image_leaves_no_file(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageError):
        render_video(bad, tmp_path / "out.mp4", RenderSpec(length=1, width=128, height=128))
    assert os.listdir(tmp_path) == ["bad.jpg"]


def test_cancel_leaves_no_partial_file_and_keeps_an_old_one(source, tmp_path):
    _, path = source
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous video")
    seen = []

    def cancel() -> bool:
        return len(seen) >= 5

    with pytest.raises(RenderCancelled):
        render_video(
            path,
            out,
            RenderSpec(length=4, frame_rate=15, width=256, height=144),
            progress=lambda d, t: seen.append(d),
            cancel=cancel,
        )
    assert out.read_bytes() == b"previous video"
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


def test_bytes_source_and_portrait_output(source, tmp_path):
    image, path = source
    spec = RenderSpec(length=1, frame_rate=15, zoom_speed=0, width=144, height=256)
    result = render_video(path.read_bytes(), tmp_path / "p.mp4", spec)
    with av.open(result.path) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (144, 256)
    box = frame_rect(0, spec, image.width, image.height)
    assert psnr(y_plane(frame), luma(reference_frame(image, box, (144, 256)))) >= 30.0


def test_encoder_options_reach_x264(source, tmp_path):
    """x264_params are applied: without CABAC the same frames need more bits."""
    _, path = source
    sizes = {}
    for params in ("cabac=1:deblock=0,0", "cabac=0"):
        spec = RenderSpec(length=1, frame_rate=15, width=320, height=180, x264_params=params)
        sizes[params] = render_video(path, tmp_path / "x.mp4", spec).size_bytes
    assert sizes["cabac=0"] > sizes["cabac=1:deblock=0,0"] * 1.05


def test_output_folder_that_does_not_exist_is_a_render_error(source, tmp_path):
    _, path = source
    with pytest.raises(RenderError, match="Cannot write the video"):
        render_video(
            path, tmp_path / "missing" / "out.mp4", RenderSpec(length=1, width=128, height=128)
        )


def test_a_full_disk_is_a_render_error_and_leaves_nothing(source, tmp_path):
    """A real write failure: RLIMIT_FSIZE makes the kernel refuse writes past 64 KiB."""
    import resource
    import signal

    _, path = source
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(RenderError):
            render_video(path, tmp_path / "big.mp4",
                         RenderSpec(length=4, frame_rate=30, width=640, height=360, crf=10))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert os.listdir(tmp_path) == []


#: The exact path's filter for each resampler: Pillow's resize with it over the frame's box.
_EXACT = {"bilinear": Image.Resampling.BILINEAR, "catmull-rom": Image.Resampling.BICUBIC}


@pytest.mark.parametrize("fit", ["cover", "contain", "contain-blur"])
@pytest.mark.parametrize("resampler", sorted(_EXACT))
def test_every_frame_the_encoder_gets_is_the_exact_path(resampler, fit, tmp_path):
    """Every frame render_video hands its encoder, read back losslessly (x264 at qp 0 keeps
    the YUV planes bit for bit), is within 38 dB luma PSNR of Pillow's resize of the path's
    box over the image (cover) or over the canvas render_video builds (contain modes)."""
    image = photo_like(900, 600, seed=5)
    path = tmp_path / "photo.png"
    image.save(path)
    size = (320, 180)
    spec = RenderSpec(length=1, frame_rate=15, zoom_speed=60, width=size[0], height=size[1],
                      fit=fit, resampler=resampler, preset="ultrafast", crf=0,
                      x264_params="qp=0")
    render_video(path, tmp_path / "out.mp4", spec)
    canvas = Image.fromarray(fit_canvas(np.asarray(image), fit, *size,
                                        background=spec.background,
                                        max_zoom=max(spec.zoom_keyframes)))
    frames = luma_frames(tmp_path / "out.mp4")
    assert len(frames) == spec.total_frames
    for n, frame in enumerate(frames):
        box = frame_rect(n, spec, canvas.width, canvas.height)
        want = luma(canvas.resize(size, _EXACT[resampler], box=box))
        assert psnr(frame, want) >= 38.0, (n, psnr(frame, want))
