"""Image loading: formats, orientation, every mode, limits and broken files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from imagegen import encode, photo_like
from PIL import Image

from zoomreel.errors import ImageError, ImageTooLargeError
from zoomreel.image import load_image

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def photo():
    return photo_like(96, 64, seed=3)


@pytest.mark.parametrize(
    "fmt, kw, tolerance",
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("JPEG", {"quality": 95}, 12),
    ],
)
def test_formats_decode_to_the_same_pixels(photo, fmt, kw, tolerance, tmp_path):
    data = encode(photo, fmt, **kw)
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        rgb = load_image(source)
        assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8
        diff = np.abs(rgb.astype(int) - np.asarray(photo, dtype=int))
        if tolerance:  # lossy: close on average, never wildly off
            assert diff.mean() <= 3 and diff.max() <= 4 * tolerance
        else:
            assert diff.max() == 0


def test_gif_takes_the_first_frame():
    frames = [Image.new("P", (20, 10), i) for i in (1, 2)]
    for frame, colour in zip(frames, [(255, 0, 0), (0, 0, 255)], strict=True):
        frame.putpalette(list(colour) * 256)
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    rgb = load_image(data.getvalue())
    assert rgb[5, 5].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    rgb = load_image(encode(image, "JPEG", quality=100, exif=exif))
    assert rgb.shape == (40, 20, 3)  # portrait once oriented
    assert rgb[2, 10].mean() > 200 and rgb[-3, 10].mean() < 50  # stripe now on top


@pytest.mark.parametrize("mode", ["RGB", "P", "LA"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_shown_as_exif_transpose_shows_it(orientation, mode):
    # turned strip by strip (columns of the stored image for a quarter turn): taller and
    # wider than a strip, odd sizes, every pixel where Pillow's whole-image turn puts it
    from PIL import ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 256, (601, 517, 3), np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(image, "PNG", exif=exif)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    expected = load_image(encode(upright, "PNG"))  # the same modes' conversion, unturned
    rgb = load_image(data)
    assert rgb.shape == expected.shape
    assert np.array_equal(rgb, expected)


def test_alpha_is_composited_onto_the_background():
    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 0))
    rgba.putpixel((0, 0), (200, 100, 50, 255))
    rgba.putpixel((1, 0), (200, 100, 50, 128))
    data = encode(rgba, "PNG")
    black = load_image(data)
    assert black[0, 0].tolist() == [200, 100, 50]
    assert black[1, 1].tolist() == [0, 0, 0]
    assert black[0, 1].tolist() == [100, 50, 25]
    white = load_image(data, background=(255, 255, 255))
    assert white[1, 1].tolist() == [255, 255, 255]
    assert white[0, 1].tolist() == [227, 177, 152]  # alpha 128/255


@pytest.mark.parametrize(
    "mode, make, expected",
    [
        ("L", lambda: Image.new("L", (4, 4), 77), [77, 77, 77]),
        ("LA", lambda: Image.new("LA", (4, 4), (200, 255)), [200, 200, 200]),
        ("1", lambda: Image.new("1", (4, 4), 1), [255, 255, 255]),
        ("CMYK", lambda: Image.new("CMYK", (4, 4), (0, 255, 255, 0)), [255, 0, 0]),
        ("P", lambda: Image.new("RGB", (4, 4), (10, 20, 30)).quantize(4), [10, 20, 30]),
        ("I;16", lambda: Image.new("I;16", (4, 4), 65535), [255, 255, 255]),
        ("I;16 mid", lambda: Image.new("I;16", (4, 4), 32896), [128, 128, 128]),
        ("I", lambda: Image.new("I", (4, 4), 65535), [255, 255, 255]),
        ("F", lambda: Image.new("F", (4, 4), 0.5), [128, 128, 128]),
    ],
)
def test_every_mode_becomes_rgb(mode, make, expected):
    image = make()
    fmt = "TIFF" if image.mode in ("I;16", "I", "F", "CMYK", "LA") else "PNG"
    rgb = load_image(encode(image, fmt))
    assert rgb[1, 1].tolist() == expected, mode


def test_palette_with_transparency_uses_the_background():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0] + [0, 255, 0] * 255)
    image.info["transparency"] = 0
    rgb = load_image(encode(image, "PNG", transparency=0), background=(0, 0, 255))
    assert rgb[0, 0].tolist() == [0, 0, 255]


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369).astype(np.uint16)
    image = Image.fromarray(ramp)
    rgb = load_image(encode(image, "PNG"))
    assert rgb[..., 0].ravel().tolist() == [round(v / 257) for v in ramp.ravel().tolist()]


def _png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x00" * 10)


def test_pixel_limit_is_checked_before_decoding():
    # A header claiming 40000 x 40000 with almost no data: refused for its size,
    # not reported as truncated, so no pixel was decoded.
    with pytest.raises(ImageTooLargeError, match="1600.0 MP.*limit is 100 MP"):
        load_image(_png_header_claiming(40000, 40000))
    with pytest.raises(ImageTooLargeError):
        load_image(encode(photo_like(50, 50), "PNG"), max_pixels=2499)
    assert load_image(encode(photo_like(50, 50), "PNG"), max_pixels=2500).shape == (50, 50, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text, not an image", "not an image"),
        (b"%PDF-1.4\n%...", "not an image"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10", "not an image"),  # ICO: not a supported format
    ],
)
def test_non_images_are_refused(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_image_is_refused(photo):
    data = encode(photo_like(400, 300), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    png = encode(photo, "PNG")
    with pytest.raises(ImageError):
        load_image(png[: len(png) - 40])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ImageError, match="No such file"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_pillows_own_limit_becomes_our_error_and_stays_as_it_was():
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    # over twice Pillow's limit: Pillow refuses at open, even with a higher max_pixels
    with pytest.raises(ImageTooLargeError, match="1600.0 MP; the limit is 178.957 MP"):
        load_image(_png_header_claiming(40000, 40000), max_pixels=2_000_000_000)
    assert Image.MAX_IMAGE_PIXELS == before
