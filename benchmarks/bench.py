"""zoomreel's benchmark: how fast, how big, how faithful, on this machine.

    python -m benchmarks.bench [--quick] [--length S] [--repeats N] [--out DIR]
    python -m benchmarks.bench --presets ultrafast,veryfast,faster --crf 20,23

One run measures the kernel alone, encode-only against the whole pipeline, and
zoomreel's render against the documented service's ffmpeg command for the same job
(wall time, peak RSS, size, PSNR against the exact reference). With ``--presets`` it
sweeps x264 settings instead. It writes a JSON record to ``--out`` and prints a table;
a missed target is recorded, never an error. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# As the zoomreel commands do (zoomreel.frontends._process), before Numba loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import av
import imageio_ffmpeg
import numba
import numpy as np
from PIL import Image

from benchmarks._fidelity import colour_of, video_psnr
from benchmarks._measure import (
    MB,
    ROOT,
    Run,
    encode_only,
    ffmpeg_command,
    kernel_fps,
    make_source,
    median_run,
    pipeline,
    precompute,
    run_ffmpeg,
    run_zoomreel,
)
from zoomreel.image import load_image
from zoomreel.spec import RenderSpec

from ._record import RESULTS, save_record

# -- the record ---------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where and with what this ran."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "av": av.__version__,
        "ffmpeg": imageio_ffmpeg.get_ffmpeg_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_start": os.getloadavg(),
    }


def _target(name: str, value: float, op: str, goal: float, unit: str = "") -> dict[str, Any]:
    ok = value >= goal if op == ">=" else value <= goal
    return {"target": name, "value": value, "goal": f"{op} {goal:g}{unit}", "pass": ok}


# -- the two modes ------------------------------------------------------------------


def headline(args: argparse.Namespace, spec: RenderSpec, tmp: Path) -> dict[str, Any]:
    """Kernel, encode-only vs pipeline, zoomreel vs the ffmpeg command, fidelity."""
    _say(f"source: photo-like {args.source_size}, {spec.total_frames} frames")
    w, h = args.source_size
    source = make_source(tmp, w, h)
    rgb = load_image(source)
    image = Image.open(source).convert("RGB")

    _say("kernel alone")
    k1080 = kernel_fps(rgb, spec, args.repeats)
    # 2160p output from a 7680x4320 source: same scales as 1080p from 3840x2160.
    big = np.asarray(Image.fromarray(rgb).resize((2 * w, 2 * h), Image.Resampling.BICUBIC))
    k2160 = kernel_fps(
        big, replace(spec, width=2 * spec.width, height=2 * spec.height), args.repeats
    )
    k2160["source"] += " (the photo upscaled 2x, bicubic)"
    del big

    # Interleaved, so that load from other users of the machine hits both sides alike.
    _say("encode-only and pipeline (render_video in process), interleaved")
    frames = precompute(rgb, spec)
    enc: list[float] = []
    pipe: list[float] = []
    for _ in range(args.repeats):
        enc.append(encode_only(frames, spec, tmp / "encode_only.mp4"))
        pipe.append(pipeline(source, spec, tmp / "pipeline.mp4"))
    del frames
    n = spec.total_frames
    enc_fps = n / statistics.median(enc)
    pipe_fps = n / statistics.median(pipe)

    _say("zoomreel in a fresh process, cold Numba cache")
    ff_out, zr_out = tmp / "ffmpeg.mp4", tmp / "zoomreel.mp4"
    cache = tmp / "numba-cache"
    cold = run_zoomreel(source, zr_out, spec, cache)
    _say("the ffmpeg command and zoomreel (warm cache), interleaved")
    ffs: list[Run] = []
    warms: list[Run] = []
    for _ in range(args.repeats):
        ffs.append(run_ffmpeg(source, ff_out, spec))
        warms.append(run_zoomreel(source, zr_out, spec, cache))
    ff, warm = median_run(ffs), median_run(warms)

    _say(f"fidelity (every {args.stride}. frame)")
    videos = [(str(p), colour_of(str(p))) for p in (zr_out, ff_out)]
    zr_fid, ff_fid = video_psnr(image, spec, videos, stride=args.stride)

    rss = max(cold.peak_rss_mb, warm.peak_rss_mb)
    ratio = k1080["fps"] / enc_fps
    targets = [
        _target("speed vs ffmpeg (warm)", ff.wall_s / warm.wall_s, ">=", 3, "x"),
        _target("peak RSS (MB, worst run)", rss, "<=", 300),
        _target("size vs ffmpeg", warm.size_bytes / ff.size_bytes, "<=", 1.5, "x"),
        _target("min PSNR (dB)", zr_fid.min_db, ">=", 30),
        _target("kernel 1080p / encode-only", ratio, ">=", 10, "x"),
        _target("pipeline / encode-only", pipe_fps / enc_fps, ">=", 0.9, "x"),
    ]
    return {
        "kernel": {"1080p": k1080, "2160p": k2160},
        "encode_only": {"fps": enc_fps, "seconds": enc},
        "pipeline": {
            "fps": pipe_fps,
            "seconds": pipe,
            "ratio_to_encode_only": pipe_fps / enc_fps,
            # With kernel and encoder sharing every core, the best the pipeline
            # can do is one kernel frame plus one encoded frame per frame time.
            "cpu_bound_ceiling": ratio / (1 + ratio),
        },
        "ffmpeg": {
            **asdict(ff),
            "command": ffmpeg_command(source, ff_out, spec),
            "fidelity": asdict(ff_fid),
        },
        "zoomreel": {"warm": asdict(warm), "cold": asdict(cold), "fidelity": asdict(zr_fid)},
        "targets": targets,
    }


def sweep(args: argparse.Namespace, spec: RenderSpec, tmp: Path) -> dict[str, Any]:
    """Per x264 preset and crf: encode-only speed, then zoomreel's render in a fresh
    process (warm Numba cache) for wall time, peak RSS, size and fidelity."""
    w, h = args.source_size
    source = make_source(tmp, w, h)
    rgb = load_image(source)
    image = Image.open(source).convert("RGB")
    _say("the ffmpeg command (the reference for speed and size), before the settings")
    ff_runs = [run_ffmpeg(source, tmp / "ffmpeg.mp4", spec)]
    cache = tmp / "numba-cache"
    run_zoomreel(source, tmp / "warm-up.mp4", spec, cache)
    frames = precompute(rgb, spec)
    rows: list[dict[str, Any]] = []
    for preset in args.presets:
        for crf in args.crf:
            s = replace(spec, preset=preset, crf=crf)
            out = tmp / f"{preset}-{crf}.mp4"
            _say(f"{preset} crf {crf}: encode-only and zoomreel, interleaved")
            secs: list[float] = []
            runs: list[Run] = []
            for _ in range(args.repeats):
                secs.append(encode_only(frames, s, tmp / "encode_only.mp4"))
                runs.append(run_zoomreel(source, out, s, cache))
            zr = median_run(runs)
            rows.append(
                {
                    "preset": preset,
                    "crf": crf,
                    "path": str(out),
                    "encode_fps": spec.total_frames / statistics.median(secs),
                    "zoomreel_wall_s": zr.wall_s,
                    "peak_rss_mb": zr.peak_rss_mb,
                    "size_bytes": zr.size_bytes,
                    "size_vs_ffmpeg": zr.size_bytes / ff_runs[0].size_bytes,
                }
            )
    del frames
    # Run again after, and compare with the mean: the machine's load drifts over a sweep.
    _say("the ffmpeg command again, after the settings")
    ff_runs.append(run_ffmpeg(source, tmp / "ffmpeg.mp4", spec))
    ff_wall = statistics.mean(r.wall_s for r in ff_runs)
    for row in rows:
        row["speed_vs_ffmpeg"] = ff_wall / row["zoomreel_wall_s"]
    _say(f"fidelity (every {args.stride}. frame)")
    fids = video_psnr(
        image, spec, [(r["path"], colour_of(r["path"])) for r in rows], stride=args.stride
    )
    for row, fid in zip(rows, fids, strict=True):
        row.pop("path")
        row["fidelity"] = asdict(fid)
    ff = replace(ff_runs[0], wall_s=ff_wall, peak_rss_mb=max(r.peak_rss_mb for r in ff_runs))
    return {
        "ffmpeg": {
            **asdict(ff),
            "wall_s_runs": [r.wall_s for r in ff_runs],
            "command": ffmpeg_command(source, tmp / "ffmpeg.mp4", spec),
        },
        "settings": rows,
    }


# -- output -------------------------------------------------------------------------


_STEPS: list[tuple[str, float]] = []


def _say(text: str) -> None:
    """Announce a step on stderr and note the load average as it starts."""
    _STEPS.append((text, os.getloadavg()[0]))
    print(f"... {text} (load {_STEPS[-1][1]:.2f})", file=sys.stderr, flush=True)


def _fid(f: dict[str, Any]) -> str:
    return f"{f['min_db']:.2f} / {f['median_db']:.2f} dB"


def headline_table(r: dict[str, Any]) -> str:
    """The headline record as a Markdown table."""
    k, zr, ff = r["kernel"], r["zoomreel"], r["ffmpeg"]
    warm, cold = zr["warm"], zr["cold"]
    lines = [
        "| measurement | value |",
        "|---|---|",
        f"| kernel 1080p ({k['1080p']['source']}) | {k['1080p']['fps']:.1f} frames/s |",
        f"| kernel 2160p ({k['2160p']['source']}) | {k['2160p']['fps']:.1f} frames/s |",
        f"| encode-only (same frames, same settings) | {r['encode_only']['fps']:.1f} frames/s |",
        f"| pipeline (render_video in process) | {r['pipeline']['fps']:.1f} frames/s |",
        f"| pipeline / encode-only, CPU-bound ceiling k/(1+k), k = kernel/encode | "
        f"{r['pipeline']['cpu_bound_ceiling']:.2f} |",
        f"| ffmpeg command: wall / peak RSS / size | {ff['wall_s']:.2f} s / "
        f"{ff['peak_rss_mb']:.0f} MB / {ff['size_bytes'] / MB:.2f} MB |",
        f"| zoomreel warm cache: wall / peak RSS / size | {warm['wall_s']:.2f} s / "
        f"{warm['peak_rss_mb']:.0f} MB / {warm['size_bytes'] / MB:.2f} MB |",
        f"| zoomreel cold cache: wall / peak RSS | {cold['wall_s']:.2f} s / "
        f"{cold['peak_rss_mb']:.0f} MB |",
        f"| zoomreel warm: import / render_video / peak RSS after import | "
        f"{warm['extra']['import_s']:.2f} s / {warm['extra']['render_s']:.2f} s / "
        f"{warm['extra']['peak_rss_after_import_mb']:.0f} MB |",
        f"| PSNR min / median, zoomreel ({zr['fidelity']['colour']}) | {_fid(zr['fidelity'])} |",
        f"| PSNR min / median, ffmpeg ({ff['fidelity']['colour']}) | {_fid(ff['fidelity'])} |",
        "",
        "| target | value | goal | result |",
        "|---|---|---|---|",
    ]
    for t in r["targets"]:
        result = "PASS" if t["pass"] else "MISS"
        lines.append(f"| {t['target']} | {t['value']:.2f} | {t['goal']} | {result} |")
    return "\n".join(lines)


def sweep_table(r: dict[str, Any]) -> str:
    """The sweep record as a Markdown table."""
    ff = r["ffmpeg"]
    lines = [
        f"ffmpeg command: {ff['wall_s']:.2f} s (mean of "
        + " and ".join(f"{w:.2f}" for w in ff["wall_s_runs"])
        + f" s, before and after), {ff['peak_rss_mb']:.0f} MB peak RSS, "
        f"{ff['size_bytes'] / MB:.2f} MB. zoomreel: render in a fresh process, warm cache.",
        "",
        "| preset | crf | encode-only fps | zoomreel s | vs ffmpeg | peak RSS MB | size MB "
        "| size vs ffmpeg | PSNR min | PSNR median |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["settings"]:
        f = s["fidelity"]
        lines.append(
            f"| {s['preset']} | {s['crf']} | {s['encode_fps']:.1f} | {s['zoomreel_wall_s']:.2f} "
            f"| {s['speed_vs_ffmpeg']:.2f}x | {s['peak_rss_mb']:.0f} | {s['size_bytes'] / MB:.2f} "
            f"| {s['size_vs_ffmpeg']:.2f}x | {f['min_db']:.2f} | {f['median_db']:.2f} |"
        )
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------


def _list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(x) for x in text.split(",") if x]


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="a 2 s job, one repeat: for trying the benchmark out"
    )
    p.add_argument("--length", type=float, help="job length in seconds (default 10)")
    p.add_argument("--frame-rate", type=int, default=30)
    p.add_argument("--zoom-speed", type=float, default=3.0)
    p.add_argument("--source-size", type=_size, default=(3840, 2160), metavar="WxH")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    p.add_argument(
        "--stride", type=int, default=1, help="PSNR on every k-th frame (default 1: every frame)"
    )
    p.add_argument(
        "--presets",
        type=_list(str),
        help="sweep these x264 presets (comma-separated) instead of the headline run",
    )
    p.add_argument(
        "--crf",
        type=_list(int),
        help="crf values for the sweep; one value overrides the headline's crf "
        "(default: RenderSpec's)",
    )
    p.add_argument("--preset", help="x264 preset for the headline run (default: RenderSpec's)")
    p.add_argument(
        "--x264-params",
        default=RenderSpec.x264_params,
        help="libx264 options over the preset (default: RenderSpec's; '' for none)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="folder for the JSON record (default benchmarks/results)",
    )
    args = p.parse_args(argv)
    args.length = args.length or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if not args.presets and args.crf and len(args.crf) > 1:
        p.error("the headline run takes one --crf value; a list needs --presets")
    args.crf = args.crf or [RenderSpec.crf]
    args.preset = args.preset or RenderSpec.preset
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the record, print the table; return the record."""
    args = parse(argv)
    spec = RenderSpec(
        length=args.length,
        frame_rate=args.frame_rate,
        zoom_speed=args.zoom_speed,
        width=1920, height=1080,  # the documented command's size, whatever the image
        crf=args.crf[0],
        preset=args.preset,
        x264_params=args.x264_params,
    )
    record: dict[str, Any] = {
        "mode": "sweep" if args.presets else "headline",
        "machine": machine(),
        "job": {
            **spec.to_dict(),
            "frames": spec.total_frames,
            "source": "photo_like({}, {}, seed=0) as JPEG q95 4:4:4".format(*args.source_size),
        },
    }
    with tempfile.TemporaryDirectory(prefix="zoomreel-bench-") as tmp:
        if args.presets:
            record["sweep"] = sweep(args, spec, Path(tmp))
            table = sweep_table(record["sweep"])
        else:
            record["result"] = headline(args, spec, Path(tmp))
            table = headline_table(record["result"])
    record["machine"]["loadavg_end"] = os.getloadavg()
    record["machine"]["loadavg_by_step"] = _STEPS
    path = save_record(record, record["mode"], args.out)
    m = record["machine"]
    print(
        f"zoomreel benchmark, {m['date']}, {m['cpu']} x{m['affinity']}, "
        f"load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}, "
        f"job {spec.total_frames} frames {spec.width}x{spec.height}@{spec.frame_rate}, "
        f"zoom {spec.zoom_speed:g}, repeats {args.repeats} (median), PSNR stride {args.stride}"
        + ("" if args.presets else f", crf {spec.crf}, preset {spec.preset}")
        + "\n"
    )
    print(table)
    print(f"\nrecord: {path}")
    return record


if __name__ == "__main__":
    main()
