"""render_video: image in, zooming MP4 out, one frame at a time.

The frames stream from the kernel into the encoder through a small ring (zoomreel's
``_frames``): memory stays flat whatever the length.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._frames import poster_frame_of, stream_frames, write_poster
from .camera import cover_size, frame_rect
from .canvas import CanvasGeometry, canvas_geometry, fit_canvas
from .encoder import Encoder
from .image import Source, load_image
from .pyramid import Pyramid
from .spec import AUTO, RenderSpec
from .subject import Subject, find_subject

__all__ = ["render_video", "RenderResult"]


@dataclass(frozen=True)
class RenderResult:
    """What a render made (``poster``: the JPEG's path, if one was asked for)."""

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
    poster: str | None = None


def render_video(
    source: Source,
    out: str | os.PathLike[str],
    spec: RenderSpec | None = None,
    progress: Callable[[int, int], object] | None = None,
    cancel: Callable[[], bool] | None = None,
    frames: range | None = None,
    poster: str | os.PathLike[str] | None = None,
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
        poster: also write one frame, a third of the way in, as a JPEG here.

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
    cubic = spec.resampler == "catmull-rom"

    def draw(n: int, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        pyramid.render(frame_rect(n, spec, pyramid.width, pyramid.height, (width, height)),
                       y, u, v, cubic)

    with Encoder.from_spec(out, spec, width, height) as encoder:
        image = stream_frames(encoder, frames, draw, progress=progress, cancel=cancel,
                              poster_frame=poster_frame_of(frames) if poster else None)
    poster_path = write_poster(image, poster) if poster and image is not None else None
    return RenderResult(
        path=os.fspath(out),
        frames=len(frames),
        duration=len(frames) / spec.frame_rate,
        width=width,
        height=height,
        frame_rate=spec.frame_rate,
        size_bytes=os.path.getsize(out),
        focus_used=subject,
        poster=poster_path,
    )


def _frames_of(spec: RenderSpec, frames: range | None) -> range:
    """The frames to render; ValueError for a range that is not part of the path."""
    total = spec.total_frames
    if frames is None:
        return range(total)
    if frames.step != 1 or not 0 <= frames.start < frames.stop <= total:
        raise ValueError(f"frames must be a non-empty step-1 range inside 0..{total}, "
                         f"not {frames!r}")
    return frames


#: How ``focus: "auto"`` is resolved: (spec, subject, path width, path height, output
#: size, where the image lies on the path) -> the spec (RenderSpec.with_subject's).
Resolve = Callable[[RenderSpec, Subject, float, float, tuple[int, int],
                    tuple[float, float, float, float]], RenderSpec]


def _with_subject(spec: RenderSpec, subject: Subject, path_w: float, path_h: float,
                  size: tuple[int, int], place: tuple[float, float, float, float],
                  ) -> RenderSpec:
    return spec.with_subject(subject, path_w, path_h, size, place)


def _prepare(source: Source, spec: RenderSpec, resolve: Resolve = _with_subject,
             ) -> tuple[Pyramid, int, int, RenderSpec, Subject | None]:
    """The pyramid the path runs over, ready for the spec's zoom; the output size; the
    spec with ``focus: "auto"`` resolved (by ``resolve``), and the subject that
    resolved it."""
    auto = spec.focus == AUTO
    subject = None
    if spec.fit == "cover":  # the image itself: straight into YUV planes
        pyramid = Pyramid.read(source, max_pixels=spec.max_pixels, background=spec.background)
        width, height = spec.size_for(pyramid.width, pyramid.height)
        if auto:  # on the luma plane: the image is not held as RGB
            subject = find_subject(pyramid.level(0).y)
            spec = resolve(spec, subject, pyramid.width, pyramid.height, (width, height),
                           (0.0, 0.0, 1.0, 1.0))
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
            spec = resolve(spec, subject, geometry.width, geometry.height, (width, height),
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
