"""The subject of an image: where ``focus: "auto"`` closes in, and what cover keeps.

Decided once per image, on a small grey copy (:data:`MAX_COPY_PIXELS` at most), in this
order:

1. **Faces**, when OpenCV is installed (``pip install zoomreel[faces]``): its frontal-face
   Haar cascade, whose model ships in the wheel, each find confirmed by an eye in its
   upper half (its eye cascade, on the finer grey copy): textures such as bark pass the
   face cascade, rarely the eye one. The subject is the centre of the box holding every
   face (each widened to the whole head), and that box is kept in frame.
2. **Saliency**: the spectral residual (Hou & Zhang, 2007) of a 64-pixel copy; the subject
   is the centroid of the strongest region that stands out.
3. **The centre**, when nothing stands out (the saliency map is flat).

:func:`find_subject` takes pixels; :meth:`zoomreel.spec.RenderSpec.with_subject` turns
``focus: "auto"`` into the point and a zoom that keeps the faces in every frame.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

    from .image import Source

__all__ = ["Subject", "FocusBy", "CENTRE_SUBJECT", "find_subject", "subject_of",
           "detect_faces", "faces_available", "salient_point", "small_grey",
           "MAX_COPY_PIXELS"]

#: The decision is made on a copy of at most this many pixels.
MAX_COPY_PIXELS = 1_000_000
#: Faces are looked for on a copy this long on its longer side (faces under about 7% of
#: it are not found): 0.08 MP keeps the cascade within ~45 ms on one core (320: ~55).
_FACE_SIDE = 288
_FACE_MIN = 24  # the cascade's own window
#: Steps between window sizes: 1.15 finds every test face in 2/3 of 1.1's time (1.2
#: misses the portrait's; see benchmarks/README.md).
_FACE_STEP = 1.15
#: A face's upper part is looked at this wide for an eye (the eye cascade's window is
#: 20 pixels; an eye is about a fifth of the face box).
_EYE_SIDE = 96
#: A detection's box covers brows to mouth; the head around it is kept too.
_HEAD_PAD = (0.25, 0.45, 0.25, 0.3)  # left, top, right, bottom, fractions of the box
#: The saliency map's size (Hou & Zhang's 64 pixels on the longer side).
_SALIENCY_SIDE = 64
#: The map stands out where its strongest region's mean is this many times the map's.
_STANDS_OUT = 3.6
#: The map's border (cells) left out: the FFT's wrap-around lights up the edges.
_BORDER = 4


class FocusBy(enum.StrEnum):
    """What found the focus of ``focus: "auto"``."""

    FACES = "faces"
    SALIENCY = "saliency"
    CENTRE = "centre"


Box = tuple[float, float, float, float]


class Subject(NamedTuple):
    """Where an image's subject is, in fractions of the image (0..1, from the top left).

    Attributes:
        x, y: the point the zoom closes in on.
        by: what found it.
        faces_box: (x0, y0, x1, y1) holding every detected head, to keep in frame;
            None without faces.
    """

    x: float
    y: float
    by: FocusBy
    faces_box: Box | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"x", "y", "by"}``, as job results and the subject route report it."""
        return {"x": round(self.x, 4), "y": round(self.y, 4), "by": str(self.by)}


CENTRE_SUBJECT = Subject(0.5, 0.5, FocusBy.CENTRE)


def faces_available() -> bool:
    """True when the face detector (OpenCV, the ``faces`` extra) is installed."""
    return _cascade() is not None


_CASCADES: list[Any] = []


def _cascade() -> Any:
    """The face cascade (None without OpenCV); :func:`_eye_cascade` once this is loaded."""
    if not _CASCADES:
        try:
            import cv2  # the faces extra: its wheel ships the cascades
        except ImportError:
            _CASCADES.extend((None, None))
        else:
            # cv2 is typed only where the faces extra is installed
            folder = cv2.data.haarcascades  # type: ignore[attr-defined, unused-ignore]
            _CASCADES.extend((cv2.CascadeClassifier(folder + "haarcascade_frontalface_default.xml"),
                              cv2.CascadeClassifier(folder + "haarcascade_eye.xml")))
    return _CASCADES[0]


