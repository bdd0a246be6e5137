"""Numba kernels: colour conversion and the resampler that fills YUV planes.

The resampler is Pillow's bilinear ``resize(size, box=...)`` in float arithmetic:
a triangle filter that is widened by the scale factor when the box is larger than
the output, so minified detail is low-passed instead of aliased. It is separable
because the box is axis-aligned; weights depend on one axis only and are computed
once per frame and axis (``axis_weights``). ``resample`` then runs the vertical pass
(contiguous rows, which vectorises) and the horizontal pass straight into the output
plane, row by row, so no intermediate frame exists.
"""

from __future__ import annotations

import ctypes
import math
import sys

import numba
import numpy as np

from ._libc import libc_function

# Numba's parallel kernels run on OpenMP threads, which by default spin between kernels
# and take CPU from x264 beside them (1080p: ~86 frames/s spinning, ~108 waiting
# passively, on 2 cores). The wait policy is process-wide, so it is not set here: the
# zoomreel commands set OMP_WAIT_POLICY=PASSIVE (unless set) before Numba loads, and
# programs embedding the library may do the same.

__all__ = ["axis_weights", "page_out_compiler", "resample", "rgb_to_yuv420", "KR", "KB"]

_MADV_DONTNEED = 4
_COMPILER = "libllvmlite.so"


def page_out_compiler() -> int:
    """Give back the resident pages of LLVM (llvmlite's shared library): 50-70 MB that
    Numba needs to compile a kernel or load one from its cache, and not to run one.

    Call it once the kernels a render uses have run. Only the library's read-only
    mappings none of whose pages the process has written (its code and constants, never
    its relocated data) are advised ``MADV_DONTNEED`` (Linux): their pages leave this
    process and are read again from the file (the page cache) if a later compilation
    touches them; nothing is lost. (``MADV_PAGEOUT`` would leave the pages that another
    process maps too, as every worker beside another does.) Returns the bytes advised
    (0 where the system has no such call)."""
    if not sys.platform.startswith("linux"):
        return 0
    madvise = libc_function("madvise")
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    for start, end in _unwritten_mappings(_COMPILER):
        if madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def _unwritten_mappings(library: str) -> list[tuple[int, int]]:
    """(start, end) of each mapping of ``library`` that is not writable and holds no
    page the process has written (``Anonymous: 0 kB`` in /proc/self/smaps)."""
    found: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
                mine = len(fields) >= 6 and fields[5].endswith(library)
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = (start, end) if mine and "w" not in fields[1] else None
            elif current is not None and fields[0] == "Anonymous:":
                if fields[1] == "0":
                    found.append(current)
                current = None
    return found


# BT.709 luma coefficients.
KR = 0.2126
KB = 0.0722
_KG = 1.0 - KR - KB


@numba.njit(inline="always")
def _filter(x: float, cubic: bool) -> float:
    """The triangle (bilinear) or Catmull-Rom (cubic, a = -0.5, Pillow's bicubic) filter."""
    x = abs(x)
    if not cubic:
        return max(0.0, 1.0 - x)
    if x < 1.0:
        return (1.5 * x - 2.5) * x * x + 1.0
    if x < 2.0:
        return ((x - 5.0) * x + 8.0) * x * -0.5 + 2.0
    return 0.0


