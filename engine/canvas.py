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

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["fit_canvas", "BLUR_DARKEN"]

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
        ``rgb`` itself for ``cover``, else a new (height, width, 3) uint8 canvas.
    """
    if fit == "cover":
        return rgb
    image_h, image_w = rgb.shape[:2]
    canvas_w, canvas_h = _canvas_size(image_w, image_h, out_w, out_h)
    scale = min(1.0, out_w * max_zoom / canvas_w,
                math.sqrt(max_pixels / (canvas_w * canvas_h)))
    image = Image.fromarray(rgb)
    if scale < 1.0:  # more pixels than any frame can show: reduce before building
        image_w = max(1, round(image_w * scale))
        image_h = max(1, round(image_h * scale))
        image = image.resize((image_w, image_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        canvas_w, canvas_h = _canvas_size(image_w, image_h, out_w, out_h)
    if fit == "contain":
        canvas = Image.new("RGB", (canvas_w, canvas_h), tuple(background))
    elif fit == "contain-blur":
        canvas = _blurred_cover(image, canvas_w, canvas_h)
    else:
        raise ValueError(f"unknown fit {fit!r}")
    canvas.paste(image, ((canvas_w - image_w) // 2, (canvas_h - image_h) // 2))
    return np.asarray(canvas)


def _blurred_cover(image: Image.Image, canvas_w: int, canvas_h: int) -> Image.Image:
    """The image cropped to cover the canvas, blurred, darkened, at the canvas size.

    Built small (a 16th of the canvas) and enlarged: the blur hides the difference, and a
    large canvas costs no full-size blur.
    """
    w, h = image.size
    if w * canvas_h >= h * canvas_w:  # crop the sides
        crop_w, crop_h = h * canvas_w / canvas_h, float(h)
    else:
        crop_w, crop_h = float(w), w * canvas_h / canvas_w
    box = ((w - crop_w) / 2, (h - crop_h) / 2, (w + crop_w) / 2, (h + crop_h) / 2)
    small_size = (max(8, round(canvas_w * _BLUR_SCALE)), max(8, round(canvas_h * _BLUR_SCALE)))
    small = image.resize(small_size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    small = small.filter(ImageFilter.GaussianBlur(radius=max(2.0, small_size[0] / 40)))
    small = small.point(lambda v: round(v * BLUR_DARKEN))
    return small.resize((canvas_w, canvas_h), Image.Resampling.BILINEAR)