def _eye_cascade() -> Any:
    _cascade()
    return _CASCADES[1]


def small_grey(image: np.ndarray, max_pixels: int = MAX_COPY_PIXELS) -> np.ndarray:
    """A grey (luma) copy of ``image`` ((h, w) grey or (h, w, 3) RGB uint8) with at most
    ``max_pixels`` pixels, reduced by box averaging (Pillow's ``reduce``)."""
    import numpy as np
    from PIL import Image

    h, w = image.shape[:2]
    factor = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    if image.ndim == 3 and factor > 1:
        # Each row's bytes as one grey row: a box 3 * factor bytes wide averages factor
        # pixels' R, G and B, so the reduced copy is (R + G + B) / 3, made in one pass
        # and without Pillow's 4-byte RGB copy (half the time of reduce + convert).
        rows = np.ascontiguousarray(image).reshape(h, w * 3)
        return np.asarray(Image.fromarray(rows, "L").reduce((3 * factor, factor)))
    if image.ndim == 3:
        return np.asarray(Image.fromarray(np.ascontiguousarray(image), "RGB").convert("L"))
    grey = Image.fromarray(np.ascontiguousarray(image), "L")
    return np.asarray(grey.reduce(factor) if factor > 1 else grey)


def detect_faces(grey: np.ndarray) -> list[Box]:
    """The faces in a grey image, as boxes in fractions of it (each widened to the head);
    [] without the detector. A find with no eye in its upper half is not a face."""
    import numpy as np
    from PIL import Image

    cascade = _cascade()
    if cascade is None:
        return []
    h, w = grey.shape
    scale = min(1.0, _FACE_SIDE / max(h, w))
    small = grey
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BILINEAR))
    sh, sw = small.shape
    found = cascade.detectMultiScale(small, scaleFactor=_FACE_STEP, minNeighbors=4,
                                     minSize=(_FACE_MIN, _FACE_MIN))
    left, top, right, bottom = _HEAD_PAD
    boxes = []
    for x, y, bw, bh in (found.tolist() if len(found) else []):
        if not _has_an_eye(grey, (x / sw, y / sh, (x + bw) / sw, (y + bh) / sh)):
            continue
        boxes.append((max(0.0, (x - left * bw) / sw), max(0.0, (y - top * bh) / sh),
                      min(1.0, (x + bw * (1 + right)) / sw),
                      min(1.0, (y + bh * (1 + bottom)) / sh)))
    return boxes


def _has_an_eye(grey: np.ndarray, face: Box) -> bool:
    """Whether the upper 60% of ``face`` (fractions of ``grey``) holds an eye, looked for
    on ``grey`` itself (finer than the face copy), the crop brought to :data:`_EYE_SIDE`."""
    import cv2
    import numpy as np

    h, w = grey.shape
    x0, y0 = int(face[0] * w), int(face[1] * h)
    x1, y1 = max(x0 + 1, round(face[2] * w)), round(face[1] * h + 0.6 * (face[3] - face[1]) * h)
    crop = np.ascontiguousarray(grey[y0:max(y0 + 1, y1), x0:x1])
    size = (_EYE_SIDE, max(1, round(_EYE_SIDE * crop.shape[0] / crop.shape[1])))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if crop.shape[1] > _EYE_SIDE
                      else cv2.INTER_LINEAR)
    eyes = _eye_cascade().detectMultiScale(crop, scaleFactor=1.1, minNeighbors=3,
                                           minSize=(12, 12))
    return len(eyes) > 0


def salient_point(grey: np.ndarray) -> tuple[float, float] | None:
    """The centroid of the most salient region (spectral residual), in fractions of the
    image; None when nothing stands out."""
    import numpy as np
    from PIL import Image

    h, w = grey.shape
    scale = _SALIENCY_SIDE / max(h, w)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX),
                       dtype=np.float64)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6)
    averaged = _smooth(log_amplitude, np.ones(3) / 3.0, wrap=True)
    residual = np.exp(log_amplitude - averaged + 1j * np.angle(spectrum))
    saliency = np.abs(np.fft.ifft2(residual)) ** 2
    taps = np.exp(-0.5 * (np.arange(-7, 8) / 2.5) ** 2)
    saliency = _smooth(saliency, taps / taps.sum(), wrap=False)
    saliency[:_BORDER, :] = saliency[-_BORDER:, :] = 0.0
    saliency[:, :_BORDER] = saliency[:, -_BORDER:] = 0.0
    mean = float(saliency.mean())
    if not math.isfinite(mean) or mean <= 1e-12:
        return None
    region = _strongest_region(saliency, saliency > 2.0 * mean)
    if region is None or float(saliency[region].mean()) < _STANDS_OUT * mean:
        return None
    ys, xs = np.nonzero(region)
    weights = saliency[ys, xs]
    sh, sw = saliency.shape
    return (float((xs + 0.5) @ weights / weights.sum() / sw),
            float((ys + 0.5) @ weights / weights.sum() / sh))


