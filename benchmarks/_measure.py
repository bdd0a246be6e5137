"""The measurements bench.py combines: the test image, the kernel alone, encode-only,
the pipeline, and whole processes (wall time and their own peak RSS)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from zoomreel.camera import cover_size, frame_rect
from zoomreel.encoder import Encoder
from zoomreel.pyramid import Pyramid
from zoomreel.render import render_video
from zoomreel.spec import RenderSpec

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6
#: Frames timed per repeat in the kernel-alone measurement (spread over the path).
KERNEL_FRAMES = 60
#: Most frames kept in memory for encode-only; longer jobs replay them back and forth.
MAX_PRECOMPUTED = 600


@dataclass(frozen=True)
class Run:
    """One process run: wall time, peak RSS, output size."""

    wall_s: float
    peak_rss_mb: float
    size_bytes: int
    extra: dict[str, Any]


# -- inputs -------------------------------------------------------------------------


def make_source(folder: Path, width: int = 3840, height: int = 2160, seed: int = 0) -> Path:
    """A deterministic photo-like test image, saved as a quality-95 4:4:4 JPEG."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        imagegen = import_module("imagegen")
    finally:
        sys.path.remove(str(ROOT / "tests"))
    path = folder / f"photo_{width}x{height}.jpg"
    imagegen.photo_like(width, height, seed).save(path, quality=95, subsampling=0)
    return path


def pyramid_for(rgb: np.ndarray, spec: RenderSpec) -> Pyramid:
    """The pyramid render_video builds for this image and spec."""
    pyramid = Pyramid(rgb)
    cw, _ = cover_size(pyramid.width, pyramid.height, spec.width, spec.height)
    pyramid.prepare(max_scale=cw / spec.width)
    return pyramid


def _planes(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.empty((height, width), np.uint8)
    u = np.empty((height // 2, width // 2), np.uint8)
    return y, u, np.empty_like(u)


# -- measurements -------------------------------------------------------------------


def kernel_fps(rgb: np.ndarray, spec: RenderSpec, repeats: int) -> dict[str, Any]:
    """Frames/s of Pyramid.render alone into preallocated planes, median of repeats.

    The frames timed are KERNEL_FRAMES rectangles spread evenly over the job's path.
    """
    pyramid = pyramid_for(rgb, spec)
    total = spec.total_frames
    count = min(KERNEL_FRAMES, total)
    boxes = [
        frame_rect(n * (total - 1) // max(count - 1, 1), spec, pyramid.width, pyramid.height)
        for n in range(count)
    ]
    y, u, v = _planes(spec.width, spec.height)
    pyramid.render(boxes[0], y, u, v)  # JIT or cache load, outside the timing
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for box in boxes:
            pyramid.render(box, y, u, v)
        rates.append(count / (time.perf_counter() - start))
    return {
        "source": f"{pyramid.width}x{pyramid.height}",
        "output": f"{spec.width}x{spec.height}",
        "frames_per_repeat": count,
        "fps": statistics.median(rates),
        "fps_runs": rates,
    }


def precompute(rgb: np.ndarray, spec: RenderSpec) -> list[tuple[np.ndarray, ...]]:
    """The job's kernel frames (up to MAX_PRECOMPUTED of them), for encode-only runs."""
    pyramid = pyramid_for(rgb, spec)
    frames = []
    for n in range(min(spec.total_frames, MAX_PRECOMPUTED)):
        planes = _planes(spec.width, spec.height)
        pyramid.render(frame_rect(n, spec, pyramid.width, pyramid.height), *planes)
        frames.append(planes)
    return frames


def encode_only(frames: list[tuple[np.ndarray, ...]], spec: RenderSpec, out: Path) -> float:
    """Seconds to push the job's frames, precomputed, through Encoder (flush included).

    Each frame is copied into the encoder's one frame (x264 copies its input when it
    is given it, as the pipeline's ring of frames relies on); a job longer than the
    precomputed frames replays them back and forth.
    """
    k = len(frames)
    cycle = list(range(k)) + list(range(k - 2, 0, -1)) or [0]
    start = time.perf_counter()
    with Encoder.from_spec(out, spec, spec.width, spec.height) as encoder:
        frame, y, u, v = encoder.new_frame()
        for n in range(spec.total_frames):
            src = frames[cycle[n % len(cycle)]]
            y[:] = src[0]
            u[:] = src[1]
            v[:] = src[2]
            encoder.encode(frame)
    return time.perf_counter() - start


def pipeline(source: Path, spec: RenderSpec, out: Path) -> float:
    """Seconds for render_video, in this process (kernel already compiled)."""
    start = time.perf_counter()
    render_video(source, out, spec)
    return time.perf_counter() - start


def peak_rss_report(cmd: list[str],
                    env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run ``cmd`` under ``_peak_rss``: its report (wall, user and sys seconds, its own
    peak RSS in KiB) and its stdout."""
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._peak_rss", str(report), *cmd],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode or not report.exists():
            out = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{out}")
        return json.loads(report.read_text()), proc.stdout


def measure_process(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run ``cmd`` under ``_peak_rss``: its wall time, its own peak RSS, its output."""
    info, stdout = peak_rss_report(cmd, env)
    return Run(info["wall_s"], info["peak_rss_kib"] * 1024 / MB, 0, {}), stdout


def ffmpeg_command(source: Path, out: Path, spec: RenderSpec) -> list[str]:
    """The documented service's command for the job (issue 2), as an argument list."""
    fr, length = spec.frame_rate, spec.length
    zs = spec.zoom_speed / 100
    n = spec.total_frames
    vf = (
        f"scale=7680:4320,zoompan=z='min(1+({zs:g}*{length:g})*on/{n}, 1+{zs:g}*{length:g})'"
        f":d={n}:x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':s={spec.width}x{spec.height}"
        f",fps={fr}"
    )
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-framerate",
        str(fr),
        "-loop",
        "1",
        "-i",
        str(source),
        "-vf",
        vf,
        "-c:v",
        "libx264",
        "-r",
        str(fr),
        "-t",
        f"{length:g}",
        "-pix_fmt",
        "yuv420p",
        str(out),
    ]


def run_ffmpeg(source: Path, out: Path, spec: RenderSpec) -> Run:
    """The documented service's ffmpeg command for the job, as a measured process."""
    run, _ = measure_process(ffmpeg_command(source, out, spec))
    return replace(run, size_bytes=out.stat().st_size)


def run_zoomreel(source: Path, out: Path, spec: RenderSpec, cache_dir: Path) -> Run:
    """render_video in a fresh interpreter, its Numba cache in ``cache_dir``."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks._render_once",
        str(source),
        str(out),
        "--length",
        f"{spec.length:g}",
        "--frame-rate",
        str(spec.frame_rate),
        "--zoom-speed",
        f"{spec.zoom_speed:g}",
        "--speed",
        spec.speed,
    ]
    # The expert fields only where given: unset, the speed's own settings apply.
    for flag, value in (("--crf", spec.crf), ("--preset", spec.preset),
                        ("--x264-params", spec.x264_params)):
        if value is not None:
            cmd += [flag, str(value)]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    run, text = measure_process(cmd, env)
    info = json.loads(text.strip().splitlines()[-1])
    info["numba_cache"] = "warm" if info["numba_cache_misses"] == 0 else "cold"
    return replace(run, size_bytes=info["size_bytes"], extra=info)


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time, with the worst peak RSS of all of them."""
    ordered = sorted(runs, key=lambda r: r.wall_s)
    mid = ordered[(len(ordered) - 1) // 2]
    return replace(mid, peak_rss_mb=max(r.peak_rss_mb for r in runs))
