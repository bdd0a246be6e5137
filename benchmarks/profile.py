"""Where one render's cycles go, stage by stage; and the pipeline against encode-only.

    python -m benchmarks.profile PHOTO [--length S] [--repeats N] [--out DIR]

Stages are run one after another in this process, so the CPU time (user + sys of the
whole process, x264's threads included) between two marks belongs to one stage:

- decode: the JPEG decoded strip by strip into level-0 YUV planes (``Pyramid.read``);
- levels: the reduced levels the zoom needs (``Pyramid.prepare``);
- weights: each frame's filter taps, both axes, luma and chroma (``Pyramid.kernel_calls``);
- resample: the kernel writing the three planes of every frame (``resample``), into
  frames taken from the encoder as the pipeline does;
- frames: taking a frame from the encoder (``Encoder.new_frame``);
- encode: x264 and the muxer on every frame, flush included.

Then the real pipeline (``render_video``) and encode-only (the same frames, computed
first, copied into the encoder's frames) take turns ``--repeats`` times, with wall and
CPU time each; the pipeline's CPU time above encode-only's is what the kernel, the
decode and the hand-off cost it. One JSON record goes to ``--out``, a table to stdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the zoomreel commands do

import numpy as np

from benchmarks._record import RESULTS, save_record
from zoomreel import kernel
from zoomreel.camera import camera_path, cover_size
from zoomreel.encoder import Encoder
from zoomreel.pyramid import Pyramid
from zoomreel.render import _prepare, render_video
from zoomreel.spec import RenderSpec


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Clock:
    """Wall and CPU seconds per stage, summed over the marks that name it."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t = (time.perf_counter(), _cpu())

    def mark(self, stage: str) -> None:
        now = (time.perf_counter(), _cpu())
        self.wall[stage] = self.wall.get(stage, 0.0) + now[0] - self._t[0]
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now[1] - self._t[1]
        self._t = (time.perf_counter(), _cpu())


def stages(photo: Path, spec: RenderSpec, out: Path) -> dict[str, Any]:
    """One render, its stages in sequence (see the module's docstring)."""
    clock = _Clock()
    pyramid = Pyramid.read(photo, max_pixels=spec.max_pixels, background=spec.background)
    clock.mark("decode")
    width, height = spec.size_for(pyramid.width, pyramid.height)
    cw, _ = cover_size(pyramid.width, pyramid.height, width, height)
    pyramid.prepare(max_scale=cw / (min(spec.zoom_keyframes) * width))
    clock.mark("levels")
    cubic = spec.resampler == "catmull-rom"
    with Encoder.from_spec(out, spec, width, height) as encoder:
        for box in camera_path(spec, pyramid.width, pyramid.height, (width, height)):
            frame, y, u, v = encoder.new_frame()
            clock.mark("frames")
            calls = pyramid.kernel_calls(box, y, u, v, cubic)
            clock.mark("weights")
            for args in calls:  # Pyramid.render's calls, one thread here: no lock
                kernel.resample(*args)
            clock.mark("resample")
            encoder.encode(frame)
            clock.mark("encode")
    clock.mark("encode")  # the flush and the file's index
    return {"wall_s": clock.wall, "cpu_s": clock.cpu}


