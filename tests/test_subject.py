"""focus "auto": the subject (faces, saliency, centre) and the framing that keeps it."""

from __future__ import annotations

import numpy as np
import pytest
from imagegen import encode
from PIL import Image, ImageDraw

from zoomreel import RenderSpec, render_video
from zoomreel.camera import camera_path
from zoomreel.errors import SpecError
from zoomreel.image import load_image, read_image
from zoomreel.subject import (
    MAX_COPY_PIXELS,
    FocusBy,
    Subject,
    _has_an_eye,
    find_subject,
    small_grey,
    subject_of,
)

pytestmark = pytest.mark.unit


def _astronaut() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    return Image.fromarray(data.astronaut())


def _person(width: int, height: int, side: int, at: tuple[int, int]) -> np.ndarray:
    """The astronaut (a photo of a person shipped in scikit-image's wheel), ``side``
    pixels wide, at ``at`` on a plain field of ``width`` x ``height``."""
    canvas = Image.new("RGB", (width, height), (90, 110, 90))
    canvas.paste(_astronaut().resize((side, side)), at)
    return np.asarray(canvas)


def _disc(background: np.ndarray, centre: tuple[int, int], value: int) -> np.ndarray:
    image = Image.fromarray(background)
    x, y = centre
    ImageDraw.Draw(image).ellipse((x - 50, y - 50, x + 50, y + 50), fill=value)
    return np.asarray(image)


def _faces_in_every_frame(image: np.ndarray, spec: RenderSpec) -> Subject:
    h, w = image.shape[:2]
    subject = find_subject(image)
    assert subject.by == FocusBy.FACES and subject.faces_box is not None
    out = spec.size_for(w, h)
    resolved = spec.with_subject(subject, w, h, out)
    x0, y0, x1, y1 = subject.faces_box
    box = (x0 * w, y0 * h, x1 * w, y1 * h)
    eps = 1e-6
    for n, (rx0, ry0, rx1, ry1) in enumerate(camera_path(resolved, w, h, out)):
        assert (rx0 - eps <= box[0] and ry0 - eps <= box[1] and box[2] <= rx1 + eps
                and box[3] <= ry1 + eps), f"frame {n} cuts the face: {box} not in {rx0, ry0}"
    return subject


def test_astronaut_face_is_found() -> None:
    subject = find_subject(np.asarray(_astronaut()))
    assert subject.by == FocusBy.FACES
    # her face is in the upper middle of the photo
    assert 0.3 < subject.x < 0.6 and 0.1 < subject.y < 0.35


def test_a_find_is_a_face_only_with_an_eye() -> None:
    """The check that turned down the face found in bark (tree-phone-exif6.jpg): her
    face's box holds an eye; a box as large on her suit, or on a flat field, does not."""
    grey = small_grey(np.asarray(_astronaut()))
    face = (0.34, 0.12, 0.53, 0.31)  # the cascade's box on the 512-pixel photo
    assert _has_an_eye(grey, face)
    assert not _has_an_eye(grey, (0.05, 0.55, 0.24, 0.74))
    assert not _has_an_eye(np.full((300, 300), 128, np.uint8), face)


def test_a_reduced_colour_copy_is_the_mean_of_its_channels() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 30, 90, 210
    grey = small_grey(image, max_pixels=600)
    assert grey.shape == (20, 30) and (grey == 110).all()


def test_portrait_photo_in_a_landscape_video_keeps_the_face() -> None:
    image = _person(720, 1280, 700, (10, 20))  # the head near the top
    subject = _faces_in_every_frame(image, RenderSpec(length=2, focus="auto",
                                                      orientation="landscape"))
    assert subject.y < 0.3
    # the centred crop would have cut it: the middle band starts below the face
    assert subject.faces_box is not None and subject.faces_box[1] * 1280 < (1280 - 405) / 2


def test_landscape_photo_in_a_portrait_video_keeps_the_face() -> None:
    image = _person(1600, 700, 680, (900, 10))  # the person on the right
    subject = _faces_in_every_frame(image, RenderSpec(length=2, focus="auto",
                                                      orientation="portrait"))
    assert subject.x > 0.6


def test_zoom_in_to_three_keeps_the_face() -> None:
    image = _person(1280, 960, 900, (300, 40))
    _faces_in_every_frame(image, RenderSpec(length=2, focus="auto", end_zoom=3))


