"""Encoder settings on real photos: zoomreel against the documented ffmpeg command.

    python -m benchmarks.encoders compare --corpus DIR [--synthetic]
    python -m benchmarks.encoders sweep --corpus DIR \\
        --photos castle,office,redpanda --grid round1
    python -m benchmarks.encoders front benchmarks/results/*-encoders-sweep.json

``compare`` runs, for every photo, the ffmpeg command and zoomreel at the named encoder
settings (``--settings``, default: current,balanced), alternating them ``--repeats``
times, and measures for each: wall time and CPU time of the whole process, its peak RSS,
the file size, the *encoder fidelity* and the *path fidelity*.

- encoder fidelity: mean (and min) luma PSNR of the decoded video against the frames
  that went into the encoder, i.e. against a lossless encode of the same frames.
  zoomreel's are its kernel's frames (computed again here, bit-exact); the ffmpeg
  command's are its own filter graph's output, read raw from a second run of the same
  command with ``-c:v rawvideo -f rawvideo`` instead of libx264 (``--check-lossless``
  verifies that this equals decoding a ``-qp 0`` encode).
- path fidelity: per-frame luma PSNR (min / median) against the exact zoom path, Pillow's
  bilinear resize of the EXIF-oriented photo over each frame's rectangle, as
  ``benchmarks.bench`` measures it (``--path-stride K``: every K-th frame).

``sweep`` measures many x264 settings (``--grid`` and/or ``--candidate
PRESET/CRF/PARAMS``) on shorter jobs: one fresh-process render each (warm Numba cache),
with wall time, CPU time, peak RSS, size and encoder fidelity, next to the ffmpeg command
run before and after the settings on the same photo. It writes the record after every
photo, so a cut-short sweep keeps what it measured.

Both write a JSON record to ``--out`` (default benchmarks/results/) and print Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from benchmarks._corpus import default_corpus
from benchmarks._fidelity import _luma_frames, colour_of, ssim, ssim_db, video_psnr
from benchmarks._measure import (
    MB,
    ffmpeg_command,
    make_source,
    peak_rss_report,
    pyramid_for,
)
from benchmarks._record import RESULTS, save_record, utc_stamp
from zoomreel.camera import frame_rect
from zoomreel.codecs import CODECS
from zoomreel.image import load_image
from zoomreel.spec import RenderSpec

# -- encoder settings -----------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One x264 configuration: preset, crf (x264 takes fractions) and x264 params; a
    named one (``speed``) is rendered as a user gets it, ``--speed NAME``."""

    preset: str
    crf: float
    params: str = ""
    speed: str | None = None

    @property
    def label(self) -> str:
        return f"{self.preset}/{self.crf:g}/{self.params}"

    @classmethod
    def parse(cls, text: str) -> Setting:
        """``PRESET/CRF/PARAMS`` (PARAMS may be empty), or a name from NAMED."""
        if text in NAMED:
            return NAMED[text]
        preset, crf, *rest = text.split("/")
        return cls(preset, float(crf), "/".join(rest))

    def render_args(self) -> list[str]:
        """``benchmarks._render_once``'s arguments for this setting."""
        if self.speed is not None:
            return ["--speed", self.speed]
        options = {"x264-params": self.params} if self.params else {}
        return ["--settings", json.dumps({"crf": self.crf, "preset": self.preset,
                                          "options": options})]


def _shipped(speed: str) -> Setting:
    s = CODECS["h264"].speeds[speed]
    assert s.preset is not None
    return Setting(s.preset, s.crf, s.options.get("x264-params", ""), speed)


#: The h264 settings zoomreel ships (zoomreel.codecs; see benchmarks/history/, "Encoder
#: settings on real photos"), and RenderSpec's default before them.
NAMED: dict[str, Setting] = {
    "current": Setting("ultrafast", 26, "cabac=1:deblock=0,0"),
    **{name: _shipped(name) for name in ("fastest", "balanced", "smallest")},
}

