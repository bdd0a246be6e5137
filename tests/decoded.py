"""Reading what a render wrote: luma planes as PyAV decodes them, the audio track, and MP4
box order."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
from imagegen import luma, psnr, reference_frame
from PIL import Image

from zoomreel import RenderSpec
from zoomreel.audio import RATE
from zoomreel.camera import frame_rect

__all__ = ["y_plane", "luma_frames", "decoded_audio", "top_level_boxes", "frames_on_the_path"]


def y_plane(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame's Y plane as (height, width) uint8, without the line padding."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def luma_frames(path: Path | str) -> list[np.ndarray]:
    """Every decoded frame's Y plane."""
    with av.open(str(path)) as container:
        return [y_plane(frame).copy() for frame in container.decode(video=0)]


def decoded_audio(video: Path | bytes) -> tuple[np.ndarray, float, float, float]:
    """The file's audio as (2, n) at 48 kHz, the time of its first sample, the video's
    duration (frames / rate), and its frame rate."""
    def opened() -> av.container.InputContainer:
        return av.open(io.BytesIO(video) if isinstance(video, bytes) else str(video))

    with opened() as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or stream.guessed_rate or 30)
    with opened() as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        chunks, first = [], None
        for frame in container.decode(audio=0):
            if first is None:
                first = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    return np.concatenate(chunks, axis=1), first or 0.0, frames / rate, rate


def top_level_boxes(path: Path | str) -> list[bytes]:
    """The kinds of an MP4's top-level boxes, in file order."""
    data = Path(path).read_bytes()
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos: pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8: pos + 16])[0]
        kinds.append(kind)
        if size < 8:
            break
        pos += size
    return kinds


def frames_on_the_path(video: Path | bytes, single: Path, spec: RenderSpec,
                       image: Image.Image, size: tuple[int, int],
                       min_db: float = 30.0) -> int:
    """Check every frame of ``video`` (a joined or chunked render) against the exact path
    (Pillow's resize of the frame's rectangle of ``image``) and against the same frame
    of ``single`` (the whole render): each within ``min_db`` luma PSNR of both.

    Returns:
        How many frames were compared (the two videos must have as many).
    """
    source = io.BytesIO(video) if isinstance(video, bytes) else str(video)
    with av.open(source) as mine, av.open(str(single)) as whole:
        pairs = list(zip(mine.decode(video=0), whole.decode(video=0), strict=True))
        for n, (frame, other) in enumerate(pairs):
            box = frame_rect(n, spec, image.width, image.height)
            exact = luma(reference_frame(image, box, size))
            assert psnr(y_plane(frame), exact) >= min_db, n
            assert psnr(y_plane(frame), y_plane(other)) >= min_db, n
    return len(pairs)
