"""render_video: image in, zooming MP4 out, one frame at a time.

A producer thread runs the kernel into the next frame's YUV planes while the main
thread encodes the previous ones; a small bounded queue between them keeps memory
flat whatever the length, and lets the Numba kernel (which releases the GIL) and
x264 work at the same time. The frames themselves are a ring allocated once: the
kernel writes straight into the planes PyAV hands to x264 (which copies its input
when it is given it), so no frame is allocated, zeroed or copied per frame. Once the
first frame is made, LLVM's pages go back (kernel.page_out_compiler): 50-70 MB of a
render's memory that only compiling needs.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from .camera import cover_size, frame_rect
from .canvas import CanvasGeometry, canvas_geometry, fit_canvas
from .encoder import Encoder
from .errors import RenderCancelled
from .image import Source, load_image
from .kernel import page_out_compiler
from .pyramid import Pyramid
from .spec import AUTO, RenderSpec
from .subject import Subject, find_subject

__all__ = ["render_video", "RenderResult"]

#: Frames rendered ahead of the encoder.
_AHEAD = 3
#: Frames in the ring: the producer writes frame n into slot n % _RING while frames n-1
#: to n-_AHEAD wait in the queue and the encoder holds n-_AHEAD-1; the encoder took that
#: one only after encoding n-_RING, the slot's last user, so the slot is free.
_RING = _AHEAD + 2


@dataclass(frozen=True)
class RenderResult:
    """What a render made."""

    path: str
    frames: int
    duration: float
    width: int
    height: int
    frame_rate: int
    size_bytes: int
    #: With ``focus: "auto"``: the subject the zoom closed in on (``to_json()`` gives
    #: ``{"x", "y", "by"}``, fractions of the image); else None.
    focus_used: Subject | None = None


def render_video(
    source: Source,
    out: str | os.PathLike[str],
    spec: RenderSpec | None = None,
    progress: Callable[[int, int], object] | None = None,
    cancel: Callable[[], bool] | None = None,
    frames: range | None = None,
) -> RenderResult:
    """Render the zoom of ``source`` into the MP4 ``out``.

    Args:
        source: image path, or the image's encoded bytes.
        out: output path; written under a temporary name and renamed when complete.
        spec: what to render (defaults: RenderSpec()).
        progress: called as ``progress(done_frames, total_frames)`` after each frame.
        cancel: polled before each frame; returning True stops the render.
        frames: render only these frames of the path (a step-1 range inside
            ``0 .. spec.total_frames``), as a file of their own that starts with an IDR
            frame; :func:`zoomreel.join.join_videos` joins such parts. Default: all.

    Returns:
        A RenderResult describing the file.

    Raises:
        ImageError: the source cannot be decoded (ImageTooLargeError: over the limit).
        RenderCancelled: ``cancel`` returned True; no output file is left.
        RenderError: the encoder failed.
    """
    spec = spec or RenderSpec()
    frames = _frames_of(spec, frames)
    pyramid, width, height, spec, subject = _prepare(source, spec)
    total = len(frames)
    ready: queue.Queue[object] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    with Encoder.from_spec(out, spec, width, height) as encoder:
        ring = [encoder.new_frame() for _ in range(min(_RING, total))]

        worker = threading.Thread(
            target=_produce, args=(frames, spec, pyramid, (width, height), ring, ready, stop),
            name="zoomreel-kernel", daemon=True)
        worker.start()
        try:
            done = 0
            while True:
                if cancel is not None and cancel():
                    raise RenderCancelled("The render was cancelled")
                item = ready.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                encoder.encode(item)  # type: ignore[arg-type]
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
    return RenderResult(
        path=os.fspath(out),
        frames=total,
        duration=total / spec.frame_rate,
        width=width,
        height=height,
        frame_rate=spec.frame_rate,
        size_bytes=os.path.getsize(out),
        focus_used=subject,
    )


def _produce(frames: range, spec: RenderSpec, pyramid: Pyramid, size: tuple[int, int],
             ring: list[tuple[av.VideoFrame, np.ndarray, np.ndarray, np.ndarray]],
             ready: queue.Queue[object], stop: threading.Event) -> None:
    """The producer thread: each frame's planes made by the kernel in the next slot of
    ``ring``, the frame put on ``ready``; then None, or the exception that stopped it."""
    cubic = spec.resampler == "catmull-rom"
    try:
        for n in frames:
            box = frame_rect(n, spec, pyramid.width, pyramid.height, size)
            if stop.is_set():
                return
            frame, y, u, v = ring[n % len(ring)]
            pyramid.render(box, y, u, v, cubic)
            if n == frames.start:  # every kernel this render runs has run
                page_out_compiler()
            ready.put(frame)
        ready.put(None)
    except BaseException as exc:  # handed to the encoding thread
        ready.put(exc)


def _frames_of(spec: RenderSpec, frames: range | None) -> range:
    """The frames to render; ValueError for a range that is not part of the path."""
    total = spec.total_frames
    if frames is None:
        return range(total)
    if frames.step != 1 or not 0 <= frames.start < frames.stop <= total:
        raise ValueError(f"frames must be a non-empty step-1 range inside 0..{total}, "
                         f"not {frames!r}")
    return frames


def _prepare(source: Source, spec: RenderSpec,
             ) -> tuple[Pyramid, int, int, RenderSpec, Subject | None]:
    """The pyramid the path runs over, ready for the spec's zoom; the output size; the
    spec with ``focus: "auto"`` resolved, and the subject that resolved it."""
    auto = spec.focus == AUTO
    subject = None
    if spec.fit == "cover":  # the image itself: straight into YUV planes
        pyramid = Pyramid.read(source, max_pixels=spec.max_pixels, background=spec.background)
        width, height = spec.size_for(pyramid.width, pyramid.height)
        if auto:  # on the luma plane: the image is not held as RGB
            subject = find_subject(pyramid.level(0).y)
            spec = spec.with_subject(subject, pyramid.width, pyramid.height, (width, height))
    else:  # a canvas built around the image
        rgb = load_image(source, max_pixels=spec.max_pixels, background=spec.background)
        image_h, image_w = rgb.shape[:2]
        width, height = spec.size_for(image_w, image_h)
        if auto:
            subject = find_subject(rgb)
        max_zoom = max(spec.zoom_keyframes)  # as asked: resolving only lowers it
        geometry = canvas_geometry(image_w, image_h, spec.fit, width, height,
                                   max_zoom=max_zoom, max_pixels=spec.max_pixels)
        if subject is not None:
            spec = spec.with_subject(subject, geometry.width, geometry.height, (width, height),
                                     _placed(geometry))
        rgb = fit_canvas(rgb, spec.fit, width, height, background=spec.background,
                         max_zoom=max_zoom, max_pixels=spec.max_pixels)
        pyramid = Pyramid(rgb)
        del rgb
    cw, _ = cover_size(pyramid.width, pyramid.height, width, height)
    pyramid.prepare(max_scale=cw / (min(spec.zoom_keyframes) * width))
    return pyramid, width, height, spec, subject


def _placed(geometry: CanvasGeometry) -> tuple[float, float, float, float]:
    """Where the image lies on its canvas, in fractions of the canvas."""
    return (geometry.image_x / geometry.width, geometry.image_y / geometry.height,
            (geometry.image_x + geometry.image_width) / geometry.width,
            (geometry.image_y + geometry.image_height) / geometry.height)