# Grids for ``sweep --grid``, as run (benchmarks/history/), 3 s jobs: for issue 8,
# round1 on castle, office and redpanda, round2 on office, redpanda and tree.
_V5 = "veryfast/20/bframes=0:rc-lookahead=5"
_S1 = "superfast/24/bframes=1"
_B22 = "superfast/23/bframes=1:subme=2:trellis=1"
GRIDS: dict[str, list[str]] = {
    "round1": [
        "ultrafast/26/cabac=1:deblock=0,0",
        "veryfast/20/",
        "superfast/22/bframes=0",
        "superfast/22/bframes=1",
        "superfast/24/bframes=1",
        "superfast/22/bframes=1:subme=2",
        "superfast/22/bframes=1:me=hex",
        "superfast/22/bframes=1:trellis=1",
        "superfast/22/bframes=1:mbtree=1:rc-lookahead=5",
        _V5,
        "veryfast/22/bframes=0:rc-lookahead=5",
        "veryfast/20/bframes=1:rc-lookahead=5:sync-lookahead=0",
        "veryfast/20/bframes=0:mbtree=0:rc-lookahead=0",
        "veryfast/20/bframes=0:rc-lookahead=10",
        f"{_V5}:aq-mode=0",
        f"{_V5}:psy-rd=0,0",
        f"{_V5}:subme=1:me=dia",
        f"{_V5}:trellis=1",
        f"{_V5}:ref=2",
        f"{_V5}:threads=1",
        f"{_V5}:sliced-threads=1",
        f"{_V5}:me=dia",
    ],
    "round2": [
        "ultrafast/26/cabac=1:deblock=0,0",
        "veryfast/20/",
        _S1,
        "superfast/25/bframes=1",
        "superfast/24/bframes=2",
        "superfast/24/bframes=2:b-adapt=0",
        "superfast/24/bframes=1:b-adapt=0",
        f"{_S1}:ref=2",
        f"{_S1}:partitions=i8x8,i4x4,p8x8",
        f"{_S1}:trellis=1",
        f"{_S1}:subme=2",
        f"{_S1}:subme=2:trellis=1",
        f"{_S1}:threads=2",
        "superfast/26/bframes=1:mbtree=1:rc-lookahead=3",
        "superfast/26/bframes=1:mbtree=1:rc-lookahead=2:sync-lookahead=0",
        "veryfast/22/bframes=1:rc-lookahead=3:sync-lookahead=0",
        "veryfast/21/bframes=1:mbtree=0:rc-lookahead=0",
        "veryfast/22/bframes=2:rc-lookahead=4:sync-lookahead=0",
        "faster/23/bframes=1:mbtree=0:rc-lookahead=0",
    ],
    # issue 22, on castle, office, redpanda (+ tree in round4) and the synthetic photo:
    # what balanced's freed CPU buys within 300 MB, judged in PSNR and SSIM.
    "round3": [
        _B22 + ":ref=2",
        "superfast/22/bframes=1:subme=2:trellis=1:ref=2",
        _B22 + ":ref=2:partitions=i8x8,i4x4,p8x8",
        _B22 + ":ref=3",
        "superfast/23/bframes=2:subme=2:trellis=1:ref=2",
        "superfast/23/bframes=1:subme=3:trellis=1:ref=2:me=hex",
        _B22 + ":ref=2:aq-mode=2",
        _B22 + ":ref=2:deblock=-1,-1",
    ],
    "round4": [
        _B22 + ":ref=2",
        _B22 + ":ref=2:deblock=-1,-1",
        _B22 + ":ref=3:deblock=-1,-1",
        _B22 + ":ref=3:deblock=-1,-1:aq-mode=2",
        _B22 + ":ref=2:deblock=-1,-1:aq-mode=2",
        "superfast/22/bframes=1:subme=2:trellis=1:ref=3:deblock=-1,-1",
        _B22 + ":ref=3:deblock=-1,-1:threads=2",
    ],
}


