"""Reels: the timing, the rules of the fields, the transition kernels, and frames that are
render_video's own (pre-encode, exactly) or the blend of two of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from decoded import luma_frames
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegen import encode, photo_like, psnr

from zoomreel import ReelSpec, RenderSpec, Slide, Transition, join_videos, render_reel, render_video
from zoomreel.compose import mix, mix_level, push_left, push_up, weight_of
from zoomreel.errors import ImageError, SpecError
from zoomreel.reel import plan_reel, reel_planes, slide_rect
from zoomreel.reelspec import default_motion
from zoomreel.render import _prepare
from zoomreel.timeline import Timeline

pytestmark = pytest.mark.unit

SIZE = {"width": 256, "height": 144, "frame_rate": 15}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (w, h) in enumerate([(640, 400), (500, 500), (400, 600)]):
        path = folder / f"p{i}.png"
        path.write_bytes(encode(photo_like(w, h, seed=i), "PNG"))
        paths.append(path)
    return paths


def own_planes(source: Path, spec: RenderSpec, k: int) -> tuple[np.ndarray, ...]:
    """Slide frame k as render_video's kernel makes it (before encoding)."""
    pyramid, width, height, spec, _ = _prepare(source, spec)
    pyramid.prepare(max_scale=pyramid.width / width)
    y = np.empty((height, width), np.uint8)
    u = np.empty((height // 2, width // 2), np.uint8)
    v = np.empty_like(u)
    pyramid.render(slide_rect(k, spec, pyramid.width, pyramid.height, (width, height)), y, u, v)
    return y, u, v


# -- timing --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.one_of(st.none(), st.floats(0.1, 20)), min_size=1, max_size=12),
       rate=st.sampled_from([15, 24, 30, 60]), fade=st.floats(0, 5),
       total=st.one_of(st.none(), st.floats(1, 120)))
def test_the_timeline_keeps_the_contract(lengths: list[float | None], rate: int,
                                         fade: float, total: float | None) -> None:
    try:
        tl = Timeline.build(lengths, rate, length=total, transition_seconds=fade)
    except SpecError as exc:  # a length the given slides already exceed, or differ from
        assert exc.field == "length" and total is not None
        return
    # the reel lasts the sum of its slides
    assert tl.total_frames == sum(tl.counts) == tl.starts[-1] + tl.counts[-1]
    for i, seconds in enumerate(lengths):
        if seconds is not None:
            assert tl.counts[i] == round(seconds * rate) and tl.lengths[i] == seconds
        else:
            assert tl.counts[i] == round(tl.lengths[i] * rate)
    shares = [tl.counts[i] for i, s in enumerate(lengths) if s is None]
    if shares:  # equal shares, in whole frames
        assert max(shares) - min(shares) <= 1
        if total is None:
            assert set(shares) == {round(3 * rate)}
        else:
            assert tl.total_frames == round(total * rate)
    previous_end = 0
    for i, m in enumerate(tl.fades):
        span = tl.transition_frames(i)
        boundary = tl.starts[i + 1]
        # never longer than the shorter slide, centred on the boundary
        assert m <= min(tl.counts[i], tl.counts[i + 1], round(fade * rate))
        assert m == min(tl.counts[i], tl.counts[i + 1], round(fade * rate))
        assert span.start == boundary - m // 2 and span.stop - boundary == m - m // 2
        assert span.start >= previous_end  # transitions never overlap
        previous_end = span.stop
    for n in range(0, tl.total_frames, max(1, tl.total_frames // 50)):
        shot = tl.shot(n)
        assert n == tl.starts[shot.slide] + shot.frame
        if shot.incoming is not None:
            assert shot.incoming == shot.slide + 1
            assert n == tl.starts[shot.incoming] + shot.incoming_frame
            assert 0 < shot.progress < 1


def test_equal_shares_of_the_reel_length() -> None:
    tl = Timeline.build([None, 2.0, None], 30, length=10.1)
    assert tl.counts == (122, 60, 121)  # 303 frames, 243 shared in whole frames
    assert tl.lengths == (122 / 30, 2.0, 121 / 30)


def test_three_seconds_a_slide_by_default() -> None:
    tl = Timeline.build([None, None], 30, transition_seconds=0.5)
    assert tl.counts == (90, 90) and tl.fades == (15,)
    assert tl.transition_frames(0) == range(83, 98)


# -- the rules of the fields ----------------------------------------------------


@pytest.mark.parametrize(("slides", "reel", "needle"), [
    ([], {}, "slides: must hold at least one slide"),
    ([{}, {}, {"length": 0.01}], {}, "slides[2].length: is too short"),
    ([{}, {"zoom_speed": 5, "start_zoom": 2}], {}, "slides[1].start_zoom: cannot be given"),
    ([{"caption": "\U0001f600 party"}], {}, "slides[0].caption: has '\U0001f600'"),
    ([{"caption": "\u4e2d"}], {}, "slides[0].caption: has '\u4e2d'"),
    ([{"length": 2}, {"length": 2}], {"length": 5}, "length: must equal the sum"),
    ([{"length": 4}, {}], {"length": 4}, "length: must leave at least a frame"),
    ([{}], {"length": "audio"}, 'length: "audio" needs an audio track'),
    ([{}], {"title": "a\x00b"}, "title: must be text of at most 120 characters, without"),
    ([{}], {"transition": "wipe"}, "transition: must be one of cut, crossfade, fade"),
    ([{}], {"transition_length": 9}, "transition_length: must be a number of seconds from 0"),
    ([{}], {"width": 640, "orientation": "portrait"}, "width: cannot be given with orientation"),
])
def test_bad_fields_are_refused_naming_the_field_and_index(
        photos: list[Path], slides: list[dict[str, object]], reel: dict[str, object],
        needle: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan_reel([Slide.from_request(photos[0], s, i) for i, s in enumerate(slides)],
                  ReelSpec(**reel))  # type: ignore[arg-type]
    assert needle in str(caught.value)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"zoom_speed": 500}, "slides[3].zoom_speed: must be a number from 0 to 100"),
    ({"caption": "tab\there"}, "slides[3].caption: must be text"),
    ({"image_url": "x"}, "slides[3].image_url: is not a field of a slide"),
    ({"length": -1}, "slides[3].length: must be a number of seconds greater than 0"),
])
def test_a_slide_from_a_request_names_its_index(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(SpecError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        Slide.from_request(b"", fields, 3)


def test_a_slide_that_is_not_an_image_is_named(photos: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "not.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=r"^slides\[1\]: "):
        render_reel([Slide(photos[0]), Slide(bad)], tmp_path / "out.mp4", ReelSpec(**SIZE))
    assert not (tmp_path / "out.mp4").exists()


def test_default_moves_vary_and_never_repeat_in_a_row() -> None:
    moves = [default_motion(i) for i in range(20)]
    assert all(a != b for a, b in zip(moves, moves[1:], strict=False))
    assert len({repr(m) for m in moves}) >= 4
    assert default_motion(7) == default_motion(7)


# -- the kernels against NumPy ---------------------------------------------------


def planes(seed: int, shape: tuple[int, int] = (37, 53)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape, dtype=np.uint8),
            rng.integers(0, 256, shape, dtype=np.uint8))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), w=st.floats(0, 1))
