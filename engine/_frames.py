"""The loop every render runs: frames drawn by a producer thread into a ring of the
encoder's own frames, encoded by the calling thread, and the poster taken on the way.

A producer thread runs the kernels into the next frame's YUV planes while the calling
thread encodes the previous ones; a small bounded queue between them keeps memory flat
whatever the length, and lets the Numba kernels (which release the GIL) and the encoder
work at the same time. The frames themselves are a ring allocated once: the kernels
write straight into the planes PyAV hands to the encoder (which copies its input when
it is given it), so no frame is allocated, zeroed or copied per frame. Once the first
frame is made, LLVM's pages go back (kernel.page_out_compiler): 50-70 MB of a render's
memory that only compiling needs.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import av
import numpy as np

from .encoder import Encoder
from .errors import RenderCancelled, RenderError
from .kernel import page_out_compiler

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["stream_frames", "Draw", "write_poster", "poster_frame_of", "poster_of_video"]

#: Frames rendered ahead of the encoder.
_AHEAD = 3
#: Frames in the ring: the producer writes frame n into slot n % _RING while frames n-1
#: to n-_AHEAD wait in the queue and the encoder holds n-_AHEAD-1; the encoder took that
#: one only after encoding n-_RING, the slot's last user, so the slot is free.
_RING = _AHEAD + 2

#: Fills the planes (y, u, v) of frame n.
Draw = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


def stream_frames(encoder: Encoder, frames: range, draw: Draw, *,
                  progress: Callable[[int, int], object] | None = None,
                  cancel: Callable[[], bool] | None = None,
                  encoded: Callable[[int], object] | None = None,
                  poster_frame: int | None = None) -> Image.Image | None:
    """Draw and encode ``frames`` in order.

    Args:
        encoder: where the frames go.
        frames: the frame numbers, passed to ``draw``.
        draw: fills one frame's planes; runs on the producer thread.
        progress: ``progress(done, total)`` after each frame.
        cancel: polled before each frame; True stops with RenderCancelled.
        encoded: called with the count of frames encoded so far, after each (to feed
            the encoder's audio in step).
        poster_frame: the frame (one of ``frames``) to return as an RGB image.

    Returns:
        The poster frame as a Pillow image, if one was asked for.
    """
    total = len(frames)
    ready: queue.Queue[object] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()
    ring = [encoder.new_frame() for _ in range(min(_RING, total))]
    worker = threading.Thread(target=_produce, args=(frames, draw, ring, ready, stop),
                              name="zoomreel-kernel", daemon=True)
    worker.start()
    poster: Image.Image | None = None
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
            assert isinstance(item, av.VideoFrame)
            if poster_frame is not None and frames.start + done == poster_frame:
                poster = _to_image(item)
            encoder.encode(item)
            done += 1
            if encoded is not None:
                encoded(done)
            if progress is not None:
                progress(done, total)
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
    return poster


def _produce(frames: range, draw: Draw,
             ring: list[tuple[av.VideoFrame, np.ndarray, np.ndarray, np.ndarray]],
             ready: queue.Queue[object], stop: threading.Event) -> None:
    """The producer thread: each frame drawn in the next slot of ``ring`` and put on
    ``ready``; then None, or the exception that stopped it."""
    try:
        for n in frames:
            if stop.is_set():
                return
            frame, y, u, v = ring[n % len(ring)]
            draw(n, y, u, v)
            if n == frames.start:  # every kernel this render runs has run
                page_out_compiler()
            ready.put(frame)
        ready.put(None)
    except BaseException as exc:  # handed to the encoding thread
        ready.put(exc)


def _to_image(frame: av.VideoFrame) -> Image.Image:
    """A frame (BT.709, limited range) as full-range sRGB."""
    rgb = frame.reformat(format="rgb24", src_colorspace="ITU709", dst_colorspace="ITU709",
                         src_color_range="MPEG", dst_color_range="JPEG")
    image: Image.Image = rgb.to_image()  # type: ignore[no-untyped-call]
    return image


def write_poster(image: Image.Image, path: str | os.PathLike[str]) -> str:
    """Save the poster as a JPEG at ``path`` (written under a temporary name, renamed
    when complete); returns the path."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
    try:
        image.save(tmp, "JPEG", quality=88)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RenderError(f"Cannot write the poster {name}: {exc.strerror or exc}") from exc
    return path


def poster_frame_of(frames: range) -> int:
    """The frame a poster shows by default: a third of the way into ``frames``."""
    return frames.start + len(frames) // 3


def poster_of_video(video: str | os.PathLike[str], frame: int, frame_rate: int,
                    path: str | os.PathLike[str]) -> str:
    """Write frame ``frame`` of the encoded ``video`` as its poster JPEG at ``path`` (a
    video joined from chunks: no chunk drew the whole video's poster frame); returns
    the path.

    Raises:
        RenderError: the video cannot be decoded there.
    """
    from fractions import Fraction

    try:
        with av.open(os.fspath(video)) as container:
            stream = container.streams.video[0]
            assert stream.time_base is not None
            target = Fraction(frame, frame_rate)
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            last: av.VideoFrame | None = None
            for decoded in container.decode(stream):
                last = decoded
                if decoded.pts is None or decoded.pts * stream.time_base >= target:
                    break
            image = None if last is None else _to_image(last)
    except (av.FFmpegError, OSError) as exc:
        raise RenderError(f"Cannot take the poster from the video: {exc}") from exc
    if image is None:
        raise RenderError("Cannot take the poster from the video: it has no frames")
    return write_poster(image, path)