def frames_of(photo: Path, spec: RenderSpec) -> list[tuple[np.ndarray, ...]]:
    """Every frame of the job as the kernel makes it, held in memory (encode-only)."""
    pyramid, width, height, *_ = _prepare(photo, spec)
    out = []
    for box in camera_path(spec, pyramid.width, pyramid.height, (width, height)):
        y = np.empty((height, width), np.uint8)
        u = np.empty((height // 2, width // 2), np.uint8)
        v = np.empty_like(u)
        pyramid.render(box, y, u, v)
        out.append((y, u, v))
    return out


def encode_only(frames: list[tuple[np.ndarray, ...]], spec: RenderSpec, out: Path) -> None:
    h, w = frames[0][0].shape
    with Encoder.from_spec(out, spec, w, h) as encoder:
        frame, y, u, v = encoder.new_frame()  # reused, as render_video's ring
        for src in frames:
            y[:] = src[0]
            u[:] = src[1]
            v[:] = src[2]
            encoder.encode(frame)


def timed(fn: Any, *args: Any) -> tuple[float, float]:
    t, c = time.perf_counter(), _cpu()
    fn(*args)
    return time.perf_counter() - t, _cpu() - c


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", type=Path)
    p.add_argument("--length", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--label", default="", help="a word for the record's name")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    spec = RenderSpec(length=a.length, frame_rate=30, zoom_speed=3, width=1920, height=1080)
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="zoomreel-prof-") as tmp_name:
        tmp = Path(tmp_name)
        render_video(a.photo, tmp / "warm.mp4", RenderSpec(length=0.2))  # JIT, once
        prof = stages(a.photo, spec, tmp / "stages.mp4")
        load.append(os.getloadavg())
        frames = frames_of(a.photo, spec)
        pipe: list[tuple[float, float]] = []
        enc: list[tuple[float, float]] = []
        for _ in range(a.repeats):  # alternating, so the other users' load hits both
            enc.append(timed(encode_only, frames, spec, tmp / "enc.mp4"))
            pipe.append(timed(render_video, a.photo, tmp / "pipe.mp4", spec))
            load.append(os.getloadavg())
    n = spec.total_frames
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in (("pipeline", pipe), ("encode_only", enc))}
    cpu_total = sum(prof["cpu_s"].values())
    record = {
        "mode": "profile",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "photo": a.photo.name,
        "job": {**spec.to_dict(), "frames": n},
        "loadavg": load,
        "stages": prof,
        "kernel_fps": n / prof["wall_s"]["resample"],
        "kernel_cpu_share": prof["cpu_s"]["resample"] / cpu_total,
        "pipeline": {"runs": pipe, "wall_s": med["pipeline"][0], "cpu_s": med["pipeline"][1]},
        "encode_only": {"runs": enc, "wall_s": med["encode_only"][0],
                        "cpu_s": med["encode_only"][1]},
        "pipeline_vs_encode_only_wall": med["encode_only"][0] / med["pipeline"][0],
        "pipeline_vs_encode_only_cpu": med["encode_only"][1] / med["pipeline"][1],
    }
    path = save_record(record, "profile" + (f"-{a.label}" if a.label else ""), a.out)
    print(table(record))
    print(f"\nrecord: {path}")


def table(r: dict[str, Any]) -> str:
    s = r["stages"]
    total = sum(s["cpu_s"].values())
    lines = [
        f"{r['photo']}, {r['job']['frames']} frames, {r['date']}, load "
        + " -> ".join(f"{x[0]:.2f}" for x in r["loadavg"]),
        "",
        "| stage | wall s | CPU s | share of CPU |",
        "|---|---|---|---|",
    ]
    for k in s["cpu_s"]:
        lines.append(f"| {k} | {s['wall_s'][k]:.2f} | {s['cpu_s'][k]:.2f} | "
                     f"{s['cpu_s'][k] / total:.1%} |")
    lines += [
        f"| total | {sum(s['wall_s'].values()):.2f} | {total:.2f} | |",
        "",
        f"kernel (resample alone): {r['kernel_fps']:.0f} frames/s on its own",
        f"pipeline {r['pipeline']['wall_s']:.2f} s wall / {r['pipeline']['cpu_s']:.2f} s CPU; "
        f"encode-only {r['encode_only']['wall_s']:.2f} / {r['encode_only']['cpu_s']:.2f} "
        f"(medians of {len(r['pipeline']['runs'])}, alternating): pipeline = "
        f"{r['pipeline_vs_encode_only_wall']:.2f}x encode-only by wall time, "
        f"{r['pipeline_vs_encode_only_cpu']:.2f}x by CPU time",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
