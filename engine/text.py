"""Words over a reel: the title and the captions, drawn once, blended into each frame.

The font is Pillow's own scalable one (``ImageFont.load_default(size=...)``, Pillow >=
10.1 with FreeType): it ships in the wheel, so every install draws the same. It covers
ASCII and a few marks (© « » ° · ‘ ’ “ ” … ™); any other character is refused before
a render starts (:func:`check_drawable`), never drawn as an empty box.

A text is laid out once per reel: wrapped to the width it may take, white and
antialiased on a rounded, translucent black backdrop, rendered to RGBA and turned into
premultiplied YUV planes and their alpha (:class:`Overlay`); each frame then blends it
into its planes (zoomreel.compose.overlay).

Where text goes: in a portrait output (taller than wide, as 9:16 is) the platforms that
play short videos cover the top 14% (their header), the bottom 20% (the caption and
controls) and the right 12% (the buttons) with their own interface, so text stays
inside the rest, 6% clear of the left edge. Elsewhere it stays 5% clear of each edge.
The title sits at the top of that area, a caption at its bottom.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import SpecError

if TYPE_CHECKING:
    from PIL import ImageFont

__all__ = ["Overlay", "check_drawable", "layout", "safe_area"]

# Of the output's width or height, kept clear of text (left, top, right, bottom).
_PORTRAIT_CLEAR = (0.06, 0.14, 0.12, 0.20)
_OTHER_CLEAR = (0.05, 0.05, 0.05, 0.05)
#: The backdrop's opacity: white text stays legible on any photo.
_BACKDROP = 0.55


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    assert isinstance(font, ImageFont.FreeTypeFont)  # Pillow >= 10.1 with FreeType
    return font


@functools.lru_cache(maxsize=1)
def _missing_glyph() -> tuple[tuple[int, int], bytes]:
    """The mask the font draws for a character it lacks (its .notdef box)."""
    mask = _font(24).getmask("\U0010fffd")
    return mask.size, bytes(mask)


@functools.lru_cache(maxsize=4096)
def _drawable(ch: str) -> bool:
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return False
    if ch == " ":
        return True
    mask = _font(24).getmask(ch)
    return (mask.size, bytes(mask)) != _missing_glyph()


def check_drawable(field: str, text: str) -> None:
    """Refuse text the font cannot draw.

    Raises:
        SpecError: naming ``field`` and the first character the font lacks (or a
            control character).
    """
    for ch in text:
        if not _drawable(ch):
            what = ("a control character" if unicodedata.category(ch) == "Cc"
                    else f"{ch!r}, which the font cannot draw")
            raise SpecError(field, f"has {what} (U+{ord(ch):04X}); the font draws ASCII "
                            "letters, digits and punctuation", text)


def safe_area(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of where text may go in a width x height output, in
    even pixels."""
    clear = _PORTRAIT_CLEAR if height > width else _OTHER_CLEAR
    left, top = (int(width * clear[0]) // 2 * 2, int(height * clear[1]) // 2 * 2)
    right = (width - int(width * clear[2])) // 2 * 2
    bottom = (height - int(height * clear[3])) // 2 * 2
    return left, top, right, bottom


@dataclass(frozen=True)
class Overlay:
    """A text's premultiplied planes and alpha, and where they go (even top and left).

    ``y``/``alpha`` are full resolution, ``u``/``v``/``chroma_alpha`` half.
    """

    top: int
    left: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    alpha: np.ndarray
    chroma_alpha: np.ndarray


def _wrap(text: str, font: ImageFont.FreeTypeFont, room: float) -> list[str]:
    """Words on lines no wider than ``room``; a word wider than that is broken."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while font.getlength(word) > room and len(word) > 1:  # break a very long word
            cut = len(word) - 1
            while cut > 1 and font.getlength(word[:cut]) > room:
                cut -= 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        trial = f"{line} {word}" if line else word
        if font.getlength(trial) <= room:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def layout(text: str, width: int, height: int, *, where: str, scale: float = 1.0) -> Overlay:
    """The overlay of ``text`` in a width x height output, at the top (``where="top"``)
    or the bottom of the safe area, centred across it; ``scale`` sizes the letters
    (the title is larger than a caption)."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = safe_area(width, height)
    size = max(12, int(round(0.042 * min(width, height) * scale)))
    font = _font(size)
    pad = max(4, size // 2) // 2 * 2
    lines = _wrap(text, font, right - left - 2 * pad) or [""]
    line_height = int(round(size * 1.25))
    text_w = max(int(np.ceil(font.getlength(line))) for line in lines)
    box_w = min(right - left, text_w + 2 * pad + 1) // 2 * 2 + 2
    box_h = min(bottom - top, line_height * len(lines) + 2 * pad) // 2 * 2
    box_w = min(box_w, (right - left) // 2 * 2)

    mask = Image.new("L", (box_w, box_h), 0)
    draw = ImageDraw.Draw(mask)
    for k, line in enumerate(lines):
        x = (box_w - font.getlength(line)) / 2
        draw.text((x, pad + k * line_height), line, fill=255, font=font)
    backdrop = Image.new("L", (box_w, box_h), 0)
    ImageDraw.Draw(backdrop).rounded_rectangle((0, 0, box_w - 1, box_h - 1),
                                               radius=pad, fill=255)
    ink = np.asarray(mask, dtype=np.float32) / 255.0
    under = np.asarray(backdrop, dtype=np.float32) / 255.0 * _BACKDROP
    # White ink over the black backdrop, premultiplied: the colour is the ink's coverage.
    alpha = ink + under * (1.0 - ink)
    y = 16.0 * alpha + 219.0 * ink
    chroma_alpha = alpha.reshape(box_h // 2, 2, box_w // 2, 2).mean(axis=(1, 3))
    grey = (128.0 * chroma_alpha).astype(np.float32)
    row = top if where == "top" else bottom - box_h
    col = (left + (right - left - box_w) // 2) // 2 * 2
    return Overlay(row // 2 * 2, col, y.astype(np.float32), grey, grey.copy(),
                   alpha.astype(np.float32), chroma_alpha.astype(np.float32))