def test_mix_is_the_weighted_sum_within_one_code_value(seed: int, w: float) -> None:
    a, b = planes(seed)
    out = np.empty_like(a)
    mix(a, b, weight_of(w), out)
    exact = a * (1 - w) + b.astype(np.float64) * w
    assert np.abs(out - exact).max() <= 1.0
    mix(a, b, weight_of(w), a)  # in place, as the reel does
    assert np.array_equal(a, out)


def test_mix_level_fades_to_black() -> None:
    a, _ = planes(1)
    out = np.empty_like(a)
    mix_level(a, 16, weight_of(1.0), out)
    assert (out == 16).all()
    mix_level(a, 16, weight_of(0.25), out)
    assert np.abs(out - (a * 0.75 + 16 * 0.25)).max() <= 1.0


def test_push_left_and_up_move_whole_columns_and_rows() -> None:
    a, b = planes(2)
    out = a.copy()
    push_left(out, b, 10, out)  # in place
    assert np.array_equal(out, np.concatenate([a[:, 10:], b[:, :10]], axis=1))
    out = a.copy()
    push_up(out, b, 7, out)
    assert np.array_equal(out, np.concatenate([a[7:], b[:7]], axis=0))


# -- frames before encoding ------------------------------------------------------


def test_slide_frames_are_render_videos_own(photos: list[Path]) -> None:
    slides = [Slide(photos[0], length=2, zoom_speed=10),
              Slide(photos[1], length=1.5, start_zoom=1.3, end_zoom=1, easing="ease-in-out"),
              Slide(photos[2])]
    reel = ReelSpec(transition="crossfade", transition_length=0.6, **SIZE)
    plan = plan_reel(slides, reel)
    specs = plan.sized(256, 144)
    tl = plan.timeline
    for i, k in [(0, 3), (0, 20), (1, 11), (2, 30), (2, tl.counts[2] - 1)]:
        n = tl.starts[i] + k
        assert tl.shot(n).incoming is None
        mine = next(reel_planes(slides, reel, range(n, n + 1)))
        theirs = own_planes(photos[i], specs[i], k)
        for p, q in zip(mine, theirs, strict=True):
            assert np.array_equal(p, q), (i, k)
    # the same spec render_video would be given for that slide: its fields, its length
    assert specs[1].length == 1.5 and specs[1].easing == "ease-in-out"
    assert specs[2].length == 3.0 and specs[2].start_zoom == default_motion(2)["start_zoom"]


