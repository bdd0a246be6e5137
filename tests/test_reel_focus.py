"""focus "auto" in reels: the default moves aimed at each photo's subject, its faces
kept in every frame the slide is on screen (transitions included)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from imagegen import luma, psnr, reference_frame
from PIL import Image, ImageDraw

from zoomreel import ReelSpec, RenderSpec, Slide, render_reel
from zoomreel.errors import SpecError
from zoomreel.reel import aimed_move, plan_reel, reel_planes, slide_rect
from zoomreel.reelspec import default_motion
from zoomreel.subject import FocusBy, find_subject

pytestmark = pytest.mark.unit

SIZE = (320, 180)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _person(width: int, height: int, side: int, at: tuple[int, int]) -> Image.Image:
    """The astronaut (a photo of a person in scikit-image's wheel), as in test_subject."""
    data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    canvas = Image.new("RGB", (width, height), (90, 110, 90))
    canvas.paste(Image.fromarray(data.astronaut()).resize((side, side)), at)
    return canvas


def _disc(width: int, height: int, centre: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    x, y = centre
    ImageDraw.Draw(image).ellipse((x - 50, y - 50, x + 50, y + 50), fill=(30, 30, 30))
    return image


def _holds(rect: tuple[float, float, float, float], box: tuple[float, ...]) -> bool:
    eps = 1e-6
    return (rect[0] - eps <= box[0] and rect[1] - eps <= box[1]
            and box[2] <= rect[2] + eps and box[3] <= rect[3] + eps)


def test_moves_aimed_at_a_point_end_on_it_and_never_repeat() -> None:
    point = (0.5, 0.6)
    moves = [default_motion(i, point) for i in range(12)]
    for i, move in enumerate(moves):
        assert move.get("focus", move.get("end_focus")) == point, i
        assert move != moves[i - 1], i
    assert moves[0]["start_zoom"] < moves[0]["end_zoom"]  # in
    assert moves[2]["start_zoom"] > moves[2]["end_zoom"]  # out
    assert moves[1]["start_focus"][0] < point[0] < moves[3]["start_focus"][0]  # pans
    # near the left edge the pan right comes from the right instead (it still ends there)
    assert default_motion(1, (0.1, 0.5))["start_focus"] == pytest.approx((0.5, 0.5))


def test_the_reels_focus_is_each_slides_without_one() -> None:
    reel = ReelSpec(focus="auto", width=320, height=180)
    slides = [Slide(b"a"), Slide(b"b", focus=[0.2, 0.3]), Slide(b"c", zoom_speed=20),
              Slide(b"d", start_focus=[0.1, 0.1], end_focus=[0.9, 0.9])]
    specs = plan_reel(slides, reel).specs
    assert specs[0].focus == "auto" and slides[0].moves_by_default
    assert specs[1].focus_keyframes[1] == (0.2, 0.3)  # its own point: a move aimed there
    assert specs[1].start_zoom is not None and specs[1].zoom_speed is None
    assert specs[2].focus == "auto" and specs[2].zoom_speed == 20
    assert specs[3].focus is None and specs[3].start_focus == (0.1, 0.1)  # a pan: its own
    assert ReelSpec(focus=[0.25, 0.75]).focus == (0.25, 0.75)
    with pytest.raises(SpecError, match="focus"):
        ReelSpec(focus="faces")


def test_a_reel_of_people_keeps_each_face_in_every_frame(tmp_path: Path) -> None:
    images = [_person(720, 1280, 700, (10, 20)),  # portrait photo, head at the top
              _person(1600, 700, 680, (900, 10)),  # person on the right
              _person(1280, 960, 900, (300, 40)),  # a large face: zooms capped
              _person(1280, 960, 600, (40, 300)),  # bottom left
              _person(1280, 960, 700, (560, 240))]
    slides = [Slide(_png(image), length=1.5) for image in images]
    reel = ReelSpec(focus="auto", width=SIZE[0], height=SIZE[1], frame_rate=15,
                    transition_length=0.6)
    result = render_reel(slides, tmp_path / "reel.mp4", reel)
    assert result.slides == 5 and len(result.focus_used) == 5
    plan = plan_reel(slides, reel)
    specs = plan.sized(*SIZE)
    aimed = []
    for i, (image, used) in enumerate(zip(images, result.focus_used, strict=True)):
        assert used is not None and used.by == FocusBy.FACES and used.faces_box, i
        w, h = image.size
        spec = aimed_move(i, plan.timeline.shown(i), specs[i], used, w, h, SIZE)
        x0, y0, x1, y1 = used.faces_box
        box = (x0 * w, y0 * h, x1 * w, y1 * h)
        shown = plan.timeline.shown(i)
        assert shown.start < 0 or i == 0  # the run-on into the transitions is checked too
        for k in shown:
            assert _holds(slide_rect(k, spec, w, h, SIZE), box), (i, k)
        assert spec.focus_keyframes[1] == pytest.approx((used.x, used.y))
        aimed.append(spec)
        if i == 0:  # the control: the centre's move cuts this face
            plain = plan_reel(slides, dataclasses.replace(reel, focus=None)).sized(*SIZE)[0]
            assert not all(_holds(slide_rect(k, plain, w, h, SIZE), box) for k in shown)
    # the frames the reel drew are those of the aimed moves: the middle of each slide
    middles = [s + c // 2 for s, c in zip(plan.timeline.starts, plan.timeline.counts,
                                          strict=True)]
    for i, n in enumerate(middles):
        y, _, _ = next(reel_planes(slides, reel, range(n, n + 1)))
        w, h = images[i].size
        rect = slide_rect(n - plan.timeline.starts[i], aimed[i], w, h, SIZE)
        assert psnr(y, luma(reference_frame(images[i], rect, SIZE))) >= 30.0, i


@pytest.mark.parametrize("where", ["slide", "reel"])
def test_a_slide_without_motion_zooms_towards_its_subject(where: str) -> None:
    image = _disc(800, 600, (600, 150))  # found by saliency: no OpenCV needed
    slide = Slide(_png(image), focus="auto") if where == "slide" else Slide(_png(image))
    reel = ReelSpec(width=SIZE[0], height=SIZE[1], frame_rate=15, length=1,
                    focus=None if where == "slide" else "auto")
    planes = [y for y, _, _ in reel_planes([slide], reel)]
    plan = plan_reel([slide], reel)
    spec = plan.specs[0]
    assert spec.focus == "auto" and spec.zoom_keyframes == (1.04, 1.2)  # slide 0: in
    last = plan.timeline.counts[0] - 1
    towards = (600, 150)
    first_rect = slide_rect(0, _resolved(spec, towards, image.size), *image.size, SIZE)
    last_rect = slide_rect(last, _resolved(spec, towards, image.size), *image.size, SIZE)
    assert last_rect[2] - last_rect[0] < first_rect[2] - first_rect[0]  # closer
    # the last frame shows the crop around the disc, not the centred one
    shown = psnr(planes[-1], luma(reference_frame(image, last_rect, SIZE)))
    w = last_rect[2] - last_rect[0]
    h = last_rect[3] - last_rect[1]
    centred = (400 - w / 2, 300 - h / 2, 400 + w / 2, 300 + h / 2)
    assert shown >= 30.0
    assert psnr(planes[-1], luma(reference_frame(image, centred, SIZE))) < shown - 5


def _resolved(spec: RenderSpec, point: tuple[int, int], size: tuple[int, int]) -> RenderSpec:
    """The spec aimed at ``point`` (pixels), within the saliency map's precision."""
    subject = find_subject(np.asarray(Image.new("L", size, 128)))  # any: replaced below
    subject = subject._replace(x=point[0] / size[0], y=point[1] / size[1])
    return aimed_move(0, range(10), spec, subject, *size, SIZE)
