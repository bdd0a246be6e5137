"""Reel jobs (POST /v1/video/reel): the request checked at submit, then its slides and
track fetched by the worker and rendered whole or in chunks.

A reel's job record holds its request as given, each slide an ``image_url`` or, for an
uploaded image, ``upload`` (its name among the job's uploads), and the track an
``audio_url`` or ``audio_upload``. Each fetched image goes to a scratch file of its own
(memory stays flat in the number of slides), read by :func:`~zoomreel.render_reel`
when the slide is drawn; a chunk fetches only the slides its frames show (and the first,
whose size may choose the reel's). A slide or a track that cannot be fetched or decoded
ends the job ``error`` naming it (``slides[2].image_url: ...``, ``audio_url: ...``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..codecs import CODECS
from ..errors import AudioError, ImageError, SpecError
from ..reelspec import REEL_FIELDS, ReelSpec, Slide
from ..spec import REQUEST_FIELDS
from .job import Job
from .settings import JobSettings

if TYPE_CHECKING:
    from ..image import Source

__all__ = ["Framed", "Extent", "ReelRequest", "ReelSources", "check_reel", "SLIDE_UPLOAD",
           "AUDIO_UPLOAD"]

log = logging.getLogger(__name__)

#: A stored slide's key naming its uploaded image, and the stored request's key naming
#: the uploaded track (not request fields: the REST layer never takes them).
SLIDE_UPLOAD = "upload"
AUDIO_UPLOAD = "audio_upload"
#: The fields of a slide that are not its image (Slide's own).
_IMAGE_KEYS = ("image_url", SLIDE_UPLOAD)
#: Keys of a reel request that are not ReelSpec's fields.
_OTHER_KEYS = ("slides", "audio_url", AUDIO_UPLOAD, "webhook_url", "id")
_SLIDE_PREFIX = re.compile(r"^slides\[(\d+)\]: ")


class Framed(Protocol):
    """What the chunks of a job need to know of its video (a RenderSpec has it)."""

    @property
    def total_frames(self) -> int: ...

    @property
    def frame_rate(self) -> int: ...

    @property
    def codec(self) -> str: ...


@dataclass(frozen=True)
class Extent:
    """A reel's video as the chunk machinery sees it."""

    total_frames: int
    frame_rate: int
    codec: str


@dataclass(frozen=True)
class ReelRequest:
    """A reel request checked at submit.

    Attributes:
        stored: the request as the job record keeps it (uploads named).
        frames_total: the reel's frames (0 when only its track, not fetched yet, tells).
        extension: the video's file extension.
        uploads: (name, bytes) of each uploaded image and track, to store.
    """

    stored: dict[str, Any]
    frames_total: int
    extension: str
    uploads: list[tuple[str, bytes]] = field(default_factory=list)


def _slides_of(request: Mapping[str, Any], images: Sequence[bytes],
               max_slides: int) -> list[dict[str, Any]]:
    """The request's slides, the uploaded images given in order to the slides without an
    ``image_url`` (and as slides of their own once those run out): 1 to ``max_slides``.
    """
    given = request.get("slides")
    if given is None:
        given = []
    if not isinstance(given, list):
        raise SpecError("slides", "must be a list of slides", given)
    slides: list[dict[str, Any]] = []
    for i, slide in enumerate(given):
        if not isinstance(slide, dict):
            raise SpecError(f"slides[{i}]", "must be an object of a slide's fields", slide)
        slides.append(dict(slide))
    left = list(images)
    for slide in slides:
        if "image_url" not in slide and left:
            slide[SLIDE_UPLOAD] = left.pop(0)
    slides.extend({SLIDE_UPLOAD: image} for image in left)
    if not slides:
        raise SpecError("slides", "must hold at least one slide (or an uploaded image)", [])
    if len(slides) > max_slides:
        raise SpecError("slides", f"must hold at most {max_slides} slides",
                        f"{len(slides)} slides")
    return slides


