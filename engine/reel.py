"""render_reel: many photos, transitions, a track and words in one video.

Each slide's frames are made exactly as :func:`~zoomreel.render_video` makes that
image's with that slide's fields and length (the same camera path, pyramid and kernel);
the reel composes them on the YUV planes (zoomreel.compose), blends the title and
captions in (zoomreel.text), and streams the frames through the same ring into the same
encoder, with the track (zoomreel.audio) encoded beside them in step.

Memory is flat in the number of slides and in length: the images of at most two slides
are held at once (the two of a transition, or the one on screen and the next, decoded
ahead on a thread of its own), each as the YUV pyramid render_video uses.

Outside its own length (in the half of a transition it lends its neighbour) a slide's
path runs on at the speed of its first or last frame; where that would show more than
the whole image (a zoom below 1) the rectangle stops growing at the image's cover size.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import compose
from ._frames import poster_frame_of, stream_frames, write_poster
from .camera import Rect, cover_size, frame_rect
from .encoder import Encoder
from .errors import ImageError, SpecError
from .image import Source
from .pyramid import Pyramid
from .reelspec import ReelSpec, Slide, Transition, default_motion
from .spec import ORIENTATIONS, RenderSpec
from .subject import Subject
from .text import Overlay, check_drawable, layout
from .timeline import Shot, Timeline

__all__ = ["render_reel", "plan_reel", "reel_planes", "slide_rect", "aimed_move", "ReelPlan",
           "ReelResult"]

#: Limited-range black.
_BLACK_Y, _BLACK_C = 16, 128
#: Samples per second of the track (zoomreel.audio.RATE; that module loads with a track).
_RATE = 48_000
#: Seconds a caption or the title takes to fade in and out.
_TEXT_FADE = 0.25


@dataclass(frozen=True)
class ReelResult:
    """What a reel render made (``poster``: the JPEG's path, if one was asked for)."""

    path: str
    frames: int
    duration: float
    width: int
    height: int
    frame_rate: int
    size_bytes: int
    slides: int
    audio: bool
    poster: str | None = None
    #: Each slide's subject where its focus was ``"auto"`` (None for the others, and
    #: for slides a part of the reel (``frames``) did not show).
    focus_used: tuple[Subject | None, ...] = ()


@dataclass(frozen=True)
class ReelPlan:
    """A reel checked and timed, before anything is decoded or rendered.

    Attributes:
        slides: the slides.
        reel: the reel's fields.
        timeline: when each slide and transition is on screen.
        specs: each slide's RenderSpec (its motion over its length; the output size
            still the reel's fields, see :meth:`sized`).
    """

    slides: tuple[Slide, ...]
    reel: ReelSpec
    timeline: Timeline
    specs: tuple[RenderSpec, ...]

    @property
    def total_frames(self) -> int:
        """Frames of the whole reel."""
        return self.timeline.total_frames

    @property
    def duration(self) -> float:
        """Seconds of the whole reel."""
        return self.timeline.duration

    def size(self) -> tuple[int, int]:
        """The output (width, height): the reel's size or orientation, else as
        render_video would choose for the first slide's image (landscape when it is
        wider than tall, else portrait), read from its header.

        Raises:
            ImageError: the first slide's image cannot be read (``slides[0]: ...``).
        """
        output = self.reel.output
        if output.width is not None and output.height is not None:
            return output.width, output.height
        if output.orientation in ORIENTATIONS:
            return ORIENTATIONS[output.orientation]
        return output.size_for(*_shown_size(self.slides[0].source, 0))

    def sized(self, width: int, height: int) -> tuple[RenderSpec, ...]:
        """Each slide's RenderSpec at this output size."""
        return tuple(dataclasses.replace(s, orientation=None, width=width, height=height)
                     for s in self.specs)

    def frames_of(self, frames: range | None) -> range:
        """The frames to render; ValueError for a range that is not part of the reel."""
        total = self.total_frames
        if frames is None:
            return range(total)
        if frames.step != 1 or not 0 <= frames.start < frames.stop <= total:
            raise ValueError(f"frames must be a non-empty step-1 range inside 0..{total}, "
                             f"not {frames!r}")
        return frames


def plan_reel(slides: Sequence[Slide], reel: ReelSpec | None = None, *,
              audio_seconds: float | None = None) -> ReelPlan:
    """Check and time a reel without decoding its images.

    Args:
        slides: the slides, in order.
        reel: the reel's fields (default: ReelSpec()).
        audio_seconds: the track's duration, for ``length="audio"``; None: decoded
            from ``reel.audio`` when needed.

    Raises:
        SpecError: a rule broken, named with the slide's index (``slides[2].caption``).
        AudioError: ``length="audio"`` and the track cannot be decoded.
    """
    reel = reel or ReelSpec()
    slides = tuple(slides)
    for i, slide in enumerate(slides):
        if not isinstance(slide, Slide):
            raise SpecError(f"slides[{i}]", "must be a Slide", slide)
        if slide.caption is not None:
            check_drawable(f"slides[{i}].caption", slide.caption)
    if reel.length == "audio" and audio_seconds is None:
        from .audio import duration_of

        assert reel.audio is not None
        audio_seconds = duration_of(reel.audio)
    cut = reel.transition == Transition.CUT
    timeline = Timeline.build([s.length for s in slides], reel.frame_rate,
                              length=reel.length, audio_seconds=audio_seconds,
                              transition_seconds=0.0 if cut else reel.transition_length)
    output = reel.output
    specs = tuple(slide.render_spec(i, timeline.lengths[i], output, reel.focus)
                  for i, slide in enumerate(slides))
    return ReelPlan(slides, reel, timeline, specs)


def render_reel(
    slides: Sequence[Slide],
    out: str | os.PathLike[str],
    reel: ReelSpec | None = None,
    progress: Callable[[int, int], object] | None = None,
    cancel: Callable[[], bool] | None = None,
    frames: range | None = None,
    poster: str | os.PathLike[str] | None = None,
) -> ReelResult:
    """Render the slides as one video, with transitions, the track and the words.

    Args:
        slides: the slides, in order (at least one).
        out: output path (.mp4; .webm for codec vp9); written under a temporary name
            and renamed when complete.
        reel: transition, track, title, length and output fields (default: ReelSpec()).
        progress: called as ``progress(done_frames, total_frames)`` after each frame.
        cancel: polled before each frame; returning True stops the render.
        frames: render only these frames of the reel (a step-1 range inside
            ``0 .. plan_reel(...).total_frames``), as a file of its own starting with an
            IDR frame, video only: parts join with :func:`zoomreel.join_videos`. A part
            that starts or ends inside a transition renders both slides' frames there.
        poster: also write one frame (the middle of the first slide, where the title
            shows) as a JPEG here.

    Returns:
        A ReelResult describing the file.

    Raises:
        SpecError: a field out of range, named with its slide's index.
        ImageError: a slide's image cannot be decoded (``slides[2]: ...``).
        AudioError: the track cannot be decoded (``audio: ...``).
        RenderCancelled: ``cancel`` returned True; no output file is left.
        RenderError: the encoder failed.
    """
    plan = plan_reel(slides, reel)
    reel, timeline = plan.reel, plan.timeline
    frames = plan.frames_of(frames)
    width, height = plan.size()
    specs = plan.sized(width, height)
    track = None
    if reel.audio is not None and len(frames) == plan.total_frames:
        from .audio import Feed, Track

        track = Track(reel.audio, plan.duration)
    composer = _Composer(plan, specs, width, height, frames)
    feed = Feed(track) if track is not None else None

    def encoded(done: int) -> None:
        if feed is not None:
            sample = round((frames.start + done) * _RATE / reel.frame_rate)
            encoder.encode_audio(feed.until(sample))

    first = timeline.starts[0] + timeline.counts[0] // 2
    at = first if first in frames else poster_frame_of(frames)
    try:
        with Encoder.from_spec(out, specs[0], width, height,
                               audio_rate=None if track is None else _RATE) as encoder:
            image = stream_frames(encoder, frames, composer.draw, progress=progress,
                                  cancel=cancel, encoded=encoded,
                                  poster_frame=at if poster else None)
    finally:
        composer.close()
    poster_path = write_poster(image, poster) if poster and image is not None else None
    return ReelResult(
        path=os.fspath(out), frames=len(frames), duration=len(frames) / reel.frame_rate,
        width=width, height=height, frame_rate=reel.frame_rate,
        size_bytes=os.path.getsize(out), slides=len(plan.slides), audio=track is not None,
        poster=poster_path, focus_used=tuple(composer.subjects))


def reel_planes(slides: Sequence[Slide], reel: ReelSpec | None = None,
                frames: range | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """The Y, U and V planes of the reel's frames as render_reel gives them to the
    encoder (fresh arrays per frame): for tests and previews.

    Args:
        slides, reel: as :func:`render_reel`.
        frames: these frames only (default: all).
    """
    plan = plan_reel(slides, reel)
    frames = plan.frames_of(frames)
    width, height = plan.size()
    composer = _Composer(plan, plan.sized(width, height), width, height, frames)
    half = ((height + 1) // 2, (width + 1) // 2)
    try:
        for n in frames:
            y, u, v = (np.empty((height, width), np.uint8), np.empty(half, np.uint8),
                       np.empty(half, np.uint8))
            composer.draw(n, y, u, v)
            yield y, u, v
    finally:
        composer.close()


def _shown_size(source: Source, index: int) -> tuple[int, int]:
    """An image's (width, height) as shown (after its EXIF rotation), from its header."""
    import io

    from PIL import Image, UnidentifiedImageError

    from .image import FORMATS

    try:
        data = io.BytesIO(bytes(source)) if isinstance(
            source, bytes | bytearray | memoryview) else os.fspath(source)
        with Image.open(data, formats=FORMATS) as image:
            w, h = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # turned a quarter
                w, h = h, w
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError(f"slides[{index}]: the image cannot be read ({exc})") from None
    return w, h


def slide_rect(k: int, spec: RenderSpec, image_w: float, image_h: float,
               size: tuple[int, int]) -> Rect:
    """The rectangle of a slide's own frame ``k``: frame_rect inside its length; before
    and after it, the path run on at the speed of its first or last frame, never wider
    than the image's cover size."""
    n = spec.total_frames
    if 0 <= k < n or n < 2:
        return frame_rect(min(max(k, 0), n - 1), spec, image_w, image_h, size)
    edge, near, steps = (0, 1, -k) if k < 0 else (n - 1, n - 2, k - n + 1)
    a = frame_rect(edge, spec, image_w, image_h, size)
    b = frame_rect(near, spec, image_w, image_h, size)
    x0, y0, x1, y1 = (p + (p - q) * steps for p, q in zip(a, b, strict=True))
    cw, ch = cover_size(image_w, image_h, *size)
    w = min(max(x1 - x0, 1e-3 * cw), cw)
    h = w * ch / cw
    cx = min(max((x0 + x1) / 2, w / 2), image_w - w / 2)
    cy = min(max((y0 + y1) / 2, h / 2), image_h - h / 2)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


#: Halvings of a move that would cut a face, before it is left still.
_GENTLER = 6


def aimed_move(index: int, shown: range, spec: RenderSpec, subject: Subject,
               path_w: float, path_h: float, size: tuple[int, int],
               place: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
               ) -> RenderSpec:
    """Slide ``index``'s default move (:func:`~zoomreel.reelspec.default_motion`) aimed at
    its subject, faces kept in every frame it is on screen.

    With faces, the zoom stops where the box holding them fits the frame, a pan starts
    where that box is still in frame, and a move whose run-on through its transitions
    would still cut them is made gentler (halved towards standing still on the subject)
    until none does.

    Args:
        index: the slide's index (which move).
        shown: its own frames on screen (Timeline.shown).
        spec: its RenderSpec with ``focus: "auto"`` (for its length and output fields).
        subject: the image's subject.
        path_w, path_h, size, place: as RenderSpec.with_subject.
    """
    px0, py0, px1, py1 = place

    def on_path(x: float, y: float) -> tuple[float, float]:
        return px0 + x * (px1 - px0), py0 + y * (py1 - py0)

    move = default_motion(index, on_path(subject.x, subject.y))
    z0, z1 = move["start_zoom"], move["end_zoom"]
    f1: tuple[float, float] = move["end_focus"] if "end_focus" in move else move["focus"]
    f0: tuple[float, float] = move.get("start_focus", f1)
    box = None
    if subject.faces_box is not None:
        bx0, by0 = on_path(*subject.faces_box[:2])
        bx1, by1 = on_path(*subject.faces_box[2:])
        box = (bx0 * path_w, by0 * path_h, bx1 * path_w, by1 * path_h)
        cw, ch = cover_size(path_w, path_h, *size)
        top = max(1.0, min(cw / max(box[2] - box[0], 1e-9), ch / max(box[3] - box[1], 1e-9)))
        z0, z1 = min(z0, top), min(z1, top)
        # the start's centre: where a frame of that zoom still holds the box
        w, h = cw / z0, ch / z0
        f0 = (_between(f0[0] * path_w, box[2] - w / 2, box[0] + w / 2) / path_w,
              _between(f0[1] * path_h, box[3] - h / 2, box[1] + h / 2) / path_h)
    still = min(z0, z1)
    for gentler in [0.5 ** n for n in range(_GENTLER)] + [0.0]:
        fields = {"focus": None, "zoom_speed": None, "direction": None,
                  "start_zoom": still + (z0 - still) * gentler,
                  "end_zoom": still + (z1 - still) * gentler,
                  "start_focus": tuple(b + (a - b) * gentler for a, b in zip(f0, f1, strict=True)),
                  "end_focus": f1}
        aimed = dataclasses.replace(spec, **fields)
        if box is None or all(_holds(slide_rect(k, aimed, path_w, path_h, size), box)
                              for k in shown):
            return aimed
    return aimed  # standing still on the subject, at the move's smaller zoom


def _between(value: float, low: float, high: float) -> float:
    """``value`` within low..high (their middle where high < low)."""
    return (low + high) / 2 if high < low else min(max(value, low), high)


def _holds(rect: Rect, box: tuple[float, float, float, float]) -> bool:
    eps = 1e-6
    return (rect[0] - eps <= box[0] and rect[1] - eps <= box[1] and box[2] <= rect[2] + eps
            and box[3] <= rect[3] + eps)


class _Composer:
    """Draws the reel's frames: holds the slides' images (two at most, the next one
    decoded ahead), the scratch planes of a transition and the texts' overlays."""

    def __init__(self, plan: ReelPlan, specs: tuple[RenderSpec, ...], width: int,
                 height: int, frames: range) -> None:
        self.plan = plan
        self.specs = list(specs)  # a slide's focus "auto" is resolved when it is loaded
        self.subjects: list[Subject | None] = [None] * len(specs)
        self.size = (width, height)
        self.needed = plan.timeline.slides_in(frames)
        self.frames = frames
        self._has_words = bool(plan.reel.title) or any(
            plan.slides[i].caption for i in self.needed)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zoomreel-slide")
        self._images: dict[int, Future[Pyramid]] = {}
        self._texts: dict[tuple[str, int], Overlay | None] = {}
        half = ((height + 1) // 2, (width + 1) // 2)
        self._scratch = (np.empty((height, width), np.uint8), np.empty(half, np.uint8),
                         np.empty(half, np.uint8))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._images.clear()

    # -- images -------------------------------------------------------------------

    def _load(self, i: int) -> Pyramid:
        from .render import _prepare, _with_subject

        resolve = _with_subject
        if self.plan.slides[i].moves_by_default:
            resolve = functools.partial(aimed_move, i, self.plan.timeline.shown(i))
        try:
            pyramid, _, _, self.specs[i], self.subjects[i] = _prepare(
                self.plan.slides[i].source, self.specs[i], resolve)
        except ImageError as exc:
            raise type(exc)(f"slides[{i}]: {exc}") from None
        # a path run on before its start may zoom out to the cover size
        cw, _ = cover_size(pyramid.width, pyramid.height, *self.size)
        pyramid.prepare(max_scale=cw / self.size[0])
        return pyramid

    def _image(self, i: int) -> Pyramid:
        if i not in self._images:
            self._images[i] = self._pool.submit(self._load, i)
        return self._images[i].result()

    def _keep(self, shot: Shot) -> None:
        """Let go of the slides before this shot's; on a single slide, decode the next."""
        for i in [i for i in self._images if i < shot.slide]:
            del self._images[i]
        ahead = shot.slide + 1
        if shot.incoming is None and ahead in self.needed and ahead not in self._images:
            self._images[ahead] = self._pool.submit(self._load, ahead)

    def _render(self, i: int, k: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        image = self._image(i)
        spec = self.specs[i]
        image.render(slide_rect(k, spec, image.width, image.height, self.size), y, u, v,
                     spec.resampler == "catmull-rom")

    # -- frames -------------------------------------------------------------------

    def draw(self, n: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if n == self.frames.start:
            self._load_kernels(y, u, v)
        shot = self.plan.timeline.shot(n)
        self._keep(shot)
        if shot.incoming is None:
            self._render(shot.slide, shot.frame, y, u, v)
        else:
            self._transition(shot, y, u, v)
        self._words(n, shot, y, u, v)

    def _load_kernels(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Load the kernels this reel's transitions and words run, for these planes'
        types, by running each where it changes nothing (a weight or shift of 0, an
        empty overlay): the first frame's draw is when the render's kernels are loaded,
        after which LLVM's pages go back (kernel.page_out_compiler). A kernel loaded at
        the first transition would bring them back for the rest of the render."""
        kind = self.plan.reel.transition
        planes = ((y, self._scratch[0]), (u, self._scratch[1]), (v, self._scratch[2]))
        for a, b in planes:
            if kind == Transition.FADE:
                compose.mix_level(a, _BLACK_Y, 0, a)
            elif kind == Transition.CROSSFADE:
                compose.mix(a, b, 0, a)
            elif kind == Transition.SLIDE_UP:
                compose.push_up(a, b, 0, a)
            elif kind != Transition.CUT:
                compose.push_left(a, b, 0, a)
            if self._has_words:
                nothing = np.zeros((1, 1), np.float32)
                compose.overlay(a, 0, 0, nothing, nothing, 0.0)

    def _transition(self, shot: Shot, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        assert shot.incoming is not None
        p = shot.progress
        kind = self.plan.reel.transition
        if kind == Transition.FADE:  # out to black, then in from it
            if p < 0.5:
                self._render(shot.slide, shot.frame, y, u, v)
                weight = compose.weight_of(2 * p)
            else:
                self._render(shot.incoming, shot.incoming_frame, y, u, v)
                weight = compose.weight_of(2 * (1 - p))
            compose.mix_level(y, _BLACK_Y, weight, y)
            compose.mix_level(u, _BLACK_C, weight, u)
            compose.mix_level(v, _BLACK_C, weight, v)
            return
        sy, su, sv = self._scratch
        self._render(shot.slide, shot.frame, y, u, v)
        self._render(shot.incoming, shot.incoming_frame, sy, su, sv)
        if kind == Transition.CROSSFADE:
            weight = compose.weight_of(p)
            for a, b in ((y, sy), (u, su), (v, sv)):
                compose.mix(a, b, weight, a)
        else:
            up = kind == Transition.SLIDE_UP
            shift = int(round(p * self.size[1 if up else 0] / 2)) * 2
            push = compose.push_up if up else compose.push_left
            push(y, sy, shift, y)
            push(u, su, shift // 2, u)
            push(v, sv, shift // 2, v)

    # -- words --------------------------------------------------------------------

    def _overlay(self, what: str, i: int) -> Overlay | None:
        key = (what, i)
        if key not in self._texts:
            for old in [k for k in self._texts if k[1] < i - 1]:
                del self._texts[old]
            if what == "title":
                text = self.plan.reel.title
                where, scale = "top", 1.5
            else:
                text = self.plan.slides[i].caption
                where, scale = "bottom", 1.0
            self._texts[key] = (None if not text else
                                layout(text, *self.size, where=where, scale=scale))
        return self._texts[key]

    def _words(self, n: int, shot: Shot, y: np.ndarray, u: np.ndarray,
               v: np.ndarray) -> None:
        timeline = self.plan.timeline
        shown = [("caption", shot.slide)]
        if shot.incoming is not None:
            shown.append(("caption", shot.incoming))
        if shot.slide == 0:
            shown.append(("title", 0))
        fade = max(1, round(_TEXT_FADE * timeline.frame_rate))
        for what, i in shown:
            start, count = timeline.starts[i], timeline.counts[i]
            if not start <= n < start + count:
                continue
            o = self._overlay(what, i)
            if o is None:
                continue
            steps = min(fade, max(1, count // 4))
            opacity = min(1.0, (n - start + 1) / steps, (start + count - n) / steps)
            compose.overlay(y, o.top, o.left, o.y, o.alpha, opacity)
            compose.overlay(u, o.top // 2, o.left // 2, o.u, o.chroma_alpha, opacity)
            compose.overlay(v, o.top // 2, o.left // 2, o.v, o.chroma_alpha, opacity)
