"""The resampling kernel alone: milliseconds a frame, each horizontal pass, real paths.

    python -m benchmarks.kernel [--corpus DIR] [--photos a,b] [--synthetic]
                                [--threads 1] [--stride 10] [--repeats 5]

For each photo, the planes of every ``--stride``-th frame of the documented job (10 s of
1920x1080 at 30 fps, zoom speed 3) with their filter taps, computed first; then the three
planes of those frames resampled by each pass in turn, ``--repeats`` times alternating, on
``--threads`` Numba threads (one: the CPU a frame costs; the pipeline runs the kernel
beside x264 on the same cores). Passes: ``resample`` (what renders use: permuted where the
CPU has AVX-512, else dense), ``permuted`` and ``dense`` (kernel._resample_permuted and
_resample_dense forced: the permuted pass on a CPU without AVX-512 is a slow stand-in).
Every pass's frames are checked equal to resample's. Prints medians, ms a frame and
frames/s, and the ratio dense / resample; one JSON record goes to ``--out``. An older
kernel runs too (resample alone), its engine first on PYTHONPATH, as a baseline.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the zoomreel commands do

import numba
import numpy as np

from benchmarks._corpus import add_corpus_option
from benchmarks._measure import make_source
from benchmarks._record import RESULTS, save_record
from zoomreel import kernel
from zoomreel.camera import camera_path
from zoomreel.render import _prepare
from zoomreel.spec import RenderSpec

#: The passes this kernel has (an older one, on PYTHONPATH, may have resample alone).
PASSES = {name: fn for name, fn in (("resample", kernel.resample),
                                    ("permuted", getattr(kernel, "_resample_permuted", None)),
                                    ("dense", getattr(kernel, "_resample_dense", None)))
          if fn is not None}
Call = tuple[Any, ...]


def frames(photo: Path, stride: int) -> tuple[list[list[Call]], float, float]:
    """The kernel's arguments for every stride-th frame's three planes, as a render
    makes them (``Pyramid.kernel_calls``); the path's largest and smallest scale (source
    pixels per output pixel)."""
    spec = RenderSpec(length=10, frame_rate=30, zoom_speed=3, width=1920, height=1080)
    pyramid, w, h, *_ = _prepare(photo, spec)
    calls, scales = [], []
    for n, box in enumerate(camera_path(spec, pyramid.width, pyramid.height, (w, h))):
        if n % stride:
            continue
        scales.append(max((box[2] - box[0]) / w, (box[3] - box[1]) / h))
        y = np.empty((h, w), np.uint8)
        u, v = np.empty((h // 2, w // 2), np.uint8), np.empty((h // 2, w // 2), np.uint8)
        calls.append(pyramid.kernel_calls(box, y, u, v))
    return calls, max(scales), min(scales)


def run(fn: Any, calls: list[list[Call]]) -> float:
    """Seconds a frame, every frame's three planes once."""
    start = time.perf_counter()
    for planes in calls:
        for args in planes:
            fn(*args)
    return (time.perf_counter() - start) / len(calls)


def outputs(fn: Any, calls: list[list[Call]]) -> list[np.ndarray]:
    out = []
    for planes in calls:
        for args in planes:
            fn(*args)
            out.append(args[-1].copy())
    return out


def measure(photo: Path, stride: int, repeats: int) -> dict[str, Any]:
    calls, most, least = frames(photo, stride)
    want = outputs(kernel.resample, calls)
    for name, fn in PASSES.items():  # compiled or loaded, and checked
        got = outputs(fn, calls)
        if not all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)):
            raise SystemExit(f"{photo.name}: the {name} pass differs from resample")
    times: dict[str, list[float]] = {name: [] for name in PASSES}
    for _ in range(repeats):
        for name, fn in PASSES.items():
            times[name].append(run(fn, calls))
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    return {"photo": photo.name, "frames": len(calls), "scales": [least, most],
            "ms_per_frame": ms, "runs_ms": {k: [x * 1e3 for x in v] for k, v in times.items()},
            "dense_over_resample": ms.get("dense", math.nan) / ms["resample"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kernel", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_option(p)
    p.add_argument("--photos", default="", help="only photos whose names start with these")
    p.add_argument("--synthetic", action="store_true", help="also photo_like(3840, 2160)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stride", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    if a.corpus is None and not a.synthetic:
        p.error("give --corpus DIR (or set ZOOMREEL_CORPUS) and/or --synthetic")
    numba.set_num_threads(a.threads)
    prefixes = [x for x in a.photos.split(",") if x]
    photos = [f for f in sorted(a.corpus.glob("*.jpg") if a.corpus else ())
              if not prefixes or any(f.name.startswith(x) for x in prefixes)]
    with tempfile.TemporaryDirectory(prefix="zoomreel-kernel-") as tmp:
        if a.synthetic:
            photos.append(make_source(Path(tmp)))
        rows = [measure(photo, a.stride, a.repeats) for photo in photos]
    record = {"mode": "kernel", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "permutes": getattr(kernel, "PERMUTES", False), "threads": a.threads,
              "stride": a.stride, "repeats": a.repeats, "loadavg": os.getloadavg(), "photos": rows}
    path = save_record(record, "kernel", a.out)
    print(f"Numba threads {a.threads}, AVX-512 permutes {record['permutes']}, medians of "
          f"{a.repeats}, every {a.stride}th frame's three planes\n")
    print("| image | scales | resample ms (frames/s) | permuted ms | dense ms | dense / resample |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ms = r["ms_per_frame"]
        cells = [f"{ms[name]:.2f}" if name in ms else "-" for name in ("permuted", "dense")]
        ratio = r["dense_over_resample"]
        print(f"| {r['photo']} | {r['scales'][0]:.2f}-{r['scales'][1]:.2f} | "
              f"{ms['resample']:.2f} ({1e3 / ms['resample']:.0f}) | {cells[0]} | {cells[1]} | "
              + ("-" if math.isnan(ratio) else f"{ratio:.2f}x") + " |")
    print(f"\nrecord: {path}")


if __name__ == "__main__":
    main()
