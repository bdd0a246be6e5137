"""Loading a still image with Pillow into an 8-bit RGB array.

Every mode is brought to RGB correctly: EXIF orientation applied, alpha composited
onto a background colour, 16-bit and float greyscale scaled rather than clipped.
The pixel limit is checked from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError

__all__ = ["load_image", "read_image", "FORMATS", "Source", "StripSink"]

#: Formats we decode; anything else is refused before a decoder runs.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")  # JPEG covers MPO (phones)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}

# Pillow's own decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``, a process-wide
# setting that belongs to the host program) stays as it is: load_image enforces the
# caller's max_pixels from the header as well, and turns Pillow's refusal into the same
# ImageTooLargeError. Pillow warns (DecompressionBombWarning) between its limit and twice
# it; the zoomreel commands silence that warning, a library user decides for themselves.
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def _too_large(pixels: int, limit: float, size: str = "") -> ImageTooLargeError:
    shown = f"{size} ({pixels / 1e6:.1f} MP)" if size else f"{pixels / 1e6:.1f} MP"
    return ImageTooLargeError(f"The image is {shown}; the limit is {limit / 1e6:g} MP")


def _bomb(exc: Exception, max_pixels: int) -> ImageTooLargeError:
    """Pillow's DecompressionBombError (or its warning, raised as an error) as ours."""
    found = _PILLOW_PIXELS.search(str(exc))
    if found is None:
        return ImageTooLargeError(f"The image is over Pillow's pixel limit ({exc})")
    pixels = int(found.group(1))
    # Pillow refuses at twice MAX_IMAGE_PIXELS, or warns (raised, by a filter) above it.
    pillow = (Image.MAX_IMAGE_PIXELS or pixels) * (
        2 if isinstance(exc, Image.DecompressionBombError) else 1)
    return _too_large(pixels, min(max_pixels, pillow))