@pytest.mark.parametrize("kind", [Transition.CROSSFADE, Transition.FADE,
                                  Transition.SLIDE_LEFT, Transition.SLIDE_UP])
def test_transition_frames_are_made_of_both_slides_exact_frames(
        photos: list[Path], kind: Transition) -> None:
    slides = [Slide(photos[0], length=1, zoom_speed=20), Slide(photos[1], length=1)]
    reel = ReelSpec(transition=kind, transition_length=0.6, **SIZE)
    plan = plan_reel(slides, reel)
    specs = plan.sized(256, 144)
    span = plan.timeline.transition_frames(0)
    assert len(span) == 9 and span.start == 15 - 4
    frames = list(reel_planes(slides, reel, span))
    for j, (n, got) in enumerate(zip(span, frames, strict=True)):
        shot = plan.timeline.shot(n)
        a = own_planes(photos[0], specs[0], shot.frame)  # past its end for n >= 15
        b = own_planes(photos[1], specs[1], shot.incoming_frame)  # before its start
        w = (j + 0.5) / 9
        for plane, pa, pb in zip(got, a, b, strict=True):
            fa, fb = pa.astype(np.float64), pb.astype(np.float64)
            if kind == Transition.CROSSFADE:
                assert np.abs(plane - (fa * (1 - w) + fb * w)).max() <= 1.0
            elif kind == Transition.FADE:
                black = 16.0 if plane is got[0] else 128.0
                ref = (fa + (black - fa) * 2 * w) if w < 0.5 else (fb + (black - fb) * 2 * (1 - w))
                assert np.abs(plane - ref).max() <= 1.0
            else:
                axis = 1 if kind == Transition.SLIDE_LEFT else 0
                full = 256 if axis else 144
                shift = round(w * full / 2) * 2 * plane.shape[axis] // full
                ref = np.concatenate([np.take(pa, range(shift, pa.shape[axis]), axis),
                                      np.take(pb, range(shift), axis)], axis)
                assert np.array_equal(plane, ref)


def test_each_slide_keeps_moving_through_a_transition(photos: list[Path]) -> None:
    def widths(**motion: object) -> list[float]:
        spec = plan_reel([Slide(photos[0], length=1, **motion)],  # type: ignore[arg-type]
                         ReelSpec(**SIZE)).sized(256, 144)[0]
        return [(b := slide_rect(k, spec, 640, 400, (256, 144)))[2] - b[0]
                for k in range(-3, 18)]

    moving = widths(start_zoom=1.1, end_zoom=1.3)  # 15 frames of its own, 3 either side
    assert all(p > q for p, q in zip(moving, moving[1:], strict=False))
    cover = 640.0  # a 16:10 image in a 16:9 frame: all its width
    held = widths(zoom_speed=20)  # from zoom 1: nothing wider to show before its start
    assert held[:4] == pytest.approx([cover] * 4)
    assert all(p > q for p, q in zip(held[3:], held[4:], strict=False))


def test_a_part_that_starts_inside_a_transition_equals_the_whole(photos: list[Path]) -> None:
    slides = [Slide(p, length=1) for p in photos]
    reel = ReelSpec(transition="slide-left", transition_length=0.6, **SIZE)
    whole = list(reel_planes(slides, reel))
    total = len(whole)
    cuts = [0, 13, 27, total]  # 13 and 27 fall inside the two transitions
    parts = [p for a, b in zip(cuts, cuts[1:], strict=False)
             for p in reel_planes(slides, reel, range(a, b))]
    assert len(parts) == total == 45
    for n, (p, q) in enumerate(zip(parts, whole, strict=True)):
        assert all(np.array_equal(x, y) for x, y in zip(p, q, strict=True)), n


