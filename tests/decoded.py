"""Reading what a render wrote: luma planes as PyAV decodes them, and MP4 box order."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

__all__ = ["y_plane", "luma_frames", "top_level_boxes"]


def y_plane(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame's Y plane as (height, width) uint8, without the line padding."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def luma_frames(path: Path | str) -> list[np.ndarray]:
    """Every decoded frame's Y plane."""
    with av.open(str(path)) as container:
        return [y_plane(frame).copy() for frame in container.decode(video=0)]


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
