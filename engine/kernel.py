"""Numba kernels: colour conversion and the resampler that fills YUV planes.

The resampler is Pillow's bilinear ``resize(size, box=...)`` in float arithmetic:
a triangle filter that is widened by the scale factor when the box is larger than
the output, so minified detail is low-passed instead of aliased. It is separable
because the box is axis-aligned; weights depend on one axis only and are computed
once per frame and axis (``axis_weights``). ``resample`` then runs the vertical pass
(contiguous rows) and the horizontal pass straight into the output plane, four rows
at a time, so no intermediate frame exists.

Both passes are written in explicit vectors of LANES float32 (``_splat``, ``_load``,
``_fma``, ``_store``: LLVM vector values through Numba intrinsics), because LLVM's
own vectoriser leaves the horizontal pass scalar: each output pixel reads its own
source columns, and the accumulators it would keep in registers may alias the planes
for all it knows. The horizontal pass takes one of two forms. Where the CPU Numba
compiles for has AVX-512 (``PERMUTES``), each tap of LANES output columns is one
two-register permute of the source columns they read (``_pick``) and one
multiply-add (``_resample_permuted``). Elsewhere, or where a tile of LANES output
columns spans more than 2 x ``_WINDOW`` source columns, it is a dense product over tiles
(``_column_tiles``, ``_resample_dense``), which needs no permute and does about
(LANES x scale + taps) multiply-adds per tile and row instead of taps.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic, models, register_model

from ._libc import libc_function

# Numba's parallel kernels run on OpenMP threads, which by default spin between kernels
# and take CPU from x264 beside them (1080p: ~86 frames/s spinning, ~108 waiting
# passively, on 2 cores). The wait policy is process-wide, so it is not set here: the
# zoomreel commands set OMP_WAIT_POLICY=PASSIVE (unless set) before Numba loads, and
# programs embedding the library may do the same.

__all__ = ["axis_weights", "page_out_compiler", "resample", "rgb_to_yuv420", "KR", "KB",
           "PERMUTES"]

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


#: Lanes in the kernel's vectors: 16 float32, one AVX-512 register (two on AVX2, four
#: on SSE: LLVM splits wider vectors for the CPU it compiles for).
LANES = 16
_F32 = ir.FloatType()
_VECTOR = ir.VectorType(_F32, LANES)
_INDICES = ir.VectorType(ir.IntType(32), LANES)


def _target_features() -> list[str]:
    """The features of the CPU Numba compiles for, as its code generator takes them:
    NUMBA_CPU_FEATURES, else this machine's."""
    features: str | None = getattr(config, "CPU_FEATURES", None)
    if features is None:
        features = get_host_cpu_features()  # type: ignore[no-untyped-call]
    return features.split(",")


#: Whether that CPU has AVX-512, whose two-register permute (vpermi2ps) the horizontal
#: pass uses.
PERMUTES = "+avx512f" in _target_features()

#: Source columns one permute picks from: two vectors. A tile of LANES output columns
#: whose taps span more is picked from two windows; one spanning more than two is
#: resampled densely.
_WINDOW = 2 * LANES


#: numba.extending.intrinsic, typed loosely: an intrinsic's Python signature starts
#: with the typing context, which the kernels' calls do not pass.
_intrinsic: Callable[[Callable[..., Any]], Any] = intrinsic


class _Vector(types.Type):
    """LANES float32 as one LLVM vector value: kept in registers, never in memory."""

    def __init__(self) -> None:
        super().__init__(name=f"float32x{LANES}")


_vector = _Vector()


@register_model(_Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VECTOR)  # type: ignore[no-untyped-call]


def _broadcast(context: Any, builder: Any, value: Any, fe_type: Any) -> Any:
    scalar = context.cast(builder, value, fe_type, types.float32)
    lane0 = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar,
                                   ir.IntType(32)(0))
    return builder.shuffle_vector(lane0, lane0, ir.Constant(ir.VectorType(ir.IntType(32),
                                                                         LANES), [0] * LANES))


def _row_pointer(context: Any, builder: Any, array_type: Any, array: Any, row: Any,
                 col: Any, index_types: tuple[Any, Any]) -> Any:
    """Address of array[row, col] (a 2-D array; any strides)."""
    ary = context.make_array(array_type)(context, builder, array)
    inds = [context.cast(builder, i, t, types.intp)
            for i, t in zip((row, col), index_types, strict=True)]
    return cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
        context, builder, array_type, ary, inds)


