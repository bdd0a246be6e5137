"""Chunked renders (issue 20): one 1080p job on two one-core "machines" against one.

    python -m benchmarks.chunks [--length 120] [--rounds 3] [--image PHOTO]

Each "machine" is a fresh process pinned to one core with ``taskset`` rendering its
chunk (``benchmarks._render_once --frames A:B``, the chunks ``zoomreel.jobs.chunks``
cuts at the default ``ZOOMREEL_CHUNK_SECONDS``); the single render is the same command
over all frames on one core. The image is the 3840x2160 photo-like test image, or
``--image`` (a corpus photo, such as ``$ZOOMREEL_CORPUS/redpanda-foliage.jpg``). Runs
alternate (whole, chunked, whole, ...) since the machine is shared; medians are reported
with the load average.
Then the chunks are joined (``zoomreel.join_videos``, timed) and the joined video is
compared with the single render: frames, size, codec, timestamps, key frames, file
size (the extra IDR frames' cost) and every frame's luma PSNR against the exact path
(``--stride`` to sample); headless Chromium opens it, reads its duration and seeks
across each seam. Each render also reports its peak RSS after 1, 10, 100 and 1000
frames, which shows where the peak is reached.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageOps

from benchmarks._record import save_record
from zoomreel import RenderSpec, join_videos
from zoomreel.join import chunk_ranges

from ._chromium import plays
from ._fidelity import colour_of, video_psnr
from ._measure import make_source, peak_rss_report


def _render(source: Path, out: Path, length: float, core: int,
            frames: range | None) -> dict[str, Any]:
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "benchmarks._render_once",
           str(source), str(out), "--length", str(length)]
    if frames is not None:
        cmd += ["--frames", f"{frames.start}:{frames.stop}"]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    info, stdout = peak_rss_report(cmd, env)
    own = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": info["wall_s"], "cpu_s": info["user_s"] + info["sys_s"],
            "peak_rss_mb": info["peak_rss_kib"] / 1024,
            # where the peak is reached: after 1, 10, 100, 1000 frames (MB = 10^6 bytes)
            "peak_rss_by_frame_mb": own["peak_rss_by_frame_mb"]}


def _chunked(source: Path, folder: Path, length: float, ranges: list[range],
             ) -> dict[str, Any]:
    start = time.perf_counter()
    with ThreadPoolExecutor(len(ranges)) as pool:
        runs = list(pool.map(lambda i: _render(source, folder / f"part{i}.mp4", length,
                                               i % 2, ranges[i]), range(len(ranges))))
    rendered = time.perf_counter() - start
    joined = time.perf_counter()
    join_videos([folder / f"part{i}.mp4" for i in range(len(ranges))], folder / "joined.mp4",
                frame_rate=30, expected_frames=ranges[-1].stop)
    join_s = time.perf_counter() - joined
    return {"wall_s": rendered + join_s, "render_wall_s": rendered, "join_s": join_s,
            "cpu_s": sum(r["cpu_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "chunk_peak_rss_mb": [r["peak_rss_mb"] for r in runs],
            "chunk_peak_rss_by_frame_mb": [r["peak_rss_by_frame_mb"] for r in runs]}


def _stream(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        tb = stream.time_base
        assert tb is not None
        pts = sorted(round(p.pts * tb * 30) for p in packets if p.pts is not None)
        return {"frames": len(packets), "codec": stream.codec_context.name,
                "size": [stream.codec_context.width, stream.codec_context.height],
                "keyframes": [n for n, p in enumerate(packets) if p.is_keyframe],
                "pts_continuous": pts == list(range(len(packets))),
                "duration_s": float(container.duration or 0) / 1e6,
                "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chunks")
    p.add_argument("--length", type=float, default=120.0)
    p.add_argument("--chunk-seconds", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stride", type=int, default=1, help="PSNR of every n-th frame")
    p.add_argument("--image", type=Path, default=None,
                   help="the photo to render (default: the synthetic 3840x2160 one)")
    a = p.parse_args(argv)
    spec = RenderSpec(length=a.length, frame_rate=30, width=1920, height=1080)
    ranges = chunk_ranges(spec.total_frames, 30, a.chunk_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = a.image or make_source(folder)
        _render(source, folder / "warm.mp4", 1.0, 0, None)  # the Numba cache, once
        whole: list[dict[str, Any]] = []
        chunked: list[dict[str, Any]] = []
        loads = []
        for _ in range(a.rounds):
            loads.append(os.getloadavg()[0])
            whole.append(_render(source, folder / "whole.mp4", a.length, 0, None))
            loads.append(os.getloadavg()[0])
            chunked.append(_chunked(source, folder, a.length, ranges))
        med = {k: {m: statistics.median(r[m] for r in runs) for m in runs[0]
                   if isinstance(runs[0][m], float)}
               for k, runs in (("whole", whole), ("chunked", chunked))}
        per_chunk = [statistics.median(r["chunk_peak_rss_mb"][i] for r in chunked)
                     for i in range(len(ranges))]
        single, joined = _stream(folder / "whole.mp4"), _stream(folder / "joined.mp4")
        seams = [t for r in ranges[1:] for t in (r.start / 30 - 1 / 30, r.start / 30)]
        chromium = plays(folder / "joined.mp4", [*seams, spec.length - 0.05])
        image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
        videos = [str(folder / "whole.mp4"), str(folder / "joined.mp4")]
        fid = video_psnr(image, spec, [(v, colour_of(v)) for v in videos], a.stride)
    report = {
        "job": f"{a.length:g} s 1920x1080 30 fps h264 balanced, chunks "
               f"{[(r.start, r.stop) for r in ranges]}",
        "image": str(a.image) if a.image else "photo_like(3840, 2160, seed=0)",
        "load_average_1m": [round(x, 2) for x in loads],
        "runs": {"whole": whole, "chunked": chunked}, "median": med,
        "speedup_wall": med["whole"]["wall_s"] / med["chunked"]["wall_s"],
        # median peak RSS of each chunk's process against the single render's (MiB)
        "peak_rss_per_chunk_vs_whole_mb": {"chunks": per_chunk,
                                           "whole": med["whole"]["peak_rss_mb"]},
        "join_share_of_render": med["chunked"]["join_s"] / med["chunked"]["render_wall_s"],
        "idr_size_overhead": joined["bytes"] / single["bytes"] - 1,
        "single": single | {"keyframes": single["keyframes"][:20]},
        "joined": joined | {"keyframes": joined["keyframes"][:20]},
        "min_luma_psnr_db": {"single": fid[0].min_db, "joined": fid[1].min_db},
        "psnr_stride": a.stride,
        "chromium": chromium,
    }
    print(json.dumps(report, indent=1))
    print(f"record: {save_record(report, 'chunks').name}", file=sys.stderr)


if __name__ == "__main__":
    main()
