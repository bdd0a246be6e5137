"""Where a render's memory goes, step by step, for given x264 settings.

    python -m benchmarks.memory PHOTO [--setting PRESET/CRF/PARAMS ...] [--frames N]

Each setting runs in a fresh interpreter that does what ``render_video`` does, one step
at a time (import; decode the image; build the pyramid; open the encoder; render and
encode N frames through the same bounded queue), and prints VmRSS and VmHWM (the peak so
far) after each step, in MB (10^6 bytes). The x264 share is the growth from "encoder
open" to the end; the frames in flight are zoomreel's queue (3 frames ahead) plus the
one being rendered and the one being encoded, 3.1 MB each at 1080p.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks._peak_rss import rss_now_and_peak

ROOT = Path(__file__).resolve().parent.parent


def _child(photo: str, setting: str, frames: int) -> None:
    steps: list[tuple[str, float, float]] = [("start", *rss_now_and_peak())]
    import queue
    import threading

    from zoomreel.camera import cover_size, frame_rect
    from zoomreel.encoder import Encoder
    from zoomreel.image import load_image
    from zoomreel.pyramid import Pyramid
    from zoomreel.spec import RenderSpec

    steps.append(("import zoomreel (numpy, numba, av)", *rss_now_and_peak()))
    preset, crf, params = setting.split("/", 2)
    spec = RenderSpec(length=frames / 30, preset=preset, crf=int(crf), x264_params=params,
                      width=1920, height=1080)
    rgb = load_image(photo, max_pixels=spec.max_pixels)
    steps.append((f"decode image {rgb.shape[1]}x{rgb.shape[0]}", *rss_now_and_peak()))
    pyramid = Pyramid(rgb)
    del rgb
    cw, _ = cover_size(pyramid.width, pyramid.height, spec.width, spec.height)
    pyramid.prepare(max_scale=cw / spec.width)
    steps.append(("pyramid built, RGB array freed", *rss_now_and_peak()))
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"zoomreel-memory-{os.getpid()}.mp4"
    q: queue.Queue[object] = queue.Queue(maxsize=3)
    with Encoder.from_spec(out, spec, spec.width, spec.height) as encoder:
        steps.append(("encoder open", *rss_now_and_peak()))

        def produce() -> None:
            for n in range(spec.total_frames):
                frame, y, u, v = encoder.new_frame()
                pyramid.render(frame_rect(n, spec, pyramid.width, pyramid.height), y, u, v)
                q.put(frame)
            q.put(None)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        done = 0
        while (item := q.get()) is not None:
            encoder.encode(item)  # type: ignore[arg-type]
            done += 1
            if done == 1:
                steps.append(("first frame encoded", *rss_now_and_peak()))
        steps.append((f"{done} frames encoded", *rss_now_and_peak()))
    steps.append(("encoder flushed and closed", *rss_now_and_peak()))
    out.unlink(missing_ok=True)
    print(json.dumps(steps))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    p.add_argument("photo")
    p.add_argument("--setting", action="append", help="PRESET/CRF/PARAMS (repeat)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    settings = a.setting or ["ultrafast/26/cabac=1:deblock=0,0"]
    if a.child:
        _child(a.photo, settings[0], a.frames)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for s in settings:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", a.photo, "--setting", s,
             "--frames", str(a.frames), "--child"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        steps = json.loads(out.strip().splitlines()[-1])
        print(f"\n`{s}` on {Path(a.photo).name}\n")
        print("| step | VmRSS MB | peak so far MB |\n|---|---|---|")
        for name, rss, hwm in steps:
            print(f"| {name} | {rss:.0f} | {hwm:.0f} |")
        opened = next(r for n, r, _ in steps if n == "encoder open")
        print(f"\nx264 and frames in flight: +{steps[-2][1] - opened:.0f} MB over 'encoder open'")


if __name__ == "__main__":
    main()
