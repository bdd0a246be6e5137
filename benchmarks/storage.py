"""The cost of storing a finished video: seconds and peak memory of the step that follows
a render (zoomreel.storage's ``save_file``), for a 60 s 1080p video.

    python -m benchmarks.storage PHOTO [--length 60] [--no-s3]

A 60 s 1920x1080 video at 30 fps is rendered once from PHOTO (speed ``fastest``) into a
temporary folder; each storage step then runs in a fresh interpreter, which reports the
step's wall time, its RSS before the step and its peak RSS (VmHWM) after it, in MB
(10^6 bytes):

- **local, in place**: what a render under the local backend does: the video is written
  into the data dir's ``videos/`` folder, so storing it is nothing at all;
- **local, rename**: a file from another folder of the same file system (os.replace);
- **s3 (moto, loopback)**: the upload to a bucket of moto's server in this process:
  boto3's multipart upload in 8 MiB parts, read from the file (never the whole video in
  memory; the peak shows it). A real bucket's time is the network's, not this.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._peak_rss import rss_now_and_peak


def _child(case: str, video: str, work: str, endpoint: str) -> None:
    """Store ``video`` as ``case`` says; print one JSON line."""
    from zoomreel.storage import LocalStorage, S3Storage, video_key

    data = Path(work) / "data"
    storage: LocalStorage | S3Storage
    if case == "s3":
        storage = S3Storage("bench", scratch=Path(work) / "work", endpoint_url=endpoint,
                            region="us-east-1", access_key="bench", secret_key="bench")
    else:
        storage = LocalStorage(data)
    storage.check()
    storage.scratch.mkdir(parents=True, exist_ok=True)
    source = (storage.scratch if case != "local-rename" else Path(work)) / Path(video).name
    shutil.copyfile(video, source)
    before, _ = rss_now_and_peak()
    started = time.perf_counter()
    storage.save_file(video_key(source.name), source, "video/mp4")
    seconds = time.perf_counter() - started
    _, peak = rss_now_and_peak()
    info = storage.info(video_key(source.name))
    assert info is not None and info.size == os.path.getsize(video)
    print(json.dumps({"case": case, "seconds": seconds, "rss_before_mb": before,
                      "peak_rss_mb": peak}))


def _render(photo: str, out: Path, length: float) -> float:
    from zoomreel import RenderSpec, render_video

    spec = RenderSpec(length=length, frame_rate=30, width=1920, height=1080, speed="fastest")
    started = time.perf_counter()
    render_video(photo, out, spec)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?")
    parser.add_argument("--length", type=float, default=60.0)
    parser.add_argument("--no-s3", action="store_true", help="the local backend only")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if not args.photo:
        parser.error("PHOTO is required")
    server = None
    endpoint = ""
    cases = ["local-in-place", "local-rename"]
    if not args.no_s3:
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="bench", aws_secret_access_key="bench",
                     ).create_bucket(Bucket="bench")
        cases.append("s3")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "video_bench.mp4"
        render_s = _render(args.photo, video, args.length)
        size_mb = video.stat().st_size / 1e6
        print(f"video: {args.length:g} s of 1920x1080 at 30 fps, {size_mb:.1f} MB "
              f"(rendered in {render_s:.1f} s)\n")
        print("| step | seconds | RSS before the step, MB | peak RSS, MB | step's growth, MB |")
        print("|---|---|---|---|---|")
        for case in cases:
            work = Path(tmp) / case
            work.mkdir()
            out = subprocess.run([sys.executable, "-m", "benchmarks.storage", "--child",
                                  case, str(video), str(work), endpoint],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            before, peak = row["rss_before_mb"], row["peak_rss_mb"]
            print(f"| {case} | {row['seconds']:.4f} | {before:.1f} | {peak:.1f} | "
                  f"{peak - before:.1f} |", flush=True)
            shutil.rmtree(work)
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