# -- processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measured process."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    size_bytes: int
    load: float  # 1-minute load average as it started


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run ``cmd`` under benchmarks._peak_rss: wall, CPU, its own peak RSS, stdout."""
    load = os.getloadavg()[0]
    info, stdout = peak_rss_report(cmd, env)
    run = Run(info["wall_s"], info["user_s"] + info["sys_s"],
              info["peak_rss_kib"] * 1024 / MB, 0, load)
    return run, stdout


def run_ffmpeg(source: Path, out: Path, spec: RenderSpec) -> Run:
    run, _ = measure(ffmpeg_command(source, out, spec))
    return replace(run, size_bytes=out.stat().st_size)


def run_zoomreel(source: Path, out: Path, spec: RenderSpec, cache: Path,
                 setting: Setting) -> Run:
    """``setting`` rendered in a fresh process (the job: ``spec``'s length and zoom)."""
    cmd = [
        sys.executable, "-m", "benchmarks._render_once", str(source), str(out),
        "--length", f"{spec.length:g}", "--frame-rate", str(spec.frame_rate),
        "--zoom-speed", f"{spec.zoom_speed:g}", *setting.render_args(),
    ]  # fmt: skip
    run, _ = measure(cmd, {**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    return replace(run, size_bytes=out.stat().st_size)


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "wall_s": run.wall_s,
        "cpu_s": run.cpu_s,
        "peak_rss_mb": run.peak_rss_mb,
        "size_bytes": run.size_bytes,
        "load": run.load,
    }


# -- encoder fidelity -----------------------------------------------------------------


def _psnr(mse: float) -> float:
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def kernel_luma(source: Path, spec: RenderSpec) -> Iterator[np.ndarray]:
    """The Y planes zoomreel's kernel makes for the job, in order (what its encoder gets)."""
    rgb = load_image(source, max_pixels=spec.max_pixels, background=spec.background)
    pyramid = pyramid_for(rgb, spec)
    del rgb
    y = np.empty((spec.height, spec.width), np.uint8)
    u = np.empty((spec.height // 2, spec.width // 2), np.uint8)
    v = np.empty_like(u)
    for n in range(spec.total_frames):
        pyramid.render(frame_rect(n, spec, pyramid.width, pyramid.height), y, u, v)
        yield y


def ffmpeg_luma(source: Path, spec: RenderSpec) -> Iterator[np.ndarray]:
    """The Y planes the ffmpeg command's filter graph hands its encoder: the same command
    with raw video out on a pipe instead of libx264."""
    cmd = ffmpeg_command(source, Path("unused.mp4"), spec)
    cmd[cmd.index("libx264")] = "rawvideo"
    cmd[-1:] = ["-f", "rawvideo", "pipe:1"]
    w, h = spec.width, spec.height
    size = w * h * 3 // 2
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                break
            yield np.frombuffer(buf, np.uint8, w * h).reshape(h, w)
        proc.stdout.close()


def encoder_fidelity(
    reference: Iterator[np.ndarray], videos: Sequence[str | Path]
) -> list[dict[str, Any]]:
    """Luma PSNR and SSIM of each video against ``reference`` frame by frame: PSNR mean,
    min, and the PSNR of the mean squared error over the clip; SSIM mean (also in dB,
    -10 log10(1 - SSIM), as x264 reports it) and min; frame counts of both."""
    decoders = [_luma_frames(str(v)) for v in videos]
    scores: list[list[float]] = [[] for _ in videos]
    ssims: list[list[float]] = [[] for _ in videos]
    sums = [0.0 for _ in videos]
    counts = [0 for _ in videos]
    ref_frames = 0
    for ref in reference:
        ref_frames += 1
        r = ref.astype(np.float32)
        for k, d in enumerate(decoders):
            y = next(d, None)
            if y is None:
                continue
            mse = float(np.mean((y - r) ** 2, dtype=np.float64))
            scores[k].append(_psnr(mse))
            ssims[k].append(ssim(y, r))
            sums[k] += mse
            counts[k] += 1
    out = []
    for k, d in enumerate(decoders):
        extra = sum(1 for _ in d)
        s = scores[k]
        out.append(
            {
                "mean_db": statistics.fmean(s) if s else 0.0,
                "min_db": min(s) if s else 0.0,
                "clip_db": _psnr(sums[k] / counts[k]) if counts[k] else 0.0,
                "ssim_mean": statistics.fmean(ssims[k]) if s else 0.0,
                "ssim_min": min(ssims[k]) if s else 0.0,
                "ssim_db": ssim_db(statistics.fmean(ssims[k])) if s else 0.0,
                "frames_compared": counts[k],
                "reference_frames": ref_frames,
                "video_frames": counts[k] + extra,
            }
        )
    return out


def check_lossless(source: Path, spec: RenderSpec, tmp: Path) -> dict[str, Any]:
    """The raw-pipe reference equals decoding the command re-run with ``-qp 0``; the
    kernel reference equals decoding zoomreel's own lossless (qp 0) encode."""
    cmd = ffmpeg_command(source, tmp / "ffmpeg-qp0.mp4", spec)
    cmd[-1:-1] = ["-qp", "0", "-preset", "ultrafast"]
    subprocess.run(cmd, check=True)
    (ff,) = encoder_fidelity(ffmpeg_luma(source, spec), [tmp / "ffmpeg-qp0.mp4"])
    lossless = Setting("ultrafast", 0, "qp=0")
    run_zoomreel(source, tmp / "zoomreel-qp0.mp4", spec, tmp / "numba-cache", lossless)
    (zr,) = encoder_fidelity(kernel_luma(source, spec), [tmp / "zoomreel-qp0.mp4"])
    return {"ffmpeg_qp0_vs_raw_pipe": ff, "zoomreel_qp0_vs_kernel": zr}


# -- inputs ---------------------------------------------------------------------------


def corpus_photos(corpus: Path | None, names: Sequence[str] | None) -> list[Path]:
    if corpus is None:
        return []
    photos = sorted(p for p in corpus.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if names:  # in the order given
        photos = [p for n in names for p in photos if p.stem.startswith(n)]
    return photos


def oriented(path: Path) -> Image.Image:
    """The photo as zoomreel sees it: EXIF orientation applied, RGB."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def as_stored(path: Path) -> Image.Image:
    """The photo as the ffmpeg command sees it: ffmpeg's image2/mjpeg input ignores the
    EXIF orientation tag."""
    with Image.open(path) as im:
        return im.convert("RGB")


def path_fidelity(
    photo: Path, spec: RenderSpec, zoomreel: Sequence[Path], ffmpeg: Path | None, stride: int
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per-frame PSNR against the exact path: zoomreel's files against the oriented photo,
    the ffmpeg file against the photo as ffmpeg reads it (they differ when EXIF rotates)."""
    img = oriented(photo)
    stored = as_stored(photo)
    same = img.size == stored.size and img.tobytes() == stored.tobytes()
    videos = [(str(p), colour_of(str(p))) for p in zoomreel]
    if ffmpeg is not None and same:
        videos.append((str(ffmpeg), colour_of(str(ffmpeg))))
    fids = [_fid_dict(f) for f in video_psnr(img, spec, videos, stride=stride)]
    del img
    ff = None
    if ffmpeg is not None:
        if same:
            ff = fids.pop()
        else:
            (f,) = video_psnr(stored, spec, [(str(ffmpeg), colour_of(str(ffmpeg)))], stride)
            ff = {**_fid_dict(f), "note": "against the photo as stored (EXIF orientation "
                  "ignored by ffmpeg, as its command renders it)"}  # fmt: skip
    return fids, ff


def _fid_dict(f: Any) -> dict[str, Any]:
    return {
        "colour": f.colour,
        "min_db": f.min_db,
        "median_db": f.median_db,
        "worst_frame": f.worst_frame,
        "stride": f.stride,
    }


# -- machine and load -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    from benchmarks.bench import machine as bench_machine

    return bench_machine()


_LOADS: list[tuple[str, float]] = []


def say(text: str) -> None:
    _LOADS.append((text, os.getloadavg()[0]))
    print(f"... {text} (load {_LOADS[-1][1]:.2f})", file=sys.stderr, flush=True)


def write(record: dict[str, Any], out: Path, stamp: str) -> Path:
    record["machine"]["loadavg_now"] = os.getloadavg()
    record["machine"]["loadavg_by_step"] = _LOADS
    return save_record(record, record["mode"], out, stamp)


# -- compare --------------------------------------------------------------------------


def compare_photo(
    photo: Path,
    spec: RenderSpec,
    settings: Sequence[Setting],
    repeats: int,
    stride: int,
    tmp: Path,
    cache: Path,
) -> dict[str, Any]:
    """The ffmpeg command and zoomreel at each setting on one photo, alternating."""
    ff_out = tmp / "ffmpeg.mp4"
    outs = [tmp / f"zoomreel-{k}.mp4" for k in range(len(settings))]
    ff_runs: list[Run] = []
    zr_runs: list[list[Run]] = [[] for _ in settings]
    for r in range(repeats):
        # ffmpeg first on even repeats, last on odd ones: drift in load hits both alike.
        order: list[int | None] = [None, *range(len(settings))]
        if r % 2:
            order.reverse()
        for k in order:
            if k is None:
                say(f"{photo.name}: ffmpeg command, repeat {r + 1}")
                ff_runs.append(run_ffmpeg(photo, ff_out, spec))
            else:
                s = settings[k]
                say(f"{photo.name}: zoomreel {s.label}, repeat {r + 1}")
                zr_runs[k].append(run_zoomreel(photo, outs[k], spec, cache, s))
    say(f"{photo.name}: encoder fidelity (ffmpeg raw pipe, kernel frames)")
    (ff_enc,) = encoder_fidelity(ffmpeg_luma(photo, spec), [ff_out])
    zr_enc = encoder_fidelity(kernel_luma(photo, spec), outs)
    say(f"{photo.name}: path fidelity (every {stride}. frame)")
    zr_path, ff_path = path_fidelity(photo, spec, outs, ff_out, stride)
    ff_wall = statistics.median(r.wall_s for r in ff_runs)
    ff_size = ff_runs[0].size_bytes
    result: dict[str, Any] = {
        "photo": photo.name,
        "ffmpeg": {
            "command": ffmpeg_command(photo, ff_out, spec),
            "runs": [run_dict(r) for r in ff_runs],
            "wall_s": ff_wall,
            "cpu_s": statistics.median(r.cpu_s for r in ff_runs),
            "peak_rss_mb": max(r.peak_rss_mb for r in ff_runs),
            "size_bytes": ff_size,
            "encoder_fidelity": ff_enc,
            "path_fidelity": ff_path,
        },
        "zoomreel": [],
    }
    for s, runs, enc, path in zip(settings, zr_runs, zr_enc, zr_path, strict=True):
        wall = statistics.median(r.wall_s for r in runs)
        rss = max(r.peak_rss_mb for r in runs)
        size = runs[0].size_bytes
        paired = [f.wall_s / z.wall_s for f, z in zip(ff_runs, runs, strict=True)]
        cpu = (statistics.median(r.cpu_s for r in ff_runs)
               / statistics.median(r.cpu_s for r in runs))
        result["zoomreel"].append(
            {
                "setting": s.label,
                "name": next((n for n, v in NAMED.items() if v == s), None),
                "runs": [run_dict(r) for r in runs],
                "wall_s": wall,
                "cpu_s": statistics.median(r.cpu_s for r in runs),
                "peak_rss_mb": rss,
                "size_bytes": size,
                "encoder_fidelity": enc,
                "path_fidelity": path,
                "speed_vs_ffmpeg": ff_wall / wall,
                "speed_vs_ffmpeg_paired": paired,
                "cpu_vs_ffmpeg": cpu,
                "targets": targets(ff_wall / wall, cpu, size / ff_size,
                                   enc["mean_db"] - ff_enc["mean_db"],
                                   enc["ssim_db"] - ff_enc["ssim_db"], rss),
            }
        )
    return result


#: Issue 22's targets against the documented command: wall and CPU time at least this
#: many times less (goal: SPEED_GOAL), file size at most the command's, encoder
#: fidelity at most FIDELITY_DB under the command's in luma PSNR and in SSIM (dB).
SPEED_TARGET = 2.5
SPEED_GOAL = 3.0
FIDELITY_DB = 0.5
RSS_MB = 300.0


def targets(wall: float, cpu: float, size: float, psnr_db: float, ssim_db: float,
            rss: float) -> dict[str, bool]:
    """Which targets one setting meets on one photo (ratios and differences against the
    ffmpeg command: speed-ups, size ratio, dB differences)."""
    return {
        "wall": wall >= SPEED_TARGET,
        "cpu": cpu >= SPEED_TARGET,
        "size": size <= 1.0,
        "psnr": psnr_db >= -FIDELITY_DB,
        "ssim": ssim_db >= -FIDELITY_DB,
        "rss": rss <= RSS_MB,
        "goal_3x": min(wall, cpu) >= SPEED_GOAL,
    }


def _photos_and_a_warm_cache(args: argparse.Namespace, tmp: Path, spec: RenderSpec,
                             setting: Setting) -> tuple[list[Path], Path, Run]:
    """The photos to measure (corpus, and the synthetic one if asked), and a Numba cache
    in ``tmp`` filled by one (cold) render, whose run is returned."""
    cache = tmp / "numba-cache"
    photos = corpus_photos(args.corpus, args.photos)
    if args.synthetic:
        photos.append(make_source(tmp, 3840, 2160))
    say("cold Numba cache: one zoomreel render to fill it")
    cold = run_zoomreel(photos[0], tmp / "cold.mp4", spec, cache, setting)
    return photos, cache, cold


def compare(args: argparse.Namespace) -> None:
    # the documented command's size (s=1920x1080), whatever the photo's shape
    spec = RenderSpec(length=args.length, frame_rate=30, zoom_speed=args.zoom_speed,
                      width=1920, height=1080)
    settings = [Setting.parse(s) for s in args.settings]
    stamp = utc_stamp()
    record: dict[str, Any] = {
        "mode": "encoders-compare",
        "machine": machine(),
        "job": {**spec.to_dict(), "frames": spec.total_frames},
        "settings": [s.label for s in settings],
        "repeats": args.repeats,
        "photos": [],
    }
    with tempfile.TemporaryDirectory(prefix="zoomreel-enc-") as tmp_name:
        tmp = Path(tmp_name)
        photos, cache, cold = _photos_and_a_warm_cache(args, tmp, spec, settings[0])
        record["cold_run"] = {"photo": photos[0].name, **run_dict(cold)}
        if args.check_lossless:
            say("checking the lossless references")
            short = replace(spec, length=1.0)
            record["lossless_check"] = check_lossless(photos[0], short, tmp)
        for photo in photos:
            record["photos"].append(
                compare_photo(photo, spec, settings, args.repeats, args.path_stride, tmp, cache)
            )
            path = write(record, args.out, stamp)
    print(compare_table(record))
    print(f"\nrecord: {path}")


def compare_table(record: dict[str, Any]) -> str:
    m = record["machine"]
    lines = [
        f"zoomreel vs the ffmpeg command, {m['date']}, {m['cpu']} x{m['affinity']}, "
        f"load {m['loadavg_start'][0]:.2f} -> {m['loadavg_now'][0]:.2f}, job "
        f"{record['job']['frames']} frames 1920x1080@30, {record['repeats']} repeats "
        "alternating (median wall and CPU time; worst peak RSS). Encoder fidelity: luma "
        "against the frames the encoder was given, PSNR mean / min and SSIM mean (its dB, "
        "-10 log10(1 - SSIM)); load: 1-minute load average as each run started.",
        "",
        "| photo | encoder | wall s | vs ffmpeg | CPU s | vs ffmpeg | peak RSS MB | size MB "
        "| size vs ffmpeg | PSNR mean / min dB | SSIM mean (dB) | path PSNR min / median dB "
        "| load | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in record["photos"]:
        ff = p["ffmpeg"]
        e, pf = ff["encoder_fidelity"], ff["path_fidelity"]
        note = "*" if pf and "note" in pf else ""
        lines.append(
            f"| {p['photo']} | ffmpeg command | {ff['wall_s']:.2f} | 1.00x | {ff['cpu_s']:.1f} "
            f"| 1.00x | {ff['peak_rss_mb']:.0f} | {ff['size_bytes'] / MB:.2f} | 1.00x | "
            f"{e['mean_db']:.2f} / {e['min_db']:.2f} | {_ssim_cell(e)} | "
            f"{pf['min_db']:.2f} / {pf['median_db']:.2f}{note} | {_loads(ff)} | |"
        )
        for z in p["zoomreel"]:
            e, pf, t = z["encoder_fidelity"], z["path_fidelity"], z["targets"]
            missed = " ".join(k for k, ok in t.items() if k != "goal_3x" and not ok)
            verdict = ("all met" + (", 3x" if t["goal_3x"] else "")) if not missed \
                else "MISS " + missed
            lines.append(
                f"| | {z['name'] or z['setting']} | {z['wall_s']:.2f} | "
                f"{z['speed_vs_ffmpeg']:.2f}x | {z['cpu_s']:.1f} | {z['cpu_vs_ffmpeg']:.2f}x | "
                f"{z['peak_rss_mb']:.0f} | {z['size_bytes'] / MB:.2f} | "
                f"{z['size_bytes'] / ff['size_bytes']:.2f}x | "
                f"{e['mean_db']:.2f} / {e['min_db']:.2f} | {_ssim_cell(e)} | "
                f"{pf['min_db']:.2f} / {pf['median_db']:.2f} | {_loads(z)} | {verdict} |"
            )
    if any(p["ffmpeg"]["path_fidelity"].get("note") for p in record["photos"]):
        lines.append("\n\\* against the photo as stored: ffmpeg ignores the EXIF orientation.")
    return "\n".join(lines)


def _ssim_cell(e: dict[str, Any]) -> str:
    return f"{e['ssim_mean']:.4f} ({e['ssim_db']:.2f})" if "ssim_mean" in e else "-"


def _loads(row: dict[str, Any]) -> str:
    return "/".join(f"{r['load']:.1f}" for r in row["runs"])


# -- sweep ----------------------------------------------------------------------------


def sweep(args: argparse.Namespace) -> None:
    spec = RenderSpec(length=args.length, frame_rate=30, zoom_speed=args.zoom_speed,
                      width=1920, height=1080)
    labels = [s for g in args.grid for s in GRIDS[g]] + list(args.candidate)
    settings = list(dict.fromkeys(Setting.parse(s) for s in labels))
    stamp = utc_stamp()
    record: dict[str, Any] = {
        "mode": "encoders-sweep",
        "machine": machine(),
        "job": {**spec.to_dict(), "frames": spec.total_frames},
        "settings": [s.label for s in settings],
        "photos": [],
    }
    with tempfile.TemporaryDirectory(prefix="zoomreel-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        photos, cache, _ = _photos_and_a_warm_cache(args, tmp, spec, settings[0])
        for photo in photos:
            ff_out = tmp / "ffmpeg.mp4"
            say(f"{photo.name}: ffmpeg command (before)")
            ff_runs = [run_ffmpeg(photo, ff_out, spec)]
            (ff_enc,) = encoder_fidelity(ffmpeg_luma(photo, spec), [ff_out])
            rows = []
            outs = []
            for k, s in enumerate(settings):
                out = tmp / f"s{k}.mp4"
                say(f"{photo.name}: {s.label}")
                runs = [run_zoomreel(photo, out, spec, cache, s) for _ in range(args.repeats)]
                outs.append(out)
                rows.append(
                    {
                        "setting": s.label,
                        "runs": [run_dict(r) for r in runs],
                        "wall_s": statistics.median(r.wall_s for r in runs),
                        "cpu_s": statistics.median(r.cpu_s for r in runs),
                        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
                        "size_bytes": runs[0].size_bytes,
                    }
                )
            say(f"{photo.name}: ffmpeg command (after)")
            ff_runs.append(run_ffmpeg(photo, ff_out, spec))
            say(f"{photo.name}: encoder fidelity of {len(outs)} files")
            fidelities = encoder_fidelity(kernel_luma(photo, spec), outs)
            for row, fid in zip(rows, fidelities, strict=True):
                row["encoder_fidelity"] = fid
            ff_wall = statistics.fmean(r.wall_s for r in ff_runs)
            ff_cpu = statistics.fmean(r.cpu_s for r in ff_runs)
            for row in rows:
                row["speed_vs_ffmpeg"] = ff_wall / row["wall_s"]
                row["cpu_vs_ffmpeg"] = ff_cpu / row["cpu_s"]
                row["size_vs_ffmpeg"] = row["size_bytes"] / ff_runs[0].size_bytes
                row["fidelity_vs_ffmpeg_db"] = (
                    row["encoder_fidelity"]["mean_db"] - ff_enc["mean_db"]
                )
                row["ssim_vs_ffmpeg_db"] = (
                    row["encoder_fidelity"]["ssim_db"] - ff_enc["ssim_db"]
                )
            record["photos"].append(
                {
                    "photo": photo.name,
                    "ffmpeg": {
                        "runs": [run_dict(r) for r in ff_runs],
                        "wall_s": ff_wall,
                        "cpu_s": ff_cpu,
                        "peak_rss_mb": max(r.peak_rss_mb for r in ff_runs),
                        "size_bytes": ff_runs[0].size_bytes,
                        "encoder_fidelity": ff_enc,
                    },
                    "settings": rows,
                }
            )
            path = write(record, args.out, stamp)
            for f in outs:
                f.unlink(missing_ok=True)
    print(sweep_table(record))
    print(f"\nrecord: {path}")


def sweep_table(record: dict[str, Any]) -> str:
    """One row per setting; per photo: size / ffmpeg's, PSNR - ffmpeg's, speed, RSS."""
    photos = record["photos"]
    m = record["machine"]
    head = (
        f"sweep, {m['date']}, load {m['loadavg_start'][0]:.2f} -> {m['loadavg_now'][0]:.2f}, "
        f"job {record['job']['frames']} frames. Per photo: size / ffmpeg's, encoder PSNR "
        "minus ffmpeg's (dB), SSIM (dB) minus ffmpeg's, wall speed vs ffmpeg (mean of "
        "before/after), CPU speed, peak RSS MB.\n\n"
        + "ffmpeg: "
        + "; ".join(
            f"{p['photo']} {p['ffmpeg']['wall_s']:.2f} s, {p['ffmpeg']['size_bytes'] / MB:.2f} MB, "
            f"{p['ffmpeg']['encoder_fidelity']['mean_db']:.2f} dB, "
            f"{p['ffmpeg']['peak_rss_mb']:.0f} MB RSS"
            for p in photos
        )
    )
    cols = " | ".join(p["photo"].split("-")[0] for p in photos)
    lines = [
        head,
        "",
        f"| setting | {cols} | worst size | worst dB | min speed | max RSS |",
        "|---|" + "---|" * (len(photos) + 4),
    ]
    for k, label in enumerate(record["settings"]):
        rows = [p["settings"][k] for p in photos]
        cells = [
            f"{r['size_vs_ffmpeg']:.2f}x {r['fidelity_vs_ffmpeg_db']:+.2f} "
            f"{r.get('ssim_vs_ffmpeg_db', float('nan')):+.2f} "
            f"{r['speed_vs_ffmpeg']:.2f}x {r['cpu_vs_ffmpeg']:.2f}x {r['peak_rss_mb']:.0f}"
            for r in rows
        ]
        lines.append(
            f"| `{label}` | "
            + " | ".join(cells)
            + f" | {max(r['size_vs_ffmpeg'] for r in rows):.2f}x"
            f" | {min(r['fidelity_vs_ffmpeg_db'] for r in rows):+.2f}"
            f" | {min(r['speed_vs_ffmpeg'] for r in rows):.2f}x"
            f" | {max(r['peak_rss_mb'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


#: dB of encoder PSNR per unit of ln(file size) at fixed settings, crf moved by 1-2:
#: the median over the crf pairs of the first sweeps (2.8 to 4.2 by photo and preset).
DB_PER_LN_SIZE = 3.4


def front_table(record: dict[str, Any]) -> str:
    """A sweep record compacted: per setting its worst photo for size and for PSNR,
    the PSNR it would have at the ffmpeg file's size (moved along DB_PER_LN_SIZE),
    speed by CPU time and by wall time (medians over photos), and the worst peak RSS.
    Rows on the front (within 300 MB: no other row is both faster by CPU time and
    better at equal size) are marked *."""
    photos = record["photos"]
    rows = []
    for k, label in enumerate(record["settings"]):
        rs = [p["settings"][k] for p in photos]
        eq = [
            r["fidelity_vs_ffmpeg_db"] - DB_PER_LN_SIZE * math.log(r["size_vs_ffmpeg"])
            for r in rs
        ]
        rows.append(
            {
                "setting": label,
                "size": max(r["size_vs_ffmpeg"] for r in rs),
                "db": min(r["fidelity_vs_ffmpeg_db"] for r in rs),
                "eq": min(eq),
                "cpu": statistics.median(r["cpu_vs_ffmpeg"] for r in rs),
                "wall": statistics.median(r["speed_vs_ffmpeg"] for r in rs),
                "rss": max(r["peak_rss_mb"] for r in rs),
            }
        )
    for r in rows:
        r["front"] = r["rss"] <= 300 and not any(
            o is not r and o["rss"] <= 300 and o["cpu"] >= r["cpu"] and o["eq"] >= r["eq"]
            for o in rows
        )
    lines = [
        f"{len(photos)} photos ({', '.join(p['photo'] for p in photos)}), "
        f"{record['job']['frames']} frames. Worst photo for size / ffmpeg's and for encoder "
        "PSNR minus ffmpeg's; 'at equal size': that PSNR difference moved to the ffmpeg "
        f"file's size at {DB_PER_LN_SIZE} dB per ln(size), worst photo; speed = ffmpeg / "
        "zoomreel, by CPU time and by wall time, median over photos; * = on the front.",
        "",
        "| setting | size max | dB min | dB at equal size | speed CPU | speed wall | RSS max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["cpu"]):
        lines.append(
            f"| `{r['setting']}`{' *' if r['front'] else ''} | {r['size']:.2f}x | "
            f"{r['db']:+.2f} | {r['eq']:+.2f} | {r['cpu']:.2f}x | {r['wall']:.2f}x | "
            f"{r['rss']:.0f} |"
        )
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.encoders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("front", help="compact table of sweep records")
    f.add_argument("records", nargs="+", type=Path)
    for name in ("compare", "sweep"):
        q = sub.add_parser(name)
        q.add_argument("--corpus", type=Path, default=default_corpus(),
                       help="folder of JPEG photos (default: $ZOOMREEL_CORPUS)")
        q.add_argument(
            "--photos",
            type=lambda t: [x for x in t.split(",") if x],
            help="only photos whose names start with these (comma-separated)",
        )
        q.add_argument(
            "--synthetic",
            action="store_true",
            help="also the benchmark's synthetic photo_like(3840, 2160) JPEG",
        )
        q.add_argument("--length", type=float, default=10.0 if name == "compare" else 3.0)
        q.add_argument("--zoom-speed", type=float, default=3.0)
        q.add_argument("--repeats", type=int, default=2 if name == "compare" else 1)
        q.add_argument(
            "--out", type=Path, default=RESULTS, help="record folder"
        )
    c = sub.choices["compare"]
    c.add_argument(
        "--setting",
        dest="settings",
        action="append",
        help="a name from NAMED or PRESET/CRF/PARAMS; repeat for more "
        "(default: current and balanced)",
    )
    c.add_argument("--path-stride", type=int, default=1, help="path PSNR on every k-th frame")
    c.add_argument(
        "--check-lossless",
        action="store_true",
        help="first check both lossless references on a 1 s job (first photo)",
    )
    s = sub.choices["sweep"]
    s.add_argument("--grid", action="append", default=[], choices=sorted(GRIDS))
    s.add_argument("--candidate", action="append", default=[], help="PRESET/CRF/PARAMS")
    args = p.parse_args(argv)
    if args.mode == "front":
        return args
    if args.mode == "compare" and not args.settings:
        args.settings = ["current", "balanced"]
    if args.corpus is None and not args.synthetic:
        p.error("give --corpus DIR (or set ZOOMREEL_CORPUS) and/or --synthetic")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.mode == "front":
        for path in args.records:
            print(f"{path.name}: " + front_table(json.loads(path.read_text())) + "\n")
        return
    start = time.perf_counter()
    (compare if args.mode == "compare" else sweep)(args)
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