def test_zoom_stops_where_the_faces_fit() -> None:
    subject = Subject(0.5, 0.5, FocusBy.FACES, (0.25, 0.25, 0.75, 0.75))
    spec = RenderSpec(focus="auto", end_zoom=5).with_subject(subject, 1000, 1000, (1080, 1080))
    assert spec.focus == (0.5, 0.5) and spec.zoom_keyframes == (1.0, 2.0)


def test_saliency_finds_an_object_on_a_plain_background() -> None:
    image = _disc(np.full((600, 800), 128, np.uint8), (600, 150), 30)
    subject = find_subject(image)
    assert subject.by == FocusBy.SALIENCY
    assert subject.x == pytest.approx(0.75, abs=0.05)
    assert subject.y == pytest.approx(0.25, abs=0.05)


def test_saliency_finds_an_object_on_a_textured_background() -> None:
    noise = (np.random.default_rng(1).random((600, 800)) * 80 + 90).astype(np.uint8)
    subject = find_subject(_disc(noise, (200, 400), 240))
    assert subject.by == FocusBy.SALIENCY
    assert subject.x == pytest.approx(0.25, abs=0.05)
    assert subject.y == pytest.approx(2 / 3, abs=0.05)


@pytest.mark.parametrize("image", [
    np.full((600, 800), 100, np.uint8),
    (np.random.default_rng(2).random((600, 800)) * 255).astype(np.uint8),
    np.tile(np.linspace(0, 255, 800), (600, 1)).astype(np.uint8),
], ids=["flat", "noise", "gradient"])
def test_the_centre_when_nothing_stands_out(image: np.ndarray) -> None:
    assert find_subject(image) == Subject(0.5, 0.5, FocusBy.CENTRE)


def test_focus_auto_is_a_field_value() -> None:
    spec = RenderSpec(focus="auto")
    assert spec.focus == "auto" and spec.request_fields()["focus"] == "auto"
    assert RenderSpec.from_request(spec.request_fields()) == spec
    with pytest.raises(SpecError, match='or "auto"'):
        RenderSpec(focus="faces")
    with pytest.raises(ValueError, match="resolved"):
        _ = spec.focus_keyframes


def test_a_point_focus_is_left_as_it_is() -> None:
    spec = RenderSpec(focus=(0.2, 0.3))
    assert spec.with_subject(Subject(0.9, 0.9, FocusBy.SALIENCY), 100, 100, (128, 128)) is spec


@pytest.mark.parametrize("fit", ["cover", "contain-blur"])
def test_render_reports_the_focus_used(tmp_path, fit: str) -> None:
    source = tmp_path / "disc.png"
    source.write_bytes(encode(Image.fromarray(
        _disc(np.full((300, 400), 128, np.uint8), (300, 75), 30)), "PNG"))
    result = render_video(source, tmp_path / "out.mp4",
                          RenderSpec(length=0.2, focus="auto", width=256, height=144, fit=fit))
    assert result.focus_used is not None
    assert result.focus_used.to_json() == {"x": pytest.approx(0.75, abs=0.05),
                                           "y": pytest.approx(0.25, abs=0.06),
                                           "by": "saliency"}
    assert render_video(source, tmp_path / "plain.mp4",
                        RenderSpec(length=0.2, width=256, height=144)).focus_used is None



def test_subject_of_a_large_jpeg_decodes_it_smaller_as_the_whole_decides() -> None:
    """subject_of drafts a JPEG (its DCT at 1/2 .. 1/8) no smaller than the copy the
    decision looks at: the same subject as on the whole decode, in the whole size, EXIF
    quarter turn included."""
    big = Image.new("RGB", (3200, 2400), (128, 128, 128))
    ImageDraw.Draw(big).ellipse((2200, 400, 2600, 800), fill=(20, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 2400x3200
    data = encode(big, "JPEG", quality=90, exif=exif.tobytes())
    subject, size = subject_of(data)
    assert size == (2400, 3200)
    whole = find_subject(load_image(data))
    assert subject.by == whole.by == FocusBy.SALIENCY
    assert (subject.x, subject.y) == pytest.approx((whole.x, whole.y), abs=0.04)
    assert (subject.x, subject.y) == pytest.approx((0.75, 0.75), abs=0.05)  # turned
    drafted = []
    read_image(data, lambda w, h: drafted.append((w, h)) or (lambda top, rows: None),
               draft_pixels=MAX_COPY_PIXELS)
    assert drafted == [(1200, 1600)]  # half of each side: 1.9 MP, a quarter would be 0.5
