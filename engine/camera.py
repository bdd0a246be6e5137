"""The camera path: which source rectangle each frame shows.

Exactly as CONTRACT.md defines it: frame n (t = n / frame_rate) shows the rectangle of
size (cw / z, ch / z) centred in the image, where (cw, ch) is the largest rectangle of the
output's aspect ratio inside the image and z = 1 + (zoom_speed / 100) * t. Coordinates are
continuous (pixel edges at integers, Pillow's ``box`` convention) and never rounded.
"""

from __future__ import annotations

from collections.abc import Iterator

from .spec import RenderSpec

__all__ = ["cover_size", "zoom_at", "frame_rect", "camera_path"]

Rect = tuple[float, float, float, float]


def cover_size(image_w: int, image_h: int, out_w: int, out_h: int) -> tuple[float, float]:
    """The largest (width, height) of the output's aspect ratio that fits in the image."""
    if image_w * out_h >= image_h * out_w:  # image is wider than the output
        return image_h * out_w / out_h, float(image_h)
    return float(image_w), image_w * out_h / out_w


def zoom_at(t: float, zoom_speed: float) -> float:
    """Zoom factor at time t seconds: 1 + zoom_speed / 100 * t."""
    return 1.0 + (zoom_speed / 100.0) * t


def frame_rect(n: int, spec: RenderSpec, image_w: int, image_h: int) -> Rect:
    """Source rectangle (x0, y0, x1, y1) shown by frame n."""
    cw, ch = cover_size(image_w, image_h, spec.width, spec.height)
    z = zoom_at(n / spec.frame_rate, spec.zoom_speed)
    w, h = cw / z, ch / z
    cx, cy = image_w / 2.0, image_h / 2.0
    return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


def camera_path(spec: RenderSpec, image_w: int, image_h: int) -> Iterator[Rect]:
    """Rectangles for frames 0 .. total_frames - 1, in order."""
    for n in range(spec.total_frames):
        yield frame_rect(n, spec, image_w, image_h)
