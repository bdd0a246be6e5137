"""Numba kernels that compose a reel's frames on their YUV planes: transitions and text.

Plain loops writing into ``out`` planes (uint8, any row stride: the encoder's padded
frame planes), tested against NumPy references (tests/test_reel.py). ``out`` may be the
same array as ``a``: each kernel reads a sample before it writes it, or reads ahead of
where it writes.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["mix", "mix_level", "push_left", "push_up", "overlay", "weight_of", "WEIGHT_ONE"]

#: The weights of mix are in 1/256ths: WEIGHT_ONE is all of ``b``.
WEIGHT_ONE = 256


def weight_of(progress: float) -> int:
    """A fraction 0..1 as mix's integer weight."""
    return min(max(int(round(progress * WEIGHT_ONE)), 0), WEIGHT_ONE)


@numba.njit(nogil=True, cache=True)
def mix(a: np.ndarray, b: np.ndarray, weight: int, out: np.ndarray) -> None:
    """out = a + (b - a) * weight / 256, rounded: the crossfade of two planes.

    Against the exact blend with the weight weight / 256 it is within half a code
    value (the rounding), and the weight itself is within 1/512 of the fraction it
    stands for, so within one code value of any a * (1 - w) + b * w it was made from.
    """
    h, w = out.shape
    k = np.int32(weight)
    for r in range(h):
        for c in range(w):
            out[r, c] = np.uint8((np.int32(a[r, c]) * (256 - k) + np.int32(b[r, c]) * k + 128)
                                 >> 8)


@numba.njit(nogil=True, cache=True)
def mix_level(a: np.ndarray, level: int, weight: int, out: np.ndarray) -> None:
    """out = a + (level - a) * weight / 256, rounded: a plane faded towards one value
    (black is Y 16, U and V 128 in limited range)."""
    h, w = out.shape
    k = np.int32(weight)
    lv = np.int32(level) * k + 128
    for r in range(h):
        for c in range(w):
            out[r, c] = np.uint8((np.int32(a[r, c]) * (256 - k) + lv) >> 8)


@numba.njit(nogil=True, cache=True)
def push_left(a: np.ndarray, b: np.ndarray, shift: int, out: np.ndarray) -> None:
    """``b`` enters from the right by ``shift`` columns, pushing ``a`` out to the left:
    out[:, :w-shift] = a[:, shift:], out[:, w-shift:] = b[:, :shift]."""
    h, w = out.shape
    for r in range(h):
        for c in range(w - shift):  # reads ahead of the write: out may be a
            out[r, c] = a[r, c + shift]
        for c in range(w - shift, w):
            out[r, c] = b[r, c - (w - shift)]


@numba.njit(nogil=True, cache=True)
def push_up(a: np.ndarray, b: np.ndarray, shift: int, out: np.ndarray) -> None:
    """``b`` enters from the bottom by ``shift`` rows, pushing ``a`` out at the top."""
    h, w = out.shape
    for r in range(h - shift):
        for c in range(w):
            out[r, c] = a[r + shift, c]
    for r in range(h - shift, h):
        for c in range(w):
            out[r, c] = b[r - (h - shift), c]


@numba.njit(nogil=True, cache=True)
def overlay(out: np.ndarray, top: int, left: int, colour: np.ndarray, alpha: np.ndarray,
            opacity: float) -> None:
    """Blend a premultiplied overlay into ``out`` at (top, left):
    out = out * (1 - opacity * alpha) + opacity * colour, rounded.

    ``colour`` (float32) is the overlay's value already multiplied by its ``alpha``
    (float32, 0..1); the overlay must lie inside ``out``.
    """
    h, w = alpha.shape
    o = np.float32(opacity)
    for r in range(h):
        for c in range(w):
            a = alpha[r, c] * o
            if a > np.float32(0.0):
                v = np.float32(out[top + r, left + c]) * (np.float32(1.0) - a) \
                    + colour[r, c] * o + np.float32(0.5)
                out[top + r, left + c] = np.uint8(min(max(v, np.float32(0.0)),
                                                      np.float32(255.0)))