def _smooth(plane: np.ndarray, taps: np.ndarray, *, wrap: bool) -> np.ndarray:
    """``plane`` filtered by ``taps`` along both axes (the spectrum wraps around; the
    picture's edges are repeated)."""
    import numpy as np

    r = len(taps) // 2
    out = plane
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)],
                        mode="wrap" if wrap else "edge")
        n = out.shape[axis]
        out = sum(t * np.take(padded, range(k, k + n), axis=axis)
                  for k, t in enumerate(taps))
    return np.asarray(out)


def _strongest_region(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The 4-connected region of ``mask`` with the largest total saliency (a flood fill
    on a 64-pixel map: a few thousand cells)."""
    import numpy as np

    labels = np.zeros(mask.shape, dtype=np.int32)
    best, best_sum, label = 0, 0.0, 0
    h, w = mask.shape
    for sy, sx in zip(*np.nonzero(mask), strict=True):
        if labels[sy, sx]:
            continue
        label += 1
        labels[sy, sx] = label
        stack, total = [(int(sy), int(sx))], 0.0
        while stack:
            y, x = stack.pop()
            total += float(saliency[y, x])
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    stack.append((ny, nx))
        if total > best_sum:
            best, best_sum = label, total
    return labels == best if best else None


def find_subject(image: np.ndarray) -> Subject:
    """Where the subject of ``image`` is: its faces, else its most salient region, else
    the centre.

    Args:
        image: (h, w) grey or (h, w, 3) RGB, uint8; any size (a copy of at most
            :data:`MAX_COPY_PIXELS` is what is looked at).

    Returns:
        The Subject, in fractions of the image.
    """
    grey = small_grey(image)
    faces = detect_faces(grey)
    if faces:
        box = (min(b[0] for b in faces), min(b[1] for b in faces),
               max(b[2] for b in faces), max(b[3] for b in faces))
        return Subject((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, FocusBy.FACES, box)
    point = salient_point(grey)
    if point is not None:
        return Subject(point[0], point[1], FocusBy.SALIENCY)
    return CENTRE_SUBJECT


def subject_of(source: Source, *, max_pixels: int = 100_000_000,
               ) -> tuple[Subject, tuple[int, int]]:
    """Decode an image (oriented by its EXIF tag, as the renderer does) and find its
    subject.

    Args:
        source: a path, or the encoded bytes of the image.
        max_pixels: images with more pixels are refused before decoding.

    Returns:
        The Subject, and the oriented (width, height) it is in fractions of.

    Raises:
        ImageError: not an image, truncated or corrupt. ImageTooLargeError: over
            ``max_pixels``.
    """
    import numpy as np

    from .image import StripSink, read_image

    out: list[np.ndarray] = []

    def start(width: int, height: int) -> StripSink:
        out.append(np.empty((height, width, 3), dtype=np.uint8))
        return lambda top, rows: out[0].__setitem__(slice(top, top + len(rows)), rows)

    # A JPEG decoded by its DCT at 1/2 .. 1/8 of its size, to no fewer pixels than the
    # copy the decision looks at: 12 MP decode at 3 MP, half the time (179 -> 100 ms
    # CPU with the decision), the same decisions on the corpus. (A quarter of that, 1/4
    # scale, halves it again but moved a borderline saliency decision: not done.)
    width, height = read_image(source, start, max_pixels=max_pixels,
                               draft_pixels=MAX_COPY_PIXELS)
    return find_subject(out[0]), (width, height)
