"""Run one render_video in this (fresh) process and print what happened as JSON.

``bench.py`` starts this as a subprocess so that the peak RSS it reads is zoomreel's
own: interpreter, imports, Numba JIT or cache load, the image, the frames in flight.

    python -m benchmarks._render_once SOURCE OUT [--length S] [--crf N] [--preset P] ...
    python -m benchmarks._render_once SOURCE OUT --codec av1 --speed fastest --size 1280x720
    python -m benchmarks._render_once SOURCE OUT --codec vp9 --settings '{"crf": 34, ...}'

``--settings`` (JSON: ``crf``, ``preset``, ``options``) replaces the encoder settings of the
chosen codec and speed in this process only, for sweeps over settings RenderSpec cannot
express (zoomreel.codecs holds the shipped ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

_T0 = time.perf_counter()
# What the zoomreel commands do before they render (zoomreel.frontends._process):
# OpenMP threads wait passively, SVT-AV1 logs errors only, glibc maps frames on their own.
from zoomreel.frontends._process import prefer_passive_openmp, prepare_rendering  # noqa: E402

prefer_passive_openmp()
prepare_rendering()

from zoomreel import RenderSpec, codecs, kernel, render_video  # noqa: E402 - timed import

_IMPORTED = time.perf_counter()


def _hwm_mb() -> float:
    """This process's peak RSS so far (VmHWM), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return 0.0


_IMPORT_HWM = _hwm_mb()


def _cache_state() -> dict[str, int]:
    hits = misses = 0
    for fn in (kernel.axis_weights, kernel._resample_permuted, kernel._resample_dense,
               kernel.rgb_to_yuv420):  # resample picks one of the two, in Python
        stats = fn.stats
        hits += sum(stats.cache_hits.values())
        misses += sum(stats.cache_misses.values())
    return {"numba_cache_hits": hits, "numba_cache_misses": misses}


def _override(codec: str, speed: str, settings: dict[str, object]) -> None:
    """Swap in other encoder settings for ``codec`` at ``speed``, in this process."""
    kind = codecs.CODECS[codec]
    speeds = {**kind.speeds, speed: codecs.EncoderSettings(**settings)}  # type: ignore[arg-type]
    codecs.CODECS[codec] = dataclasses.replace(kind, speeds=speeds)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, render, print one JSON line."""
    p = argparse.ArgumentParser(prog="python -m benchmarks._render_once")
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--length", type=float, default=RenderSpec.length)
    p.add_argument("--frame-rate", type=int, default=RenderSpec.frame_rate)
    p.add_argument("--zoom-speed", type=float, default=RenderSpec.zoom_speed)
    p.add_argument("--crf", type=int, default=RenderSpec.crf)
    p.add_argument("--preset", default=RenderSpec.preset)
    p.add_argument("--x264-params", default=RenderSpec.x264_params)
    p.add_argument("--codec", default=RenderSpec.codec)
    p.add_argument("--speed", default=RenderSpec.speed)
    p.add_argument("--size", default="1920x1080", help="WxH of the output")
    p.add_argument("--settings", default=None, help="JSON encoder settings (sweeps)")
    p.add_argument("--frames", default=None, help="A:B: render frames A..B-1 only (a chunk)")
    a = p.parse_args(argv)
    width, height = (int(v) for v in a.size.split("x"))
    if a.settings:
        _override(a.codec, a.speed, json.loads(a.settings))
    spec = RenderSpec(
        length=a.length,
        frame_rate=a.frame_rate,
        zoom_speed=a.zoom_speed,
        width=width,
        height=height,
        codec=a.codec,
        speed=a.speed,
        crf=a.crf,
        preset=a.preset,
        x264_params=a.x264_params,
    )
    start = time.perf_counter()
    frames = None
    if a.frames:
        first, stop = (int(v) for v in a.frames.split(":"))
        frames = range(first, stop)
    hwm_by_frame: dict[int, float] = {}

    def progress(done: int, total: int) -> None:
        if done in (1, 10, 100, 1000):
            hwm_by_frame[done] = _hwm_mb()

    result = render_video(a.source, a.out, spec, frames=frames, progress=progress)
    end = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": _IMPORTED - _T0,
                "peak_rss_after_import_mb": _IMPORT_HWM,
                "render_s": end - start,
                # the peak so far once 1, 10, 100, 1000 frames are encoded: where it
                # stops growing (the image prepared, x264's lookahead full)
                "peak_rss_by_frame_mb": hwm_by_frame,
                "peak_rss_mb": _hwm_mb(),
                "frames": result.frames,
                "size_bytes": result.size_bytes,
                **_cache_state(),
            }
        )
    )


if __name__ == "__main__":
    main()
