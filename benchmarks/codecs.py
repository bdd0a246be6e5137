"""Codecs and sizes: frames/s, file size, fidelity and peak RSS of every codec and speed.

    python -m benchmarks.codecs --corpus DIR          # all codecs x speeds x 4 sizes (~20 min)
    python -m benchmarks.codecs --sizes 1920x1080 --codecs h265,av1 --length 3
    python -m benchmarks.codecs --image PATH/TO/photo.jpg --stride 2

Each render is ``benchmarks._render_once`` in a fresh process (its wall time and its
own peak RSS read by ``benchmarks._peak_rss``) with a warm Numba cache: a fixed job,
zoom speed 3 at 30 fps, on a photo: ``--image``, else the corpus's redpanda-foliage.jpg
(``--corpus DIR``, default ``$ZOOMREEL_CORPUS``), else the benchmark's photo-like test
image. frames/s is frames over ``render_video``'s own time
(import and interpreter start left out; wall time is recorded too). Fidelity is the mean
and minimum per-frame luma PSNR against the exact reference (``benchmarks._fidelity``).
Writes ``<UTC time>-codecs.json`` to ``--out`` (default benchmarks/results/) and prints
a Markdown table. See benchmarks/README.md, "codecs".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# As the zoomreel commands do (zoomreel.frontends._process), before Numba or SVT-AV1 load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("SVT_LOG", "1")

from PIL import Image

from benchmarks._fidelity import video_psnr
from benchmarks._measure import make_source, measure_process
from benchmarks.bench import machine
from zoomreel.codecs import CODECS
from zoomreel.image import load_image
from zoomreel.spec import RenderSpec

from ._corpus import add_corpus_option
from ._record import RESULTS, save_record

SIZES = ((1280, 720), (1920, 1080), (3840, 2160), (1080, 1920))
SPEEDS = ("fastest", "balanced", "smallest")


def render_once(source: Path, out: Path, spec: RenderSpec) -> dict[str, Any]:
    """One fresh-process render of ``spec``: wall time, peak RSS, render_video's time."""
    run, stdout = measure_process([
        sys.executable, "-m", "benchmarks._render_once", str(source), str(out),
        "--length", f"{spec.length:g}", "--frame-rate", str(spec.frame_rate),
        "--zoom-speed", f"{spec.zoom_speed:g}", "--codec", spec.codec, "--speed", spec.speed,
        "--size", f"{spec.width}x{spec.height}",
    ])
    info = json.loads(stdout.strip().splitlines()[-1])
    size = out.stat().st_size
    return {
        "codec": spec.codec, "speed": spec.speed, "size": f"{spec.width}x{spec.height}",
        "frames": info["frames"], "wall_s": run.wall_s, "render_s": info["render_s"],
        "fps": info["frames"] / info["render_s"], "peak_rss_mb": run.peak_rss_mb,
        "size_bytes": size, "kbit_s": size * 8 / spec.length / 1000,
        "numba_cache_misses": info["numba_cache_misses"], "load": os.getloadavg()[0],
    }


def measure(args: argparse.Namespace, source: Path, tmp: Path) -> list[dict[str, Any]]:
    """Every size x codec x speed; fidelity per size in one decoding pass."""
    image = Image.fromarray(load_image(source))
    warm = RenderSpec(length=0.2, width=320, height=180)
    render_once(source, tmp / "warm.mp4", warm)  # fills the Numba cache, not recorded
    rows: list[dict[str, Any]] = []
    for width, height in args.sizes:
        videos: list[tuple[str, str]] = []
        spec = RenderSpec(length=args.length, frame_rate=30, zoom_speed=3,
                          width=width, height=height)
        start = len(rows)
        for codec in args.codecs:
            for speed in args.speeds:
                job = RenderSpec(length=args.length, frame_rate=30, zoom_speed=3, width=width,
                                 height=height, codec=codec, speed=speed)
                out = tmp / f"{width}x{height}-{codec}-{speed}{CODECS[codec].extension}"
                row = render_once(source, out, job)
                rows.append(row)
                videos.append((str(out), "bt709/limited"))
                print(f"{row['size']} {codec} {speed}: {row['fps']:.1f} frames/s, "
                      f"{row['size_bytes'] / 1e6:.2f} MB, {row['peak_rss_mb']:.0f} MB RSS, "
                      f"load {row['load']:.1f}", file=sys.stderr, flush=True)
        for row, fid in zip(rows[start:], video_psnr(image, spec, videos, args.stride),
                            strict=True):
            row.update(psnr_mean_db=fid.mean_db, psnr_min_db=fid.min_db,
                       psnr_frames=fid.frames_evaluated)
        for path, _ in videos:
            os.unlink(path)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| size | codec | speed | frames/s | file MB | kbit/s | PSNR mean / min dB "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['codec']} | {r['speed']} | {r['fps']:.1f} "
            f"| {r['size_bytes'] / 1e6:.2f} | {r['kbit_s']:.0f} "
            f"| {r['psnr_mean_db']:.2f} / {r['psnr_min_db']:.2f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        w, h = item.lower().split("x")
        out.append((int(w), int(h)))
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.codecs",
                                description=__doc__.splitlines()[0])
    add_corpus_option(p)
    p.add_argument("--image", type=Path, default=None,
                   help="the photo (default: the corpus's redpanda-foliage.jpg)")
    p.add_argument("--length", type=float, default=2.0, help="seconds per render (default 2)")
    p.add_argument("--codecs", type=lambda t: t.split(","), default=list(CODECS))
    p.add_argument("--speeds", type=lambda t: t.split(","), default=list(SPEEDS))
    p.add_argument("--sizes", type=_sizes, default=list(SIZES), help="WxH,WxH,...")
    p.add_argument("--stride", type=int, default=1, help="PSNR on every K-th frame")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.image is None and args.corpus is not None:
        default_image = args.corpus / "redpanda-foliage.jpg"
        args.image = default_image if default_image.is_file() else None
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure, write the record, print the table."""
    args = parse(argv)
    record: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        source = args.image or make_source(Path(tmp))
        record["job"] = {"image": str(source), "length_s": args.length, "frame_rate": 30,
                         "zoom_speed": 3, "stride": args.stride,
                         "settings": {c: {s: repr(CODECS[c].speeds[s]) for s in args.speeds}
                                      for c in args.codecs}}
        record["rows"] = measure(args, source, Path(tmp))
    record["machine"]["loadavg_end"] = os.getloadavg()
    path = save_record(record, "codecs", args.out)
    m = record["machine"]
    print(f"{Path(record['job']['image']).name}, {args.length:g} s at 30 fps, zoom speed 3; "
          f"load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}; record {path.name}\n")
    print(table(record["rows"]))
    return record


if __name__ == "__main__":
    main()
