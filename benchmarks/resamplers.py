"""Bilinear against Catmull-Rom: render time, and closeness to a Lanczos reference.

    python -m benchmarks.resamplers [--corpus DIR | --photo PATH] [--repeats 3]

Renders the same job with each resampler in turn (``--repeats`` times, alternating, in
this process after one warm-up each, median wall time), for two paths on a corpus photo
at 1920x1080: the documented zoom (the image minified, scales 1..2) and a deep zoom (the
image magnified up to 4x: where a sharper filter matters). Fidelity is the mean luma PSNR
of the decoded frames against Pillow's Lanczos resize of each frame's exact box.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the zoomreel commands do

import av
import numpy as np
from PIL import Image, ImageOps

from benchmarks._corpus import add_corpus_option
from zoomreel import RenderSpec, render_video
from zoomreel.camera import frame_rect

PATHS = {"documented zoom (minified)": {"zoom_speed": 30},
         "deep zoom (magnified to 4x)": {"start_zoom": 2.0, "end_zoom": 8.0}}


def _luma(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16 + 219 / 255 * (0.2126 * r + 0.7152 * g + 0.0722 * b)


def fidelity(video: Path, image: Image.Image, spec: RenderSpec, stride: int = 6) -> float:
    """Mean luma PSNR of every ``stride``-th frame against Lanczos of its box."""
    scores = []
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n % stride:
                continue
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            box = frame_rect(n, spec, image.width, image.height)
            ref = _luma(np.asarray(image.resize((1920, 1080), Image.Resampling.LANCZOS,
                                                box=box)))
            mse = float(np.mean((y[:, :1920].astype(np.float64) - ref) ** 2))
            scores.append(10 * np.log10(255**2 / mse))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_option(parser)
    parser.add_argument("--photo", help="the photo (default: the corpus's castle-facade.jpg)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.photo is None:
        if args.corpus is None:
            parser.error("give --photo PATH or --corpus DIR (or set ZOOMREEL_CORPUS)")
        args.photo = str(args.corpus / "castle-facade.jpg")
    image = ImageOps.exif_transpose(Image.open(args.photo).convert("RGB"))
    print(f"{Path(args.photo).name}, {args.length:g} s of 1920x1080 at 30 fps, median of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.2f}\n")
    print("| path | resampler | render s | vs bilinear | PSNR vs Lanczos dB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in PATHS.items():
            specs = {r: RenderSpec(length=args.length, resampler=r, **path)  # type: ignore[arg-type]
                     for r in ("bilinear", "catmull-rom")}
            times: dict[str, list[float]] = {r: [] for r in specs}
            for r, spec in specs.items():  # warm-up: the JIT, the file cache
                render_video(args.photo, Path(tmp) / f"{r}.mp4", spec)
            for _ in range(args.repeats):
                for r, spec in specs.items():
                    start = time.perf_counter()
                    render_video(args.photo, Path(tmp) / f"{r}.mp4", spec)
                    times[r].append(time.perf_counter() - start)
            base = statistics.median(times["bilinear"])
            for r, spec in specs.items():
                t = statistics.median(times[r])
                score = fidelity(Path(tmp) / f"{r}.mp4", image, spec)
                print(f"| {label} | {r} | {t:.2f} | {t / base:.2f}x | {score:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