def check_reel(request: Mapping[str, Any], *, images: Sequence[bytes] = (),
               audio: bytes | None = None, settings: JobSettings) -> ReelRequest:
    """Check a reel request at submit: every rule that can be known before a fetch.

    Args:
        request: the reel's fields (``slides``, the ReelSpec fields, ``audio_url``,
            ``webhook_url``, ``id``).
        images: uploaded images, in order: the slides without an ``image_url`` get them.
        audio: an uploaded track.
        settings: the limits (slides, sizes, length) and the address rules.

    Raises:
        SpecError: a field breaks a rule (named with its slide's index).
        ImageError: an uploaded slide is not an image (``slides[1].image: ...``).
        ImageTooLargeError: an uploaded image is over the size cap.
        AudioError: the uploaded track is not audio or over its size cap (``audio: ...``).
        URLRefusedError: an image_url, audio_url or webhook_url may not be fetched.
    """
    from ..net import check_url
    from ..reel import plan_reel

    allow = settings.allow_private_urls
    for name in request:
        if name not in REEL_FIELDS and name not in _OTHER_KEYS:
            raise SpecError(name, "is not a known field")
    slides = _slides_of(request, images, settings.max_slides)
    if audio is not None and "audio_url" in request:
        raise SpecError("audio_url", "must not be given with an uploaded track")
    uploads: list[tuple[str, bytes]] = []
    stored_slides: list[dict[str, Any]] = []
    checked: list[Slide] = []
    for i, slide in enumerate(slides):
        stored, made = _check_slide(i, slide, settings, uploads)
        stored_slides.append(stored)
        checked.append(made)
    audio_seconds: float | None = None
    if audio is not None:
        if len(audio) > settings.max_audio_bytes:
            raise AudioError(f"audio: the track is over {settings.max_audio_bytes} bytes")
        from ..audio import duration_of

        audio_seconds = duration_of(audio)  # AudioError: not audio
    elif request.get("audio_url"):
        check_url(request["audio_url"], allow_private=allow, label="audio_url")
    if request.get("webhook_url"):
        check_url(request["webhook_url"], allow_private=allow, label="webhook_url")
    has_track = audio is not None or bool(request.get("audio_url"))
    reel = ReelSpec.from_request(request, audio=b"track" if has_track else None)
    frames_total = 0
    if reel.length != "audio" or audio_seconds is not None:
        plan = plan_reel(checked, reel, audio_seconds=audio_seconds)
        _check_length(plan.duration, settings, "audio" if reel.length == "audio" else "length")
        frames_total = plan.total_frames
    stored_request = {k: v for k, v in request.items() if k != "slides" and v is not None}
    stored_request["slides"] = stored_slides
    if audio is not None:
        name = uuid.uuid4().hex + ".audio"
        uploads.append((name, audio))
        stored_request[AUDIO_UPLOAD] = name
    return ReelRequest(stored_request, frames_total, CODECS[reel.codec].extension, uploads)


def _check_slide(i: int, slide: dict[str, Any], settings: JobSettings,
                 uploads: list[tuple[str, bytes]]) -> tuple[dict[str, Any], Slide]:
    """Slide ``i`` as the job stores it (an upload named, appended to ``uploads``) and
    as a Slide (its image not read)."""
    from ..errors import ImageTooLargeError
    from ..net import check_url
    from ..reel import _shown_size
    from ..text import check_drawable

    fields = {k: v for k, v in slide.items() if k not in _IMAGE_KEYS}
    made = Slide.from_request(b"", fields, i)
    if made.caption is not None:
        check_drawable(f"slides[{i}].caption", made.caption)
    stored = dict(fields)
    if SLIDE_UPLOAD in slide:
        data = slide[SLIDE_UPLOAD]
        if len(data) > settings.max_image_bytes:
            raise ImageTooLargeError(f"slides[{i}].image: the upload is over "
                                     f"{settings.max_image_bytes} bytes")
        try:
            _shown_size(data, i)
        except ImageError as exc:
            raise ImageError(_named(str(exc), f"slides[{i}].image")) from None
        name = uuid.uuid4().hex + ".img"
        uploads.append((name, data))
        stored[SLIDE_UPLOAD] = name
    elif "image_url" in slide:
        label = f"slides[{i}].image_url"
        url = slide["image_url"]
        try:
            REQUEST_FIELDS["image_url"].check(url)
        except SpecError as exc:
            raise SpecError(label, exc.rule, url) from None
        check_url(url, allow_private=settings.allow_private_urls, label=label)
        stored["image_url"] = url
    else:
        raise SpecError(f"slides[{i}].image_url", "is required (or an uploaded image)")
    return stored, made