def _is_plane(array: Any) -> bool:
    return (isinstance(array, types.Array) and array.ndim == 2
            and array.dtype in (types.uint8, types.float32))


@_intrinsic
def _splat(typingctx: Any, value: Any) -> Any:
    """A vector with ``value`` in every lane."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return _broadcast(context, builder, args[0], sig.args[0])
    return _vector(value), codegen


@_intrinsic
def _fma(typingctx: Any, a: Any, vector: Any, acc: Any) -> Any:
    """``a * vector + acc``, lane by lane (one fused multiply-add); ``a`` is a vector
    or a scalar for every lane."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fma = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), f"llvm.fma.v{LANES}f32")
        a = args[0] if sig.args[0] is _vector else _broadcast(context, builder, args[0],
                                                                sig.args[0])
        return builder.call(fma, [a, args[1], args[2]])
    return _vector(a, vector, acc), codegen


@_intrinsic
def _load(typingctx: Any, array: Any, row: Any, col: Any) -> Any:
    """``array[row, col:col + LANES]`` (uint8 or float32) as float32. Unchecked: the
    caller keeps the lanes inside the row."""
    if not _is_plane(array):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _row_pointer(context, builder, sig.args[0], args[0], args[1], args[2],
                           sig.args[1:])
        element = _F32 if sig.args[0].dtype == types.float32 else ir.IntType(8)
        lanes = ir.VectorType(element, LANES)
        value = builder.load(builder.bitcast(ptr, lanes.as_pointer()), align=1)
        return value if element is _F32 else builder.uitofp(value, _VECTOR)
    return _vector(array, row, col), codegen


