"""Per-frame luma PSNR of encoded videos against the exact reference.

The exact reference for frame n is Pillow's bilinear ``resize`` of the source over the
camera rectangle of frame n (CONTRACT.md). Each video is decoded with PyAV and its Y
plane read straight from the plane data, so no decoder-side colour conversion enters.
Several videos are compared in one pass, so each reference frame is computed once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from zoomreel.camera import frame_rect
from zoomreel.spec import RenderSpec

__all__ = ["MATRICES", "Fidelity", "luma", "colour_of", "ssim", "ssim_db", "video_psnr"]

#: (Kr, Kb) luma coefficients by name.
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}

# AVCOL_SPC_* values PyAV reports for the stream's matrix; AVCOL_RANGE_JPEG is full range.
_SPC_NAMES = {1: "bt709", 5: "bt601", 6: "bt601"}
_RANGE_FULL = 2


@dataclass(frozen=True)
class Fidelity:
    """PSNR of one video against the reference, over the frames evaluated."""

    colour: str  # "matrix/range" the reference luma was taken in, from the video's tags
    frames_evaluated: int
    stride: int
    min_db: float
    median_db: float
    worst_frame: int
    mean_db: float = 0.0  # mean of the per-frame PSNR (dB)


def luma(rgb: Image.Image, colour: str) -> np.ndarray:
    """Luma of an RGB image in ``colour`` ("bt709/limited", "bt601/full", ...), as float32."""
    matrix, range_ = colour.split("/")
    kr, kb = MATRICES[matrix]
    a = np.asarray(rgb, dtype=np.float32)
    y = kr * a[..., 0] + (1 - kr - kb) * a[..., 1] + kb * a[..., 2]
    return y if range_ == "full" else 16.0 + 219.0 / 255.0 * y


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2, dtype=np.float64))
    return 99.0 if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


# SSIM's stabilising constants for 8-bit samples, scaled to sums over an 8x8 window as
# x264 and FFmpeg's ssim filter write them.
_C1 = 0.01**2 * 255**2 * 64
_C2 = 0.03**2 * 255**2 * 64 * 63


def _block_sums(x: np.ndarray) -> np.ndarray:
    """Sums over 4x4 blocks (exact: integer samples, int32 sums)."""
    h, w = x.shape
    rows = x.reshape(h, w // 4, 4).sum(axis=2, dtype=np.int32)
    return rows.reshape(h // 4, 4, w // 4).sum(axis=1, dtype=np.int32).astype(np.float64)


def _windows(b: np.ndarray) -> np.ndarray:
    """Sums over 8x8 windows on a 4-pixel grid, from the sums of 4x4 blocks."""
    return b[:-1, :-1] + b[1:, :-1] + b[:-1, 1:] + b[1:, 1:]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two luma planes, as x264's ``--ssim`` and FFmpeg's ``ssim`` filter
    compute it: unweighted 8x8 windows on a 4-pixel grid (overlapping by half), the
    constants of Wang et al. (K1 = 0.01, K2 = 0.03, L = 255); the plane cropped to whole
    4x4 blocks."""
    h, w = (a.shape[0] // 4) * 4, (a.shape[1] // 4) * 4
    x = a[:h, :w].astype(np.int32)
    y = b[:h, :w].astype(np.int32)
    s1 = _windows(_block_sums(x))
    s2 = _windows(_block_sums(y))
    ss = _windows(_block_sums(x * x + y * y))
    s12 = _windows(_block_sums(x * y))
    var = ss * 64 - s1 * s1 - s2 * s2
    cov = s12 * 64 - s1 * s2
    m = ((2 * s1 * s2 + _C1) * (2 * cov + _C2)
         / ((s1 * s1 + s2 * s2 + _C1) * (var + _C2)))
    return float(m.mean())


def ssim_db(value: float) -> float:
    """SSIM on a decibel scale, -10 log10(1 - SSIM), as x264 reports it (99 if equal)."""
    return 99.0 if value >= 1.0 else -10.0 * float(np.log10(1.0 - value))


def colour_of(path: str) -> str:
    """The "matrix/range" a video is tagged with; untagged is read as players read HD,
    BT.709 limited range."""
    with av.open(path) as container:
        ctx = container.streams.video[0].codec_context
        matrix = _SPC_NAMES.get(int(ctx.colorspace or 2), "bt709")
        full = int(ctx.color_range or 0) == _RANGE_FULL
    return f"{matrix}/{'full' if full else 'limited'}"


def _luma_frames(path: str) -> Iterator[np.ndarray]:
    with av.open(path) as container:
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            yield rows[:, : plane.width].astype(np.float32)


def video_psnr(
    source: Image.Image,
    spec: RenderSpec,
    videos: Sequence[tuple[str, str]],
    stride: int = 1,
) -> list[Fidelity]:
    """Luma PSNR of each video against the exact reference, every ``stride``-th frame.

    Args:
        source: the decoded source image (RGB), as both renderers read it.
        spec: the render the videos are of (size, frame rate, zoom, length).
        videos: (path, colour) pairs; the reference luma is taken in that colour
            ("bt709/limited", see ``colour_of``).
        stride: evaluate frames 0, stride, 2 * stride, ...

    Returns:
        One Fidelity per video, in order. A video with fewer frames than the spec
        counts its missing frames as 0 dB.
    """
    size = (spec.width, spec.height)
    decoders = [_luma_frames(path) for path, _ in videos]
    scores: list[list[float]] = [[] for _ in videos]
    frames: list[int] = []
    for n in range(spec.total_frames):
        decoded = [next(d, None) for d in decoders]
        if n % stride:
            continue
        box = frame_rect(n, spec, source.width, source.height)
        ref = source.resize(size, Image.Resampling.BILINEAR, box=box)
        refs = {c: luma(ref, c) for c in {c for _, c in videos}}
        frames.append(n)
        for k, ((_, colour), y) in enumerate(zip(videos, decoded, strict=True)):
            scores[k].append(0.0 if y is None else _psnr(y, refs[colour]))
    for d in decoders:
        d.close()
    out = []
    for (_, colour), s in zip(videos, scores, strict=True):
        worst = int(np.argmin(s))
        out.append(
            Fidelity(colour, len(s), stride, float(s[worst]), float(np.median(s)), frames[worst],
                     float(np.mean(s)))
        )
    return out
