"""Test images made by the tests themselves: photo-like detail, fine lines, text."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KR, KB = 0.2126, 0.0722


def encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    """``image`` as a file of format ``fmt`` would hold it (Pillow's save options ``kw``)."""
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Multi-scale coloured noise: smooth regions, texture and fine grain, like a photo."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((height, width, 3))
    for cell, weight in ((max(width, height) // 4, 1.0), (64, 0.6), (16, 0.4), (4, 0.25), (1, 0.1)):
        cells = rng.random((height // cell + 2, width // cell + 2, 3))
        layer = Image.fromarray((cells * 255).astype(np.uint8)).resize(
            (width + cell, height + cell), Image.Resampling.BICUBIC
        )
        acc += np.asarray(layer.crop((0, 0, width, height)), dtype=np.float64) * weight
    acc -= acc.min()
    acc *= 255.0 / acc.max()
    return Image.fromarray(acc.astype(np.uint8))


def fine_lines(width: int, height: int) -> Image.Image:
    """One-pixel lines at several pitches and angles on grey: the aliasing stress test."""
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for x in range(0, width // 2, 3):
        draw.line([(x, 0), (x, height // 2)], fill=(255, 255, 255))
    for y in range(height // 2, height, 4):
        draw.line([(0, y), (width // 2, y)], fill=(0, 0, 0))
    for k in range(0, width + height, 7):
        draw.line([(width // 2 + k, 0), (width // 2 + k - height, height)], fill=(250, 40, 40))
    return image


def text(width: int, height: int) -> Image.Image:
    """Lines of small and large text, black on white."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    y, size = 0, 10
    while y < height:
        font = ImageFont.load_default(size=size)
        draw.text((4, y), "Zoomreel 0123456789 The quick brown fox jumps" * 3, fill=0, font=font)
        y += size + 4
        size = 10 if size > 40 else size + 6
    return image


ALL = {"photo": photo_like, "lines": fine_lines, "text": text}


def luma(rgb: np.ndarray | Image.Image) -> np.ndarray:
    """BT.709 limited-range luma (16..235) of an RGB image, as float."""
    a = np.asarray(rgb, dtype=np.float64)
    return 16.0 + 219.0 / 255.0 * (KR * a[..., 0] + (1 - KR - KB) * a[..., 1] + KB * a[..., 2])


def chroma(rgb: np.ndarray | Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """BT.709 limited-range Cb, Cr (16..240) of an RGB image, as float."""
    a = np.asarray(rgb, dtype=np.float64)
    y = KR * a[..., 0] + (1 - KR - KB) * a[..., 1] + KB * a[..., 2]
    cb = 128.0 + 224.0 / 255.0 * (a[..., 2] - y) / (2 * (1 - KB))
    cr = 128.0 + 224.0 / 255.0 * (a[..., 0] - y) / (2 * (1 - KR))
    return cb, cr


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, peak 255."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def reference_frame(
    image: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int]
) -> Image.Image:
    """The exact reference: Pillow's bilinear resize of the box to the output size."""
    return image.resize(size, Image.Resampling.BILINEAR, box=box)