@_intrinsic
def _store(typingctx: Any, array: Any, row: Any, col: Any, vector: Any) -> Any:
    """``array[row, col:col + LANES] = vector``; into uint8, each lane clamped to 0..255
    and truncated (as ``np.uint8`` of the clamped value). Unchecked, as :func:`_load`."""
    if not _is_plane(array) or vector is not _vector:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _row_pointer(context, builder, sig.args[0], args[0], args[1], args[2],
                           sig.args[1:3])
        value = args[3]
        if sig.args[0].dtype == types.uint8:
            low, high = ir.Constant(_VECTOR, [0.0] * LANES), ir.Constant(_VECTOR, [255.0] * LANES)
            value = builder.select(builder.fcmp_ordered(">", value, low), value, low)  # NaN: 0
            value = builder.select(builder.fcmp_ordered("<", value, high), value, high)
            value = builder.fptoui(value, ir.VectorType(ir.IntType(8), LANES))
        builder.store(value, builder.bitcast(ptr, value.type.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.none(array, row, col, vector), codegen


@_intrinsic
def _pick(typingctx: Any, rows: Any, r: Any, x0: Any, index: Any, t: Any, k: Any,
          wide: Any) -> Any:
    """Lane l: ``rows[r, x0 + index[t, l] + k]``, for ``index[t, l] + k`` under _WINDOW
    (under 2 x _WINDOW where ``wide``). Unchecked: the caller keeps the window inside
    the row. One vpermi2ps of the two vectors at x0 (two and a blend where wide) with
    AVX-512; a lane-by-lane gather elsewhere (correct, slow, not what resample picks)."""
    if not (_is_plane(rows) and rows.dtype == types.float32 and isinstance(index, types.Array)
            and index.ndim == 2 and index.dtype == types.int32):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        rows_t, r_t, x0_t, index_t, t_t, k_t, wide_t = sig.args
        rows_a, r_a, x0_a, index_a, t_a, k_a, wide_a = args
        x0 = context.cast(builder, x0_a, x0_t, types.intp)

        def vector(column: int) -> Any:  # rows[r, x0 + column:][:LANES]
            at = builder.add(x0, context.get_constant(types.intp, column))
            ptr = _row_pointer(context, builder, rows_t, rows_a, r_a, at, (r_t, types.intp))
            return builder.load(builder.bitcast(ptr, _VECTOR.as_pointer()), align=1)

        ptr = _row_pointer(context, builder, index_t, index_a, t_a,
                           context.get_constant(types.intp, 0), (t_t, types.intp))
        idx = builder.load(builder.bitcast(ptr, _INDICES.as_pointer()), align=1)
        k = context.cast(builder, k_a, k_t, types.int32)
        idx = builder.add(idx, builder.shuffle_vector(
            builder.insert_element(ir.Constant(_INDICES, ir.Undefined), k, ir.IntType(32)(0)),
            ir.Constant(_INDICES, ir.Undefined), ir.Constant(_INDICES, [0] * LANES)))
        if not PERMUTES:
            row = builder.bitcast(_row_pointer(context, builder, rows_t, rows_a, r_a, x0,
                                               (r_t, types.intp)), _F32.as_pointer())
            lanes = ir.Constant(_VECTOR, ir.Undefined)
            for lane in range(LANES):
                i = builder.extract_element(idx, ir.IntType(32)(lane))
                value = builder.load(builder.gep(row, [builder.sext(i, ir.IntType(64))]))
                lanes = builder.insert_element(lanes, value, ir.IntType(32)(lane))
            return lanes
        permute = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, ir.FunctionType(_VECTOR, [_VECTOR, _INDICES, _VECTOR]),
            "llvm.x86.avx512.vpermi2var.ps.512")
        low = builder.call(permute, [vector(0), idx, vector(LANES)])
        entry = builder.block
        with builder.if_then(context.cast(builder, wide_a, wide_t, types.boolean)):
            high = builder.call(permute, [vector(_WINDOW), idx,
                                          vector(_WINDOW + LANES)])
            beyond = builder.icmp_unsigned(">=", idx, ir.Constant(_INDICES, [_WINDOW] * LANES))
            both = builder.select(beyond, high, low)
            then = builder.block
        picked = builder.phi(_VECTOR)
        picked.add_incoming(low, entry)
        picked.add_incoming(both, then)
        return picked
    return _vector(rows, r, x0, index, t, k, wide), codegen


#: Output rows resampled together: the horizontal pass reads each tile's weights once
#: for this many rows. The kernels spell the four rows out, so this is not a free
#: parameter.
_ROWS = 4


@numba.njit(nogil=True, cache=True)
def _tiles(xfirst: np.ndarray, nx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tiles of LANES output columns both horizontal passes work in.

    Tile t covers output columns ``cols[t] .. cols[t] + LANES`` (the last tile ends at
    the last column, overlapping the one before it); its taps read ``span[t]``
    consecutive source columns from ``first[t]`` (relative to ``xfirst.min()``)."""
    out_w = xfirst.shape[0]
    base = xfirst.min()
    count = (out_w + LANES - 1) // LANES
    cols = np.empty(count, dtype=np.int64)
    first = np.empty(count, dtype=np.int64)
    span = np.empty(count, dtype=np.int64)
    for t in range(count):
        i0 = min(t * LANES, out_w - LANES)
        lo = xfirst[i0:i0 + LANES].min()
        cols[t] = i0
        first[t] = lo - base
        span[t] = xfirst[i0:i0 + LANES].max() + nx - lo
    return cols, first, span


@numba.njit(nogil=True, cache=True)
def _lane_taps(
    xfirst: np.ndarray, xweights: np.ndarray, nx: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The horizontal taps by tile (``_tiles``), for ``_pick``: output column
    ``cols[t] + l`` is ``sum(weights[t * nx + k, l] * column(first[t] + index[t, l] + k))``
    over k < nx. The last value is the most source columns a tile reads."""
    cols, first, span = _tiles(xfirst, nx)
    base = xfirst.min()
    index = np.empty((cols.shape[0], LANES), dtype=np.int32)
    weights = np.empty((cols.shape[0] * nx, LANES), dtype=np.float32)
    for t in range(cols.shape[0]):
        for lane in range(LANES):
            i = cols[t] + lane
            index[t, lane] = xfirst[i] - base - first[t]
            for k in range(nx):
                weights[t * nx + k, lane] = xweights[i, k]
    return cols, first, index, weights, span.max()


@numba.njit(nogil=True, cache=True)
def _column_tiles(
    xfirst: np.ndarray, xweights: np.ndarray, nx: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The horizontal taps as dense tiles (``_tiles``): output column ``cols[t] + l`` is
    ``sum(weights[t * stride + c, l] * column(first[t] + c))`` over c < span[t].
    Most of a tile's weights are zero (it spans about LANES x scale + nx columns, each
    lane nx of them); in exchange the pass is LANES-wide multiply-adds with no permute."""
    cols, first, span = _tiles(xfirst, nx)
    base = xfirst.min()
    stride = span.max()
    weights = np.zeros((cols.shape[0] * stride, LANES), dtype=np.float32)
    for t in range(cols.shape[0]):
        for lane in range(LANES):
            i = cols[t] + lane
            offset = t * stride + xfirst[i] - base - first[t]
            for k in range(nx):
                weights[offset + k, lane] = xweights[i, k]
    return cols, first, span, weights, stride


@numba.njit(nogil=True, cache=True, fastmath=True)
def _vertical_pass(src: np.ndarray, c0: int, width: int, yfirst: np.ndarray,
                   yweights: np.ndarray, ny: int, j: int, rows: np.ndarray, r: int) -> None:
    """``rows[r, :width]`` = output row j's vertical taps over the source columns from
    c0: four vectors of LANES columns at a time (four independent sums, so the
    multiply-adds of one do not wait for another's), then one at a time; narrower rows
    one pixel at a time."""
    src_h = src.shape[0]
    y0 = yfirst[j]
    if width < LANES:
        for x in range(width):
            total = np.float32(0.0)
            for k in range(ny):
                total += yweights[j, k] * np.float32(src[min(y0 + k, src_h - 1), c0 + x])
            rows[r, x] = total
        return
    x = 0
    while x + 4 * LANES <= width:
        a0 = _splat(0.0)
        a1 = _splat(0.0)
        a2 = _splat(0.0)
        a3 = _splat(0.0)
        for k in range(ny):  # padding taps weigh 0: clamp their row
            s = min(y0 + k, src_h - 1)
            w = yweights[j, k]
            a0 = _fma(w, _load(src, s, c0 + x), a0)
            a1 = _fma(w, _load(src, s, c0 + x + LANES), a1)
            a2 = _fma(w, _load(src, s, c0 + x + 2 * LANES), a2)
            a3 = _fma(w, _load(src, s, c0 + x + 3 * LANES), a3)
        _store(rows, r, x, a0)
        _store(rows, r, x + LANES, a1)
        _store(rows, r, x + 2 * LANES, a2)
        _store(rows, r, x + 3 * LANES, a3)
        x += 4 * LANES
    while x < width:
        at = min(x, width - LANES)  # the last vector overlaps the one before
        acc = _splat(0.0)
        for k in range(ny):
            acc = _fma(yweights[j, k], _load(src, min(y0 + k, src_h - 1), c0 + at), acc)
        _store(rows, r, at, acc)
        x += LANES


@numba.njit(nogil=True, cache=True, inline="always")
def _block_rows(src: np.ndarray, c0: int, width: int, yfirst: np.ndarray,
                yweights: np.ndarray, ny: int, j0: int, out_h: int, pad: int) -> np.ndarray:
    """The vertical pass of output rows j0 .. j0 + _ROWS (the last block repeats the
    last row), followed by ``pad`` zero columns: taps beyond the edge weigh 0."""
    rows = np.empty((_ROWS, width + pad), dtype=np.float32)
    rows[:, width:] = 0.0
    for r in range(_ROWS):
        _vertical_pass(src, c0, width, yfirst, yweights, ny, min(j0 + r, out_h - 1), rows, r)
    return rows


@numba.njit(nogil=True, cache=True, inline="always")
def _store_rows(out: np.ndarray, j0: int, col: int, a0: Any, a1: Any, a2: Any,
                a3: Any) -> None:
    """The four vectors as output rows j0 .. j0 + 3 from ``col``, those there are."""
    out_h = out.shape[0]
    _store(out, j0, col, a0)
    if j0 + 1 < out_h:
        _store(out, j0 + 1, col, a1)
    if j0 + 2 < out_h:
        _store(out, j0 + 2, col, a2)
    if j0 + 3 < out_h:
        _store(out, j0 + 3, col, a3)


@numba.njit(nogil=True, cache=True, parallel=True, fastmath=True)
def _resample_permuted(src: np.ndarray, xfirst: np.ndarray, xweights: np.ndarray, nx: int,
                       yfirst: np.ndarray, yweights: np.ndarray, ny: int,
                       out: np.ndarray) -> None:
    """resample, its horizontal pass by permutes (``_pick``): for each tile and tap,
    one pick and one multiply-add per row. Tiles must span at most 2 x _WINDOW source
    columns (``_lane_taps``'s span)."""
    out_h = out.shape[0]
    c0 = xfirst.min()
    width = min(xfirst.max() + nx, src.shape[1]) - c0
    cols, first, index, weights, span = _lane_taps(xfirst, xweights, nx)
    wide = span > _WINDOW
    for block in numba.prange((out_h + _ROWS - 1) // _ROWS):
        j0 = block * _ROWS
        rows = _block_rows(src, c0, width, yfirst, yweights, ny, j0, out_h, 2 * _WINDOW)
        for t in range(cols.shape[0]):
            a0 = _splat(0.5)  # +0.5: round to nearest when truncated to uint8
            a1 = _splat(0.5)
            a2 = _splat(0.5)
            a3 = _splat(0.5)
            x0 = first[t]
            for k in range(nx):
                w = _load(weights, t * nx + k, 0)
                a0 = _fma(w, _pick(rows, 0, x0, index, t, k, wide), a0)
                a1 = _fma(w, _pick(rows, 1, x0, index, t, k, wide), a1)
                a2 = _fma(w, _pick(rows, 2, x0, index, t, k, wide), a2)
                a3 = _fma(w, _pick(rows, 3, x0, index, t, k, wide), a3)
            _store_rows(out, j0, cols[t], a0, a1, a2, a3)


@numba.njit(nogil=True, cache=True, parallel=True, fastmath=True)
def _resample_dense(src: np.ndarray, xfirst: np.ndarray, xweights: np.ndarray, nx: int,
                    yfirst: np.ndarray, yweights: np.ndarray, ny: int,
                    out: np.ndarray) -> None:
    """resample, its horizontal pass dense (``_column_tiles``): each source column a
    tile reads, times the tile's weight vector, added into one vector per row."""
    out_h = out.shape[0]
    c0 = xfirst.min()
    width = min(xfirst.max() + nx, src.shape[1]) - c0
    cols, first, span, tiles, stride = _column_tiles(xfirst, xweights, nx)
    for block in numba.prange((out_h + _ROWS - 1) // _ROWS):
        j0 = block * _ROWS
        rows = _block_rows(src, c0, width, yfirst, yweights, ny, j0, out_h, nx)
        for t in range(cols.shape[0]):
            a0 = _splat(0.5)  # +0.5: round to nearest when truncated to uint8
            a1 = _splat(0.5)
            a2 = _splat(0.5)
            a3 = _splat(0.5)
            x0 = first[t]
            for c in range(span[t]):
                w = _load(tiles, t * stride + c, 0)
                a0 = _fma(rows[0, x0 + c], w, a0)
                a1 = _fma(rows[1, x0 + c], w, a1)
                a2 = _fma(rows[2, x0 + c], w, a2)
                a3 = _fma(rows[3, x0 + c], w, a3)
            _store_rows(out, j0, cols[t], a0, a1, a2, a3)


@numba.njit(nogil=True, cache=True)
def _tile_span(xfirst: np.ndarray, nx: int) -> int:
    """The most source columns a tile of LANES output columns reads (``_tiles``)."""
    span: int = _tiles(xfirst, nx)[2].max()
    return span


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
    """Resample the uint8 plane ``src`` into the uint8 plane ``out`` (rows x cols, at
    least LANES columns; rows may be padded, as a video frame's are, but each row's
    pixels must be contiguous).

    Works on blocks of four output rows, in float32 vectors of LANES lanes. Vertical
    pass first: each row's taps combined over just the source columns the horizontal
    taps read, LANES columns at a time. Then the horizontal pass for the four rows at
    once, tile by tile of LANES output columns, stored as LANES output pixels: by
    permutes where the CPU has them and a tile spans at most 2 x _WINDOW source
    columns (scales up to 3.7, 3.3 with Catmull-Rom), densely otherwise. No pixel is
    gathered or scattered. The choice is made here, in Python, so that a process
    compiles (or loads from Numba's cache) only the pass its frames use.
    """
    if out.shape[1] < LANES:
        raise ValueError("resample: the output is narrower than LANES pixels")
    if src.strides[1] != 1 or out.strides[1] != 1:  # the vectors read and write runs
        raise ValueError("resample: each plane's rows must be contiguous")
    if PERMUTES and _tile_span(xfirst, nx) <= 2 * _WINDOW:
        _resample_permuted(src, xfirst, xweights, nx, yfirst, yweights, ny, out)
    else:
        _resample_dense(src, xfirst, xweights, nx, yfirst, yweights, ny, out)


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