def _check_length(seconds: float, settings: JobSettings, name: str) -> None:
    if seconds > settings.max_length:
        what = ("the track lasts" if name in ("audio", "audio_url") else "the reel lasts")
        raise SpecError(name, f"{what} {seconds:.1f} s: a reel may last at most "
                        f"{settings.max_length:g} s")


def _named(message: str, label: str) -> str:
    """``slides[2]: why`` as ``<label>: why``."""
    return _SLIDE_PREFIX.sub(f"{label}: ", message, count=1)


class ReelSources:
    """A reel job's slides and track on a worker: fetched (or read from the uploads)
    when first needed, each image into a scratch file; the files go when it closes.

    Args:
        job: the reel's job.
        load_upload: reads one of the job's uploads by name (None: it is gone).
        settings: size caps and address rules.
        scratch: where the images are written.
        lost: set when the job is taken from this worker.
    """

    def __init__(self, job: Job, load_upload: Callable[[str], bytes | None],
                 settings: JobSettings, scratch: Path, lost: threading.Event) -> None:
        self.job = job
        self.request = job.request
        self.slides: list[dict[str, Any]] = list(self.request["slides"])
        self._load_upload = load_upload
        self.settings = settings
        self.scratch = scratch
        self.lost = lost
        self._files: dict[int, Path] = {}
        self._track: bytes | None = None
        self._tag = uuid.uuid4().hex[:8]

    def __enter__(self) -> ReelSources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the fetched images."""
        for path in self._files.values():
            path.unlink(missing_ok=True)
        self._files.clear()

    @property
    def has_track(self) -> bool:
        """Whether the reel has a track."""
        return bool(self.request.get("audio_url") or self.request.get(AUDIO_UPLOAD))

    def _fields(self, i: int) -> dict[str, Any]:
        return {k: v for k, v in self.slides[i].items() if k not in _IMAGE_KEYS}

    def track(self) -> bytes:
        """The track's bytes (fetched once).

        Raises:
            FetchError: ``audio_url: ...``. AudioError: the upload is gone.
        """
        if self._track is None:
            name = self.request.get(AUDIO_UPLOAD)
            if name:
                found = self._load_upload(name)
                if found is None:
                    raise AudioError("audio: the uploaded track is gone (removed before "
                                     "its render)")
                self._track = found
            else:
                from ..net import fetch_url

                self._track = fetch_url(self.request["audio_url"],
                                        max_bytes=self.settings.max_audio_bytes,
                                        allow_private=self.settings.allow_private_urls,
                                        label="audio_url")
        return self._track

    def slide_source(self, i: int) -> Source:
        """Slide ``i``'s image as a local file (fetched once).

        Raises:
            FetchError: ``slides[i].image_url ...``. ImageError: the upload is gone.
        """
        if i not in self._files:
            slide = self.slides[i]
            name = slide.get(SLIDE_UPLOAD)
            if name:
                data = self._load_upload(name)
                if data is None:
                    raise ImageError(f"slides[{i}].image: the uploaded image is gone "
                                     "(removed before its render)")
            else:
                from ..net import fetch_url

                data = fetch_url(slide["image_url"], max_bytes=self.settings.max_image_bytes,
                                 allow_private=self.settings.allow_private_urls,
                                 label=f"slides[{i}].image_url")
            self.scratch.mkdir(parents=True, exist_ok=True)
            # a ".part" name: a process killed meanwhile leaves it to the stale-file sweep
            path = self.scratch / f".reel-{self.job.id}-{self._tag}-{i}.part"
            path.write_bytes(data)
            self._files[i] = path
        return str(self._files[i])

    def _reel(self, with_track: bool) -> ReelSpec:
        track: bytes | None = None
        if with_track and self.has_track:
            track = self.track()
        fields = {k: v for k, v in self.request.items() if k in REEL_FIELDS}
        if fields.get("length") == "audio" and track is None:
            track = self.track()
        return ReelSpec.from_request(fields, audio=track)

    def extent(self) -> Extent:
        """The reel's frames, frame rate and codec (the track fetched if its length
        decides them)."""
        plan = self._plan(with_track=False)
        return Extent(plan.total_frames, plan.reel.frame_rate, plan.reel.codec)

    def _plan(self, with_track: bool) -> Any:
        from ..reel import plan_reel

        reel = self._reel(with_track)
        placeholders = [Slide.from_request(b"", self._fields(i), i)
                        for i in range(len(self.slides))]
        with self.named_errors():
            plan = plan_reel(placeholders, reel)
        label = "audio_url" if self.request.get("audio_url") else "audio"
        _check_length(plan.duration, self.settings,
                      label if reel.length == "audio" else "length")
        return plan

    @contextlib.contextmanager
    def named_errors(self) -> Iterator[None]:
        """Errors of the images and the track named as the request names them."""
        try:
            yield
        except ImageError as exc:
            match = _SLIDE_PREFIX.match(str(exc))
            if match is None:
                raise
            i = int(match.group(1))
            key = "image" if self.slides[i].get(SLIDE_UPLOAD) else "image_url"
            raise type(exc)(_named(str(exc), f"slides[{i}].{key}")) from None
        except AudioError as exc:
            if self.request.get("audio_url") and str(exc).startswith("audio: "):
                raise AudioError("audio_url: " + str(exc)[len("audio: "):]) from None
            raise

    def render(self, out: Path, *, frames: range | None = None,
               progress: Callable[[int, int], object] | None = None,
               cancel: Callable[[], bool] | None = None,
               poster: Path | None = None) -> Any:
        """Render the reel (or the part ``frames`` of it, video only) into ``out``.

        Returns:
            A RenderResult (``poster`` set when one was asked for and drawn).

        Raises:
            FetchError, ImageError, AudioError, SpecError: named as the request names
            the slide or track. RenderCancelled, RenderError: as render_reel.
        """
        from ..reel import render_reel
        from ..render import RenderResult

        whole = frames is None
        plan = self._plan(with_track=False)
        wanted = plan.frames_of(frames)
        if len(wanted) == plan.total_frames:
            whole = True
        needed = {0, *plan.timeline.slides_in(wanted)}
        with self.named_errors():
            sources = {i: self.slide_source(i) for i in sorted(needed)}
            slides = [Slide.from_request(sources.get(i, b""), self._fields(i), i)
                      for i in range(len(self.slides))]
            reel = self._reel(with_track=whole)
            result = render_reel(slides, out, reel, progress=progress, cancel=cancel,
                                 frames=None if whole else wanted, poster=poster)
        return RenderResult(path=result.path, frames=result.frames, duration=result.duration,
                            width=result.width, height=result.height,
                            frame_rate=result.frame_rate, size_bytes=result.size_bytes,
                            poster=result.poster)

    def poster_frame(self) -> int:
        """The frame the reel's poster shows (the middle of its first slide)."""
        plan = self._plan(with_track=False)
        return int(plan.timeline.starts[0] + plan.timeline.counts[0] // 2)

