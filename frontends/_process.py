"""Process-wide settings that only the zoomreel commands make, never the library.

A program embedding the library decides these for itself (see README, "The library").
"""

from __future__ import annotations

import os
import warnings

__all__ = ["prefer_passive_openmp", "prepare_rendering"]


def prefer_passive_openmp() -> None:
    """Let Numba's OpenMP threads wait passively between kernels (unless the user chose).

    Spinning threads take CPU from x264 beside them: a 1080p render ran at ~86 frames/s
    that way and ~108 waiting passively, on 2 cores. Must run before Numba loads.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def prepare_rendering() -> None:
    """Ready this process to render: Pillow's plugins registered once, before worker
    threads race to do it, and Pillow's decompression-bomb *warning* silenced, since every
    render enforces its own pixel limit from the image header (RenderSpec.max_pixels).

    SVT-AV1 (codec av1) writes some 25 lines of banner and configuration to stderr per
    encoder unless ``SVT_LOG`` says otherwise; it reads the variable once, when the
    process opens its first AV1 encoder, so this keeps errors only (unless the user chose).
    """
    from PIL import Image

    os.environ.setdefault("SVT_LOG", "1")

    Image.init()
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