def _open(source: Source, max_pixels: int) -> tuple[Image.Image, BinaryIO | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise ImageError("The image is empty (0 bytes)")
        stream: BinaryIO = io.BytesIO(data)
        label = "The data"
    else:
        path = os.fspath(source)
        try:
            if os.path.getsize(path) == 0:
                raise ImageError(f"The image file is empty (0 bytes): {path}")
            stream = open(path, "rb")
        except FileNotFoundError:
            raise ImageError(f"No such file: {path}") from None
        except IsADirectoryError:
            raise ImageError(f"Not a file but a directory: {path}") from None
        except PermissionError:
            raise ImageError(f"Cannot read the file (permission denied): {path}") from None
        label = "The file"
    try:
        image = Image.open(stream, formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        stream.close()
        raise _bomb(exc, max_pixels) from None
    except UnidentifiedImageError:
        stream.close()
        raise ImageError(
            f"{label} is not an image we can read (supported: JPEG, PNG, WebP, GIF, TIFF, BMP)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        stream.close()
        raise ImageError(f"{label} is not a readable image: {exc}") from None
    return image, stream


#: Rows converted at a time: every mode reaches RGB strip by strip, straight into the
#: output array, so the only full-size copy is the output itself.
_STRIP_ROWS = 256


#: EXIF orientation: the transpose that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _strips(image: Image.Image, turn: Image.Transpose | None = None,
            ) -> Iterator[tuple[int, Image.Image]]:
    """The image's rows as shown after ``turn`` (an EXIF orientation's transpose),
    ``_STRIP_ROWS`` at a time: each strip is cut from the stored image (columns of it,
    for a quarter turn) and turned on its own, so the image is never held twice."""
    width, height = image.size
    T = Image.Transpose
    rows = width if turn in (T.TRANSPOSE, T.ROTATE_270, T.TRANSVERSE, T.ROTATE_90) else height
    for top in range(0, rows, _STRIP_ROWS):
        end = min(rows, top + _STRIP_ROWS)
        if turn in (T.TRANSPOSE, T.ROTATE_270):  # shown rows: stored columns, left first
            box = (top, 0, end, height)
        elif turn in (T.TRANSVERSE, T.ROTATE_90):  # stored columns, right first
            box = (width - end, 0, width - top, height)
        elif turn in (T.ROTATE_180, T.FLIP_TOP_BOTTOM):  # stored rows, bottom first
            box = (0, height - end, width, height - top)
        else:
            box = (0, top, width, end)
        strip = image.crop(box)
        yield top, strip if turn is None else strip.transpose(turn)


def _to_rgb(image: Image.Image, background: tuple[int, int, int], put: StripSink,
            turn: Image.Transpose | None = None) -> None:
    unit = False  # float images whose values all lie in 0..1 are scaled to 0..255
    if image.mode == "F":
        unit = all(not s.size or np.nanmax(s) <= 1.0 for s in (
            np.asarray(strip, dtype=np.float32) for _, strip in _strips(image)))
    for top, strip in _strips(image, turn):
        rgb = _strip_to_rgb(strip, background, unit)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        put(top, np.ascontiguousarray(rgb))


def _strip_to_rgb(image: Image.Image, background: tuple[int, int, int],
                  unit: bool) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        mode = "PA" if "transparency" in image.info else "RGB"
        image = image.convert("RGBA" if mode == "PA" else "RGB")
    elif mode.startswith("I;16") or mode in ("I", "F"):
        grey = np.asarray(image, dtype=np.float64)
        if mode == "F" and unit:
            grey = grey * 255.0
        elif mode != "F":
            # 16-bit samples (I;16*, and I as Pillow reads 16-bit PNG and TIFF) span 0..65535.
            grey = grey / 257.0
        grey = np.clip(np.nan_to_num(grey), 0.0, 255.0)
        return np.rint(grey).astype(np.uint8)[:, :, None]  # broadcast to R, G and B
    if mode in _ALPHA_MODES or image.mode == "RGBA":
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        bg = np.asarray(background, dtype=np.float32)
        rgb = rgba[:, :, :3] * alpha + bg * (1.0 - alpha)
        flat: np.ndarray = np.rint(rgb).astype(np.uint8)
        return flat
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


#: Receives the image's RGB rows: ``put(top_row, rows)``, rows a (n, width, 3) uint8 array.
StripSink = Callable[[int, np.ndarray], None]


def read_image(
    source: Source,
    start: Callable[[int, int], StripSink],
    *,
    max_pixels: int = 100_000_000,
    background: tuple[int, int, int] = (0, 0, 0),
    draft_pixels: int | None = None,
) -> tuple[int, int]:
    """Decode an image and hand it over as RGB strips of rows, top to bottom.

    No full-size RGB copy is made here: the caller keeps the rows as it likes (as RGB,
    :func:`load_image`; or straight as YUV planes, the renderer's pyramid).

    Args:
        source: a path, or the encoded bytes of the image.
        start: called once with the oriented (width, height); returns where the strips go.
        max_pixels: images with more pixels are refused before decoding.
        background: RGB colour that transparent pixels are composited onto.
        draft_pixels: a JPEG with more pixels is decoded scaled down by its DCT
            (Pillow's draft mode, 1/2 to 1/8) to the smallest size with at least this
            many: ``start`` gets that size. Other formats decode whole.

    Returns:
        The oriented (width, height) of the whole image (with ``draft_pixels`` too).

    Raises:
        ImageError: the source is missing, empty, not an image, truncated or corrupt.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    image, stream = _open(source, max_pixels)
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise _too_large(width * height, max_pixels, f"{width}x{height}")
        if width < 1 or height < 1:
            raise ImageError("The image has no pixels")
        try:
            image.seek(0)  # GIF, TIFF, MPO: the first frame
            if draft_pixels is not None and width * height > draft_pixels:
                scale = math.sqrt(draft_pixels / (width * height))
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
            # turned strip by strip: no second copy of the decoded image
            turn = _UPRIGHT.get(image.getexif().get(0x0112, 1))
            shown = image.size
            if turn in (Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270,
                        Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90):
                shown = shown[::-1]
                width, height = height, width
            _to_rgb(image, background, start(*shown), turn)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(exc, max_pixels) from None  # e.g. a GIF frame larger than its header
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"The image is truncated or corrupt ({exc})") from None
        return width, height
    finally:
        image.close()
        if stream is not None:
            stream.close()


def load_image(
    source: Source,
    *,
    max_pixels: int = 100_000_000,
    background: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Decode an image into an (height, width, 3) uint8 RGB array.

    Args:
        source: a path, or the encoded bytes of the image.
        max_pixels: images with more pixels are refused before decoding.
        background: RGB colour that transparent pixels are composited onto.

    Returns:
        The oriented image as a C-contiguous uint8 array.

    Raises:
        ImageError: the source is missing, empty, not an image, truncated or corrupt.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    out: list[np.ndarray] = []

    def start(width: int, height: int) -> StripSink:
        out.append(np.empty((height, width, 3), dtype=np.uint8))
        return lambda top, rows: out[0].__setitem__(slice(top, top + len(rows)), rows)

    read_image(source, start, max_pixels=max_pixels, background=background)
    return out[0]
