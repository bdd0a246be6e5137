"""render_video: image in, zooming MP4 out, one frame at a time.

A producer thread runs the kernel into the next frame's YUV planes while the main
thread encodes the previous ones; a small bounded queue between them keeps memory
flat whatever the length, and lets the Numba kernel (which releases the GIL) and
x264 work at the same time. The frames themselves are a ring allocated once: the
kernel writes straight into the planes PyAV hands to x264 (which copies its input
when it is given it), so no frame is allocated, zeroed or copied per frame.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .camera import camera_path, cover_size
from .canvas import fit_canvas
from .encoder import Encoder
from .errors import RenderCancelled
from .image import Source, load_image
from .pyramid import Pyramid
from .spec import RenderSpec

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


def render_video(
    source: Source,
    out: str | os.PathLike[str],
    spec: RenderSpec | None = None,
    progress: Callable[[int, int], object] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> RenderResult:
    """Render the zoom of ``source`` into the MP4 ``out``.

    Args:
        source: image path, or the image's encoded bytes.
        out: output path; written under a temporary name and renamed when complete.
        spec: what to render (defaults: RenderSpec()).
        progress: called as ``progress(done_frames, total_frames)`` after each frame.
        cancel: polled before each frame; returning True stops the render.

    Returns:
        A RenderResult describing the file.

    Raises:
        ImageError: the source cannot be decoded (ImageTooLargeError: over the limit).
        RenderCancelled: ``cancel`` returned True; no output file is left.
        RenderError: the encoder failed.
    """
    spec = spec or RenderSpec()
    if spec.fit == "cover":  # the image itself: straight into YUV planes
        pyramid = Pyramid.read(source, max_pixels=spec.max_pixels, background=spec.background)
        width, height = spec.size_for(pyramid.width, pyramid.height)
    else:  # a canvas built around the image
        rgb = load_image(source, max_pixels=spec.max_pixels, background=spec.background)
        width, height = spec.size_for(rgb.shape[1], rgb.shape[0])
        rgb = fit_canvas(rgb, spec.fit, width, height, background=spec.background,
                         max_zoom=max(spec.zoom_keyframes), max_pixels=spec.max_pixels)
        pyramid = Pyramid(rgb)
        del rgb
    cw, _ = cover_size(pyramid.width, pyramid.height, width, height)
    pyramid.prepare(max_scale=cw / (min(spec.zoom_keyframes) * width))
    total = spec.total_frames
    cubic = spec.resampler == "catmull-rom"
    frames: queue.Queue[object] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    with Encoder.from_spec(out, spec, width, height) as encoder:
        ring = [encoder.new_frame() for _ in range(min(_RING, total))]

        def produce() -> None:
            try:
                path = camera_path(spec, pyramid.width, pyramid.height, (width, height))
                for n, box in enumerate(path):
                    if stop.is_set():
                        return
                    frame, y, u, v = ring[n % len(ring)]
                    pyramid.render(box, y, u, v, cubic)
                    frames.put(frame)
                frames.put(None)
            except BaseException as exc:  # handed to the encoding thread
                frames.put(exc)

        worker = threading.Thread(target=produce, name="zoomreel-kernel", daemon=True)
        worker.start()
        try:
            done = 0
            while True:
                if cancel is not None and cancel():
                    raise RenderCancelled("The render was cancelled")
                item = frames.get()
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
                    frames.get(timeout=0.05)
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
    )
