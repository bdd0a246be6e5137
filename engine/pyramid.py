"""The source image as YUV planes, with prefiltered levels for minification.

Level 0 is the image itself. Level k is the image reduced 2**k times with a Lanczos
filter, built once per image and only when the zoom needs it. A frame whose box is
``s`` source pixels per output pixel samples level k with s / 2**k in [3, 6): the
widened bilinear filter on that level stays within 40 dB PSNR of sampling the full
image even on black-on-white text (a residual scale under 3 drops text below 38 dB),
at a bounded number of taps however large the image.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .image import Source, StripSink, read_image
from .kernel import axis_weights, resample, rgb_to_yuv420

__all__ = ["Pyramid", "Level"]

# Numba's parallel kernels may only run one at a time per process when its threading
# layer is "workqueue" (no TBB or OpenMP runtime installed): concurrent launches from
# several threads abort the process. Renders in threads (Dramatiq workers) take turns
# per plane call, which costs little because a call takes milliseconds.
_KERNEL_LOCK = threading.Lock()

#: Largest scale sampled from level 0; above it a reduced level is used.
MAX_DIRECT_SCALE = 6.0
#: Smallest residual scale on a reduced level (below this its own blur shows).
MIN_LEVEL_SCALE = 3.0


@dataclass(frozen=True)
class Level:
    """One pyramid level: planes and their size relative to the full image."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    fx: float  # level pixels per image pixel, horizontally
    fy: float


def _empty_planes(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.empty((h, w), dtype=np.uint8)
    u = np.empty(((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
    return y, u, np.empty_like(u)


def _planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w, _ = rgb.shape
    y, u, v = _empty_planes(w, h)
    with _KERNEL_LOCK:
        rgb_to_yuv420(rgb, y, u, v)
    return y, u, v


def _reduce(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A plane resized to ``size`` (width, height) with Lanczos."""
    h, w = plane.shape  # frombuffer: Pillow reads the array itself, no copy
    image = Image.frombuffer("L", (w, h), np.ascontiguousarray(plane), "raw", "L", 0, 1)
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


class Pyramid:
    """YUV planes of one image at the resolutions a render needs.

    Args:
        rgb: (height, width, 3) uint8 image.
    """

    def __init__(self, rgb: np.ndarray) -> None:
        self.height, self.width = rgb.shape[:2]
        self._levels: dict[int, Level] = {0: Level(*_planes(rgb), 1.0, 1.0)}

    @classmethod
    def read(cls, source: Source, *, max_pixels: int,
             background: tuple[int, int, int]) -> Pyramid:
        """The pyramid of an image, decoded strip by strip straight into YUV planes: the
        image is never held as RGB (3 bytes a pixel), only as planes (1.5).

        Raises:
            ImageError: as :func:`~zoomreel.image.read_image`.
        """
        planes: list[np.ndarray] = []

        def start(width: int, height: int) -> StripSink:
            planes.extend(_empty_planes(width, height))
            y, u, v = planes

            def put(top: int, rows: np.ndarray) -> None:  # strips start on even rows
                n, half = len(rows), top // 2
                with _KERNEL_LOCK:
                    rgb_to_yuv420(rows, y[top:top + n], u[half:half + (n + 1) // 2],
                                  v[half:half + (n + 1) // 2])

            return put

        read_image(source, start, max_pixels=max_pixels, background=background)
        pyramid = cls.__new__(cls)
        pyramid.height, pyramid.width = planes[0].shape
        y, u, v = planes
        pyramid._levels = {0: Level(y, u, v, 1.0, 1.0)}
        return pyramid

    @staticmethod
    def level_for(scale: float) -> int:
        """The level to sample for ``scale`` source pixels per output pixel."""
        if scale < MAX_DIRECT_SCALE:
            return 0
        return max(0, int(math.floor(math.log2(scale / MIN_LEVEL_SCALE))))

    def prepare(self, max_scale: float) -> None:
        """Build every level a render with scales up to ``max_scale`` samples.

        Each level is reduced from level 0's planes, one plane at a time (Lanczos is
        linear, so this equals reducing the RGB image, to rounding): the RGB image is not
        needed once the pyramid exists, and no 4-bytes-per-pixel copy of it is made.
        """
        top = self.level_for(max_scale)
        base = self._levels[0]
        for k in range(1, top + 1):
            if k in self._levels:
                continue
            size = (max(1, round(self.width / 2**k)), max(1, round(self.height / 2**k)))
            chroma = ((size[0] + 1) // 2, (size[1] + 1) // 2)
            self._levels[k] = Level(_reduce(base.y, size), _reduce(base.u, chroma),
                                    _reduce(base.v, chroma), size[0] / self.width,
                                    size[1] / self.height)

    def level(self, k: int) -> Level:
        """Level k, or the largest built level below it."""
        while k not in self._levels:
            k -= 1
        return self._levels[k]

    def render(
        self,
        box: tuple[float, float, float, float],
        y: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        cubic: bool = False,
    ) -> None:
        """Resample ``box`` (image coordinates) into the output planes y, u, v.

        u and v are the half-size chroma planes of the output; ``cubic`` filters with
        Catmull-Rom instead of the triangle (sharper where the image is magnified).
        """
        for args in self.kernel_calls(box, y, u, v, cubic):
            with _KERNEL_LOCK:
                resample(*args)

    def kernel_calls(
        self,
        box: tuple[float, float, float, float],
        y: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        cubic: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The arguments of the ``resample`` call that fills each of y, u, v for
        :meth:`render`: the level's plane, the filter taps of both axes (computed here,
        u's and v's once), the output plane."""
        x0, y0, x1, y1 = box
        out_h, out_w = y.shape
        scale = max((x1 - x0) / out_w, (y1 - y0) / out_h)
        lv = self.level(self.level_for(scale))
        taps = {}
        for half, (ph, pw), (oh, ow) in ((1.0, lv.y.shape, y.shape), (0.5, lv.u.shape, u.shape)):
            taps[half] = (*axis_weights(x0, x1, pw, ow, lv.fx * half, cubic),
                          *axis_weights(y0, y1, ph, oh, lv.fy * half, cubic))
        return [(lv.y, *taps[1.0], y), (lv.u, *taps[0.5], u), (lv.v, *taps[0.5], v)]
