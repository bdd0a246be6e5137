"""Framing: the picture the camera path runs over, for each ``fit``.

* ``cover``: the image itself; the path's largest rectangle crops it to the output's
  shape.
* ``contain``: the whole image, centred on a canvas of the output's aspect ratio filled
  with the background colour (bars).
* ``contain-blur``: the same canvas, its bars filled with a blurred, darkened copy of the
  image cropped to cover the canvas (the usual look of vertical social video).

The canvas has the output's aspect ratio (to the nearest whole pixel), so at zoom 1 a frame
shows all of it and the image part of the frame is the image resized to fit (to within
half a canvas pixel, where the bars cannot split evenly). It is never larger than the
detail a render can use: at most the output's size times the path's largest zoom, and at
most ``max_pixels``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from .camera import cover_size

if TYPE_CHECKING:  # Pillow and NumPy load with the first canvas, not with this module
    import numpy as np
    from PIL import Image

__all__ = ["fit_canvas", "canvas_geometry", "CanvasGeometry", "BLUR_DARKEN"]

#: How much the blurred background of ``contain-blur`` is darkened (its brightness kept).
BLUR_DARKEN = 0.55
#: The blurred background is built at this fraction of the canvas size, then enlarged.
_BLUR_SCALE = 1 / 16


def _canvas_size(image_w: int, image_h: int, out_w: int, out_h: int) -> tuple[int, int]:
    """The smallest canvas of the output's aspect ratio that holds the image: as large as
    the image along one side, the other rounded to whole pixels."""
    if image_w * out_h >= image_h * out_w:  # bars above and below
        return image_w, max(image_h, round(image_w * out_h / out_w))
    return max(image_w, round(image_h * out_w / out_h)), image_h


class CanvasGeometry(NamedTuple):
    """Where the path runs: the canvas's size and where the image sits on it (pixels)."""

    width: int
    height: int
    image_x: int
    image_y: int
    image_width: int
    image_height: int


def canvas_geometry(image_w: int, image_h: int, fit: str, out_w: int, out_h: int, *,
                    max_zoom: float = 1.0, max_pixels: int = 100_000_000) -> CanvasGeometry:
    """The canvas ``fit_canvas`` builds for an image of this size, without building it.

    For ``cover`` the canvas is the image itself. Otherwise it has the output's aspect
    ratio and holds the whole image, both reduced where the canvas would have more detail
    than any frame shows (arguments as :func:`fit_canvas`).
    """
    if fit == "cover":
        return CanvasGeometry(image_w, image_h, 0, 0, image_w, image_h)
    if fit not in ("contain", "contain-blur"):
        raise ValueError(f"unknown fit {fit!r}")
    canvas_w, canvas_h = _canvas_size(image_w, image_h, out_w, out_h)
    scale = min(1.0, out_w * max_zoom / canvas_w,
                math.sqrt(max_pixels / (canvas_w * canvas_h)))
    if scale < 1.0:  # more pixels than any frame can show: reduce before building
        image_w = max(1, round(image_w * scale))
        image_h = max(1, round(image_h * scale))
        canvas_w, canvas_h = _canvas_size(image_w, image_h, out_w, out_h)
    return CanvasGeometry(canvas_w, canvas_h, (canvas_w - image_w) // 2,
                          (canvas_h - image_h) // 2, image_w, image_h)


def fit_canvas(rgb: np.ndarray, fit: str, out_w: int, out_h: int, *,
               background: tuple[int, int, int] = (0, 0, 0), max_zoom: float = 1.0,
               max_pixels: int = 100_000_000) -> np.ndarray:
    """The RGB picture the path runs over for ``fit``.

    Args:
        rgb: the image, (height, width, 3) uint8.
        fit: ``cover``, ``contain`` or ``contain-blur``.
        out_w, out_h: the output size.
        background: the bars' colour (``contain``).
        max_zoom: the path's largest zoom: the canvas holds no more detail than that needs.
        max_pixels: the canvas's largest size in pixels.

    Returns:
        ``rgb`` itself for ``cover``, else a new (height, width, 3) uint8 canvas laid out
        as :func:`canvas_geometry` says.
    """
    if fit == "cover":
        return rgb
    import numpy as np
    from PIL import Image

    image_h, image_w = rgb.shape[:2]
    geometry = canvas_geometry(image_w, image_h, fit, out_w, out_h, max_zoom=max_zoom,
                               max_pixels=max_pixels)
    image = Image.fromarray(rgb)
    if (geometry.image_width, geometry.image_height) != (image_w, image_h):
        image = image.resize((geometry.image_width, geometry.image_height),
                             Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas_size = (geometry.width, geometry.height)
    if fit == "contain":
        canvas = Image.new("RGB", canvas_size, tuple(background))
    else:
        canvas = _blurred_cover(image, *canvas_size)
    canvas.paste(image, (geometry.image_x, geometry.image_y))
    return np.asarray(canvas)


def _blurred_cover(image: Image.Image, canvas_w: int, canvas_h: int) -> Image.Image:
    """The image cropped to cover the canvas, blurred, darkened, at the canvas size.

    Built small (a 16th of the canvas) and enlarged: the blur hides the difference, and a
    large canvas costs no full-size blur.
    """
    from PIL import Image, ImageFilter

    w, h = image.size
    crop_w, crop_h = cover_size(w, h, canvas_w, canvas_h)  # as the camera crops for cover
    box = ((w - crop_w) / 2, (h - crop_h) / 2, (w + crop_w) / 2, (h + crop_h) / 2)
    small_size = (max(8, round(canvas_w * _BLUR_SCALE)), max(8, round(canvas_h * _BLUR_SCALE)))
    small = image.resize(small_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    small = small.filter(ImageFilter.GaussianBlur(radius=max(2.0, small_size[0] / 40)))
    small = small.point(lambda v: round(v * BLUR_DARKEN))
    return small.resize((canvas_w, canvas_h), Image.Resampling.BILINEAR)