@numba.njit(nogil=True, cache=True)
def axis_weights(
    in0: float, in1: float, in_size: int, out_size: int, scale_to_plane: float,
    cubic: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Filter taps for one axis, as Pillow's ``precompute_coeffs`` (bilinear, or bicubic
    with ``cubic``).

    Args:
        in0: box start in source-image coordinates.
        in1: box end in source-image coordinates.
        in_size: plane size on this axis.
        out_size: output size on this axis.
        scale_to_plane: plane pixels per source-image pixel (1 for level 0 luma).
        cubic: Catmull-Rom (support 2) instead of the triangle (support 1).

    Returns:
        (first, weights, ntaps): first[i] is the first plane index read by output i,
        weights[i, :] its normalised weights (unused taps are 0; the row length is a
        multiple of four).
    """
    in0 = in0 * scale_to_plane
    in1 = in1 * scale_to_plane
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = filterscale * (2.0 if cubic else 1.0)  # the filter's, widened by the scale
    ksize = int(math.ceil(support)) * 2 + 1
    ksize = (ksize + 3) // 4 * 4  # whole groups of four taps, see resample
    first = np.empty(out_size, dtype=np.int32)
    weights = np.zeros((out_size, ksize), dtype=np.float32)
    ss = 1.0 / filterscale
    ntaps = 1
    for i in range(out_size):
        center = in0 + (i + 0.5) * scale
        lo = int(center - support + 0.5)
        if lo < 0:
            lo = 0
        hi = int(center + support + 0.5)
        if hi > in_size:
            hi = in_size
        if hi <= lo:  # the box lies at the very edge; use the nearest pixel
            lo = min(max(int(center), 0), in_size - 1)
            hi = lo + 1
        total = 0.0
        for k in range(hi - lo):
            w = _filter((k + lo - center + 0.5) * ss, cubic)
            weights[i, k] = w
            total += w
        if total == 0.0:
            weights[i, 0] = 1.0
            total = 1.0
        for k in range(hi - lo):
            weights[i, k] /= total
        first[i] = lo
        ntaps = max(ntaps, hi - lo)
    return first, weights, ntaps


#: Output rows resampled together: the horizontal pass loads each output pixel's
#: taps and weights once for this many rows (~25% faster than one row at a time).
#: resample spells the four rows out, so this is not a free parameter.
_ROWS = 4


@numba.njit(nogil=True, cache=True, parallel=True, fastmath=True)
def resample(
    src: np.ndarray,
    xfirst: np.ndarray,
    xweights: np.ndarray,
    nx: int,
    yfirst: np.ndarray,
    yweights: np.ndarray,
    ny: int,
    out: np.ndarray,
) -> None:
    """Resample the uint8 plane ``src`` into the uint8 plane ``out`` (rows x cols).

    Works on blocks of four output rows. Vertical pass first: for each row, combine
    the source rows it reads over just the columns the horizontal taps need, four taps
    at a time (weights are padded with zeros to a multiple of four), so the loop over
    columns has no data-dependent inner loop and vectorises. Then the horizontal taps
    for the four rows at once, sharing each output pixel's tap position and weights.
    """
    out_h, out_w = out.shape
    src_h, src_w = src.shape
    c0 = xfirst[0]
    c1 = min(xfirst[out_w - 1] + nx, src_w)
    width = c1 - c0
    for block in numba.prange((out_h + _ROWS - 1) // _ROWS):
        j0 = block * _ROWS
        # Padded so the horizontal pass may read a whole tap group past the end.
        rows = np.zeros((_ROWS, width + xweights.shape[1]), dtype=np.float32)
        for r in range(_ROWS):
            j = min(j0 + r, out_h - 1)  # the last block repeats the last row
            row = rows[r]
            y0 = yfirst[j]
            for k in range(0, ny, 4):
                w0 = yweights[j, k]
                w1 = yweights[j, k + 1]
                w2 = yweights[j, k + 2]
                w3 = yweights[j, k + 3]
                # Padding taps have weight 0; clamp their row so the read stays inside.
                a = src[min(y0 + k, src_h - 1), c0:c1]
                b = src[min(y0 + k + 1, src_h - 1), c0:c1]
                c = src[min(y0 + k + 2, src_h - 1), c0:c1]
                d = src[min(y0 + k + 3, src_h - 1), c0:c1]
                for x in range(width):
                    row[x] += (
                        w0 * np.float32(a[x])
                        + w1 * np.float32(b[x])
                        + w2 * np.float32(c[x])
                        + w3 * np.float32(d[x])
                    )
        r0 = rows[0]
        r1 = rows[1]
        r2 = rows[2]
        r3 = rows[3]
        for i in range(out_w):
            base = xfirst[i] - c0
            a0 = np.float32(0.5)  # +0.5: round to nearest when truncated to uint8
            a1 = np.float32(0.5)
            a2 = np.float32(0.5)
            a3 = np.float32(0.5)
            for k in range(nx):
                w = xweights[i, k]
                a0 += w * r0[base + k]
                a1 += w * r1[base + k]
                a2 += w * r2[base + k]
                a3 += w * r3[base + k]
            out[j0, i] = _to_u8(a0)
            if j0 + 1 < out_h:
                out[j0 + 1, i] = _to_u8(a1)
            if j0 + 2 < out_h:
                out[j0 + 2, i] = _to_u8(a2)
            if j0 + 3 < out_h:
                out[j0 + 3, i] = _to_u8(a3)


@numba.njit(inline="always")
def _to_u8(value: np.float32) -> np.uint8:
    return np.uint8(min(max(value, np.float32(0.0)), np.float32(255.0)))


@numba.njit(nogil=True, cache=True)
def rgb_to_yuv420(rgb: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """BT.709 limited-range Y at full resolution, Cb/Cr averaged over 2x2 blocks.

    ``u`` and ``v`` are (ceil(h/2), ceil(w/2)); odd edges average the pixels there are.
    """
    h, w, _ = rgb.shape
    for r in range(h):
        for c in range(w):
            yy = KR * rgb[r, c, 0] + _KG * rgb[r, c, 1] + KB * rgb[r, c, 2]
            y[r, c] = np.uint8(16.0 + 219.0 / 255.0 * yy + 0.5)
    ch, cw = u.shape
    for r in range(ch):
        for c in range(cw):
            sr = 0.0
            sg = 0.0
            sb = 0.0
            n = 0
            for dr in range(2):
                for dc in range(2):
                    rr = 2 * r + dr
                    cc = 2 * c + dc
                    if rr < h and cc < w:
                        sr += rgb[rr, cc, 0]
                        sg += rgb[rr, cc, 1]
                        sb += rgb[rr, cc, 2]
                        n += 1
            sr /= n
            sg /= n
            sb /= n
            yy = KR * sr + _KG * sg + KB * sb
            cb = 128.0 + 224.0 / 255.0 * (sb - yy) / (2.0 * (1.0 - KB))
            cr = 128.0 + 224.0 / 255.0 * (sr - yy) / (2.0 * (1.0 - KR))
            u[r, c] = np.uint8(min(max(cb + 0.5, 0.0), 255.0))
            v[r, c] = np.uint8(min(max(cr + 0.5, 0.0), 255.0))
