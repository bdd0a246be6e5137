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

import numpy as np
from PIL import Image

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


def _planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w, _ = rgb.shape
    y = np.empty((h, w), dtype=np.uint8)
    u = np.empty(((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
    v = np.empty_like(u)
    with _KERNEL_LOCK:
        rgb_to_yuv420(rgb, y, u, v)
    return y, u, v


class Pyramid:
    """YUV planes of one image at the resolutions a render needs.

    Args:
        rgb: (height, width, 3) uint8 image.
    """

    def __init__(self, rgb: np.ndarray) -> None:
        self.height, self.width = rgb.shape[:2]
        self._rgb: np.ndarray | None = rgb
        self._levels: dict[int, Level] = {0: Level(*_planes(rgb), 1.0, 1.0)}

    @staticmethod
    def level_for(scale: float) -> int:
        """The level to sample for ``scale`` source pixels per output pixel."""
        if scale < MAX_DIRECT_SCALE:
            return 0
        return max(0, int(math.floor(math.log2(scale / MIN_LEVEL_SCALE))))

    def prepare(self, max_scale: float) -> None:
        """Build every level a render with scales up to ``max_scale`` samples, then
        drop the RGB image (the planes are all that frames need)."""
        top = self.level_for(max_scale)
        if top and self._rgb is not None:
            image = Image.fromarray(self._rgb)
            for k in range(1, top + 1):
                size = (max(1, round(self.width / 2**k)), max(1, round(self.height / 2**k)))
                reduced = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
                self._levels[k] = Level(
                    *_planes(reduced), size[0] / self.width, size[1] / self.height
                )
        self._rgb = None

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
    ) -> None:
        """Resample ``box`` (image coordinates) into the output planes y, u, v.

        u and v are the half-size chroma planes of the output.
        """
        x0, y0, x1, y1 = box
        out_h, out_w = y.shape
        scale = max((x1 - x0) / out_w, (y1 - y0) / out_h)
        lv = self.level(self.level_for(scale))
        for plane_src, outs, half in ((lv.y, (y,), 1.0), (lv.u, (u, v), 0.5)):
            ph, pw = plane_src.shape
            oh, ow = outs[0].shape
            xf, xw, nx = axis_weights(x0, x1, pw, ow, lv.fx * half)
            yf, yw, ny = axis_weights(y0, y1, ph, oh, lv.fy * half)
            with _KERNEL_LOCK:
                resample(plane_src, xf, xw, nx, yf, yw, ny, outs[0])
                if len(outs) == 2:
                    resample(lv.v, xf, xw, nx, yf, yw, ny, outs[1])