def test_at_most_two_images_are_held(photos: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from zoomreel import reel as reel_module

    held: list[int] = []
    draw = reel_module._Composer.draw

    def counting(self: reel_module._Composer, n: int, *planes: np.ndarray) -> None:
        draw(self, n, *planes)
        held.append(len(self._images))

    monkeypatch.setattr(reel_module._Composer, "draw", counting)
    slides = [Slide(photos[i % 3], length=0.4) for i in range(8)]
    for _ in reel_planes(slides, ReelSpec(transition_length=0.2, **SIZE)):
        pass
    assert max(held) <= 2 and len(held) == 48


# -- files ----------------------------------------------------------------------


def test_a_reel_file_shows_render_videos_frames(photos: list[Path], tmp_path: Path) -> None:
    slides = [Slide(photos[0], length=2, zoom_speed=8), Slide(photos[1], length=2)]
    reel = ReelSpec(transition="crossfade", **SIZE)
    result = render_reel(slides, tmp_path / "reel.mp4", reel, poster=tmp_path / "reel.jpg")
    assert (result.frames, result.duration, result.width, result.height) == (60, 4.0, 256, 144)
    assert result.poster == str(tmp_path / "reel.jpg") and not result.audio
    specs = plan_reel(slides, reel).sized(256, 144)
    mine = luma_frames(tmp_path / "reel.mp4")
    assert len(mine) == 60
    for i in range(2):
        single = render_video(photos[i], tmp_path / f"s{i}.mp4", specs[i])
        theirs = luma_frames(single.path)
        for k in (5, 15, 25):  # mid-slide, far from the transition
            exact = own_planes(photos[i], specs[i], k)[0]
            assert psnr(mine[30 * i + k], exact) >= 38.0
            assert psnr(mine[30 * i + k], theirs[k]) >= 38.0


def test_parts_joined_make_the_whole_reel(photos: list[Path], tmp_path: Path) -> None:
    slides = [Slide(p, length=1) for p in photos]
    reel = ReelSpec(transition="crossfade", transition_length=0.6, **SIZE)
    render_reel(slides, tmp_path / "whole.mp4", reel)
    parts = []
    for n, frames in enumerate([range(0, 13), range(13, 45)]):  # cut inside a transition
        render_reel(slides, tmp_path / f"part{n}.mp4", reel, frames=frames)
        parts.append(tmp_path / f"part{n}.mp4")
    join_videos(parts, tmp_path / "joined.mp4", frame_rate=15, expected_frames=45)
    joined, whole = luma_frames(tmp_path / "joined.mp4"), luma_frames(tmp_path / "whole.mp4")
    assert len(joined) == len(whole) == 45
    assert min(psnr(a, b) for a, b in zip(joined, whole, strict=True)) >= 35.0


def test_a_cancelled_reel_leaves_no_file(photos: list[Path], tmp_path: Path) -> None:
    from zoomreel.errors import RenderCancelled

    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(RenderCancelled):
        render_reel([Slide(p, length=1) for p in photos], tmp_path / "r.mp4",
                    ReelSpec(**SIZE), cancel=cancel, poster=tmp_path / "r.jpg")
    assert not list(tmp_path.iterdir())


def test_render_video_writes_a_poster_when_asked(photos: list[Path], tmp_path: Path) -> None:
    from PIL import Image

    spec = RenderSpec(length=1, **SIZE)
    plain = render_video(photos[0], tmp_path / "a.mp4", spec)
    assert plain.poster is None and not list(tmp_path.glob("*.jpg"))
    result = render_video(photos[0], tmp_path / "b.mp4", spec, poster=tmp_path / "b.jpg")
    with Image.open(result.poster or "") as image:
        assert (image.format, image.size) == ("JPEG", (256, 144))
        frame = luma_frames(tmp_path / "b.mp4")[5]  # a third of 15 frames in
        grey = np.asarray(image.convert("RGB"), np.float64) @ [0.2126, 0.7152, 0.0722]
        assert psnr(16 + grey * 219 / 255, frame) >= 30.0
