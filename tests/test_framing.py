"""Motion, framing and orientation end to end: render, decode with PyAV, compare every
frame with the exact reference written from CONTRACT.md (tests/reference.py)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from decoded import luma_frames
from imagegen import luma, photo_like, psnr, reference_frame, text
from PIL import Image
from reference import contract_rect

from zoomreel import RenderSpec, render_video
from zoomreel.canvas import BLUR_DARKEN

pytestmark = pytest.mark.unit

SMALL = dict(length=1, frame_rate=15)


def rgb_frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image.Image, Path]:
    image = photo_like(900, 600, seed=3)
    image.paste(text(300, 150), (300, 220))
    path = tmp_path_factory.mktemp("framing") / "photo.png"
    image.save(path)
    return image, path


PATHS = {
    "documented zoom": {},
    "zoom out": dict(zoom_speed=40, direction="out"),
    "keyframes, constant speed": dict(start_zoom=1.2, end_zoom=2.5, curve="constant"),
    "pan with easing": dict(start_focus=[0.15, 0.3], end_focus=[0.85, 0.7], start_zoom=1.8,
                            end_zoom=1.8, easing="ease-in-out"),
    "ping-pong twice": dict(zoom_speed=60, loop="ping-pong", cycles=2),
    "focus in a corner": dict(zoom_speed=80, focus=[0.0, 1.0], easing="ease-in"),
}


@pytest.mark.parametrize("kind", PATHS)
def test_each_path_kind_renders_the_exact_path(kind: str, photo, tmp_path: Path) -> None:
    image, path = photo
    spec = RenderSpec(width=320, height=180, **SMALL, **PATHS[kind])
    render_video(path, tmp_path / "out.mp4", spec)
    frames = luma_frames(tmp_path / "out.mp4")
    assert len(frames) == 15
    for n, frame in enumerate(frames):
        box = contract_rect(n, spec, image.width, image.height, (320, 180))
        assert psnr(frame, luma(reference_frame(image, box, (320, 180)))) >= 30.0, (kind, n)


def test_a_wrong_path_would_fail_the_comparison(photo, tmp_path: Path) -> None:
    """The control: the zoom-out video against the zoom-in reference scores low."""
    image, path = photo
    spec = RenderSpec(width=320, height=180, **SMALL, zoom_speed=40, direction="out")
    render_video(path, tmp_path / "out.mp4", spec)
    inward = RenderSpec(width=320, height=180, **SMALL, zoom_speed=40)
    first = luma_frames(tmp_path / "out.mp4")[0]
    box = contract_rect(0, inward, image.width, image.height, (320, 180))
    assert psnr(first, luma(reference_frame(image, box, (320, 180)))) < 25.0


@pytest.mark.parametrize("orientation, size", [
    ("landscape", (1920, 1080)), ("portrait", (1080, 1920)), ("square", (1080, 1080)),
    ("auto", (1920, 1080)),  # the 3:2 photo is nearest 16:9
])
def test_each_orientation_gives_its_size(orientation: str, size, photo, tmp_path) -> None:
    image, path = photo
    spec = RenderSpec(length=0.2, frame_rate=15, zoom_speed=10, orientation=orientation)
    result = render_video(path, tmp_path / "o.mp4", spec)
    assert (result.width, result.height) == size
    frames = luma_frames(tmp_path / "o.mp4")
    assert frames[0].shape == (size[1], size[0])
    box = contract_rect(2, spec, image.width, image.height, size)
    assert psnr(frames[2], luma(reference_frame(image, box, size))) >= 30.0


def test_explicit_width_and_height(photo, tmp_path: Path) -> None:
    _, path = photo
    result = render_video(path, tmp_path / "o.mp4",
                          RenderSpec(length=0.2, frame_rate=15, width=200, height=356))
    assert (result.width, result.height) == (200, 356)
    assert luma_frames(tmp_path / "o.mp4")[0].shape == (356, 200)


def fit_box(image_w: int, image_h: int, out_w: int, out_h: int) -> tuple[float, ...]:
    """Where the whole image sits in the output when it is resized to fit."""
    scale = min(out_w / image_w, out_h / image_h)
    w, h = image_w * scale, image_h * scale
    return ((out_w - w) / 2, (out_h - h) / 2, (out_w + w) / 2, (out_h + h) / 2)


@pytest.mark.parametrize("fit", ["contain", "contain-blur"])
@pytest.mark.parametrize("size", [(320, 180), (180, 320)])
def test_contain_shows_the_whole_image_resized_to_fit(fit, size, photo, tmp_path) -> None:
    image, path = photo  # 3:2: bars at the sides of 16:9, above and below 9:16
    spec = RenderSpec(**SMALL, zoom_speed=0, fit=fit, width=size[0], height=size[1],
                      background="#2080c0")
    render_video(path, tmp_path / "c.mp4", spec)
    frames = rgb_frames_of(tmp_path / "c.mp4")
    x0, y0, x1, y1 = fit_box(image.width, image.height, *size)
    inner = (int(np.ceil(x0)) + 1, int(np.ceil(y0)) + 1, int(x1) - 1, int(y1) - 1)
    expected = image.resize((round(x1 - x0), round(y1 - y0)), Image.Resampling.BILINEAR)
    frame = frames[-1]
    part = frame[inner[1]:inner[3], inner[0]:inner[2]]
    want = np.asarray(expected)[inner[1] - round(y0):inner[3] - round(y0),
                                inner[0] - round(x0):inner[2] - round(x0)]
    assert psnr(luma(part), luma(want)) >= 28.0
    # the bars, two pixels clear of the image's edge (chroma is half size, and the edge
    # pixels mix image and bar)
    left, right = max(0, int(x0) - 2), int(np.ceil(x1)) + 2
    top, bottom = max(0, int(y0) - 2), int(np.ceil(y1)) + 2
    bars = np.concatenate([frame[:, :left].reshape(-1, 3), frame[:, right:].reshape(-1, 3),
                           frame[:top].reshape(-1, 3), frame[bottom:].reshape(-1, 3)])
    assert len(bars) > 1000
    if fit == "contain":  # flat bars of the background colour
        off = np.abs(bars.astype(int) - (0x20, 0x80, 0xC0)).max(axis=1)
        assert np.median(off) <= 4 and np.percentile(off, 99) <= 10  # encoding noise only
    else:  # the image, blurred and darkened, behind it
        assert bars.std(axis=0).mean() > 3  # not a flat colour
        assert bars.mean() < np.asarray(image).mean() * (BLUR_DARKEN + 0.2)


def test_contain_zooms_over_the_canvas(photo, tmp_path: Path) -> None:
    """Zooming in on a contained image: the bars leave the frame as the path says."""
    image, path = photo
    spec = RenderSpec(**SMALL, start_zoom=1, end_zoom=1.5, fit="contain", width=180,
                      height=320, background="#ffffff")
    render_video(path, tmp_path / "z.mp4", spec)
    frames = rgb_frames_of(tmp_path / "z.mp4")
    # canvas 900 x 1600 (the 3:2 image with white bars above and below), the path over it
    canvas = Image.new("RGB", (900, 1600), (255, 255, 255))
    canvas.paste(image, (0, 500))
    for n in (0, 7, 14):
        box = contract_rect(n, spec, 900, 1600, (180, 320))
        want = luma(reference_frame(canvas, box, (180, 320)))
        assert psnr(luma(frames[n]), want) >= 30.0, n


def test_transparent_pixels_take_the_background(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    rgba.paste((250, 250, 250, 255), (100, 75, 300, 225))
    rgba.save(tmp_path / "a.png")
    spec = RenderSpec(length=0.2, frame_rate=15, zoom_speed=0, width=320, height=240,
                      background=[200, 30, 30])
    render_video(tmp_path / "a.png", tmp_path / "a.mp4", spec)
    corner = rgb_frames_of(tmp_path / "a.mp4")[0][5:20, 5:20].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - (200, 30, 30)).max() < 12
