"""The camera path: which source rectangle each frame shows.

Exactly as CONTRACT.md defines it. A path has a start and an end keyframe, each a zoom
z >= 1 and a focus (fx, fy) in 0..1 of the image. Frame n is at t = n / frame_rate,
u = t / length, and:

* progress p = easing(u), where ``loop: ping-pong`` with ``cycles`` k first replaces u by
  1 - |1 - 2 frac(k u)| (there and back, k times);
* zoom z = z0 + (z1 - z0) p (``curve: linear``) or z0 (z1 / z0)^p (``curve: constant``);
* the rectangle has the size (cw / z, ch / z), where (cw, ch) is the largest rectangle of
  the output's aspect ratio inside the image, and its centre is the focus interpolated
  linearly in p, in pixels, then clamped so the rectangle stays inside the image.

The defaults (zoom_speed, direction in, focus at the centre) give the documented zoom:
z = 1 + zoom_speed / 100 * t, centred. Coordinates are continuous (pixel edges at
integers, Pillow's ``box`` convention) and never rounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from .spec import RenderSpec

__all__ = ["cover_size", "progress_at", "zoom_at", "frame_rect", "camera_path", "Rect"]

Rect = tuple[float, float, float, float]

_EASINGS = {
    "linear": lambda u: u,
    "ease-in": lambda u: u * u,
    "ease-out": lambda u: 1.0 - (1.0 - u) * (1.0 - u),
    "ease-in-out": lambda u: u * u * (3.0 - 2.0 * u),
}


def cover_size(image_w: float, image_h: float, out_w: int, out_h: int) -> tuple[float, float]:
    """The largest (width, height) of the output's aspect ratio that fits in the image."""
    if image_w * out_h >= image_h * out_w:  # image is wider than the output
        return image_h * out_w / out_h, float(image_h)
    return float(image_w), image_w * out_h / out_w


def progress_at(u: float, spec: RenderSpec) -> float:
    """The path's progress p in 0..1 at u = t / length (loop, then easing)."""
    if spec.loop == "ping-pong":
        k = spec.cycles or 1
        u = 1.0 - abs(1.0 - 2.0 * math.modf(k * u)[0])
    return float(_EASINGS[spec.easing](u))


def zoom_at(p: float, spec: RenderSpec) -> float:
    """The zoom factor at progress p."""
    z0, z1 = spec.zoom_keyframes
    if spec.curve == "constant":
        return float(z0 * (z1 / z0) ** p)
    return z0 + (z1 - z0) * p


def frame_rect(n: int, spec: RenderSpec, image_w: float, image_h: float,
               out_size: tuple[int, int] | None = None) -> Rect:
    """Source rectangle (x0, y0, x1, y1) shown by frame n.

    Args:
        n: the frame's number, from 0.
        spec: the render.
        image_w, image_h: the size of what the path runs over (the image, or its canvas).
        out_size: the output size; default ``spec.size_for(image_w, image_h)``.
    """
    out_w, out_h = out_size or spec.size_for(round(image_w), round(image_h))
    cw, ch = cover_size(image_w, image_h, out_w, out_h)
    p = progress_at(n / spec.frame_rate / spec.length, spec)
    z = zoom_at(p, spec)
    w, h = cw / z, ch / z
    (fx0, fy0), (fx1, fy1) = spec.focus_keyframes
    cx = (fx0 + (fx1 - fx0) * p) * image_w
    cy = (fy0 + (fy1 - fy0) * p) * image_h
    cx = min(max(cx, w / 2.0), image_w - w / 2.0)
    cy = min(max(cy, h / 2.0), image_h - h / 2.0)
    return (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)


def camera_path(spec: RenderSpec, image_w: float, image_h: float,
                out_size: tuple[int, int] | None = None) -> Iterator[Rect]:
    """Rectangles for frames 0 .. total_frames - 1, in order (arguments as frame_rect)."""
    for n in range(spec.total_frames):
        yield frame_rect(n, spec, image_w, image_h, out_size)
