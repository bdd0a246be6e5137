"""Reels: zoomreel against MoviePy 2 doing the same reel, and what reels cost.

    python -m benchmarks.reel --corpus PATH/TO/corpus [--slides 10] [--seconds 60]
        [--many 100] [--split] [--chunk-seconds S] [--no-chunked] [--no-moviepy] [--out DIR]

Every run is a fresh process measured by ``benchmarks._peak_rss`` (wall time, CPU time,
peak RSS), one after the other in one run, all at 1920x1080, 30 fps, H.264:

* ``reel``: ``--slides`` photos (the corpus's, in turn) over ``--seconds``, crossfades of
  0.5 s, a title and a caption per slide, and an mp3 track (generated here: chords and a
  beat, written with PyAV);
* ``plain``: the same slides with cuts, no track and no words: ``reel`` / ``plain`` is
  what transitions, audio and words cost (target: at most 1.15);
* ``many``: ``reel`` with ``--many`` slides over the same length: its peak RSS against
  ``reel``'s (target: within 10%, memory flat in the number of slides);
* with ``--split``, ``fades`` (crossfades alone) and ``extras`` (the track and the words
  alone): where ``reel``'s cost over ``plain`` goes;
* ``whole1`` and ``chunked``: the ``reel`` on one-core workers, as a reel job runs on
  workers of one render thread each: ``whole1`` one worker rendering it whole (a process
  pinned to one core with ``taskset``, ``NUMBA_NUM_THREADS=1``); ``chunked`` two such
  workers, pinned to cores 0 and 1, each rendering one of the two chunks
  ``zoomreel.join.chunk_ranges`` cuts it into at ``--chunk-seconds`` (default: half the
  reel) as a video-only part, then the parts joined (``zoomreel.join_videos``) and the
  track added (``zoomreel.audio.add_track``) as the job's join step does, on this
  process. ``whole1`` / ``chunked`` wall time is what chunking gains (target: at least
  1.7); ``--no-chunked`` skips both;
* ``moviepy``: MoviePy 2 making the same reel as its users do: each photo an ImageClip
  (scaled once to cover the frame) resized per frame for the zoom, crossfades
  (CrossFadeIn over clips overlapping by 0.5 s), the AudioFileClip of the same mp3
  faded in and out, written by write_videofile with x264 at zoomreel's own preset
  (superfast) and AAC. Target: zoomreel at least 10x less wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from benchmarks._corpus import add_corpus_option
from benchmarks._record import save_record

WIDTH, HEIGHT, RATE = 1920, 1080, 30
FADE = 0.5


def _photos(corpus: Path, count: int) -> list[str]:
    found = sorted(str(p) for p in corpus.iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"no photos in {corpus}")
    return list(islice(cycle(found), count))


def _track(path: Path, seconds: float) -> None:
    """Chords and a beat, stereo 44.1 kHz, as an mp3 (PyAV's libmp3lame)."""
    import av
    import numpy as np

    rate = 44_100
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.layout = "stereo"
        stream.bit_rate = 192_000
        for second in range(int(seconds) + 1):
            t = second + np.arange(rate) / rate
            chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
            beat = np.exp(-30 * (t % 0.5)) * np.sin(2 * np.pi * 60 * t)
            wave = (0.5 * chord + 0.4 * beat).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp",
                                               layout="stereo")
            frame.sample_rate = rate
            frame.pts = second * rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _zoomreel(job: dict[str, Any]) -> None:
    from zoomreel.frontends._process import prefer_passive_openmp, prepare_rendering

    prefer_passive_openmp()
    prepare_rendering()
    from zoomreel import ReelSpec, Slide, render_reel

    fades = job.get("fades", job["full"])
    words = track = job.get("extras", job["full"])
    slides = [Slide(p, caption=f"Photo {i + 1} of {len(job['photos'])}" if words else None)
              for i, p in enumerate(job["photos"])]
    reel = ReelSpec(width=WIDTH, height=HEIGHT, frame_rate=RATE, length=job["seconds"],
                    transition="crossfade" if fades else "cut", transition_length=FADE,
                    title="A day out, in ten photos" if words else None,
                    audio=job["track"] if track else None)
    frames = range(*job["frames"]) if "frames" in job else None
    result = render_reel(slides, job["out"], reel, frames=frames)
    print(json.dumps({"frames": result.frames, "bytes": result.size_bytes}))


def _moviepy(job: dict[str, Any]) -> None:
    import numpy as np
    from moviepy import AudioFileClip, CompositeVideoClip, ImageClip, afx, vfx
    from PIL import Image, ImageOps

    photos, seconds = job["photos"], job["seconds"]
    each = seconds / len(photos)
    clips = []
    for i, path in enumerate(photos):
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            scale = max(WIDTH / image.width, HEIGHT / image.height)
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.LANCZOS)
            pixels = np.asarray(image)
        start = max(0.0, i * each - FADE / 2)
        end = min(seconds, (i + 1) * each + FADE / 2)
        clip = (ImageClip(pixels).with_duration(end - start).with_start(start)
                .resized(lambda t: 1 + 0.03 * t).with_position("center"))
        if i:
            clip = clip.with_effects([vfx.CrossFadeIn(FADE)])
        clips.append(clip)
    video = CompositeVideoClip(clips, size=(WIDTH, HEIGHT)).with_duration(seconds)
    audio = AudioFileClip(job["track"]).subclipped(0, seconds).with_effects(
        [afx.AudioFadeIn(0.5), afx.AudioFadeOut(1.5)])
    video.with_audio(audio).write_videofile(
        job["out"], fps=RATE, codec="libx264", audio_codec="aac", preset="superfast",
        threads=2, logger=None,
        # beside the output, not in the current folder (MoviePy's default)
        temp_audiofile=str(Path(job["out"]).with_suffix(".temp-audio.m4a")))
    print(json.dumps({"frames": int(seconds * RATE), "bytes": os.path.getsize(job["out"])}))


def _measure(name: str, job: dict[str, Any], work: Path,
             core: int | None = None) -> dict[str, Any]:
    """One fresh process doing ``job``; with ``core``, pinned to that core with one
    render thread (a one-core worker)."""
    spec = work / f"{name}.job.json"
    spec.write_text(json.dumps(job))
    report = work / f"{name}.report.json"
    pinned = [] if core is None else ["taskset", "-c", str(core)]
    cmd = [sys.executable, "-m", "benchmarks._peak_rss", str(report), *pinned,
           sys.executable, "-m", "benchmarks.reel", "--child", str(spec)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    load = os.getloadavg()[0]
    if core is not None:
        env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(report.read_text())
    figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
    figures["cpu_s"] = figures["user_s"] + figures["sys_s"]
    figures["load_1m_before"] = load
    figures["peak_rss_mb"] = figures["peak_rss_kib"] * 1024 / 1e6
    print(f"{name:8} wall {figures['wall_s']:7.1f} s  cpu {figures['cpu_s']:7.1f} s  "
          f"peak {figures['peak_rss_mb']:6.0f} MB  {figures['bytes'] / 1e6:6.1f} MB file",
          flush=True)
    return figures


def _chunked(job: dict[str, Any], work: Path, chunk_s: float) -> dict[str, Any]:
    """The reel in chunks on two one-core workers at once, then joined and its track
    added here, as a reel job's join step does."""
    from zoomreel import join_videos
    from zoomreel.audio import add_track
    from zoomreel.join import chunk_ranges

    total = round(job["seconds"] * RATE)
    ranges = chunk_ranges(total, RATE, chunk_s)
    parts = [str(work / f"part{i}.mp4") for i in range(len(ranges))]
    started = time.perf_counter()
    with ThreadPoolExecutor(len(ranges)) as pool:
        runs = list(pool.map(
            lambda i: _measure(f"chunk{i}", {**job, "frames": [ranges[i].start, ranges[i].stop],
                                             "out": parts[i]}, work, core=i % 2),
            range(len(ranges))))
    rendered = time.perf_counter() - started
    joined = work / "joined.mp4"
    cpu = time.process_time()
    join_videos(parts, joined, frame_rate=RATE, expected_frames=total)
    add_track(joined, job["track"], job["out"], frame_rate=RATE)
    finish = time.perf_counter() - started - rendered
    figures = {"wall_s": rendered + finish, "render_wall_s": rendered, "join_and_track_s": finish,
               "cpu_s": sum(r["cpu_s"] for r in runs) + time.process_time() - cpu,
               "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
               "bytes": os.path.getsize(job["out"]), "frames": total,
               "chunks": [[r.start, r.stop] for r in ranges], "chunk_runs": runs}
    print(f"{'chunked':8} wall {figures['wall_s']:7.1f} s  cpu {figures['cpu_s']:7.1f} s  "
          f"peak {figures['peak_rss_mb']:6.0f} MB  {figures['bytes'] / 1e6:6.1f} MB file "
          f"(join and track {finish:.1f} s)", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reel",
                                     description=__doc__.splitlines()[0])
    add_corpus_option(parser)
    parser.add_argument("--slides", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--many", type=int, default=100, help="slides of the memory run")
    parser.add_argument("--no-moviepy", action="store_true")
    parser.add_argument("--no-chunked", action="store_true",
                        help="skip whole1 and chunked (one-core workers)")
    parser.add_argument("--chunk-seconds", type=float, default=None,
                        help="chunk length of the chunked run (default: half the reel)")
    parser.add_argument("--split", action="store_true",
                        help="also crossfades alone, and the track and words alone")
    parser.add_argument("--out", type=Path, default=None, help="records folder")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child.read_text())
        (_moviepy if job["kind"] == "moviepy" else _zoomreel)(job)
        return 0
    if args.corpus is None:
        parser.error("give --corpus DIR (or set $ZOOMREEL_CORPUS)")
    with tempfile.TemporaryDirectory(prefix="zoomreel-reel-") as tmp:
        work = Path(tmp)
        track = work / "track.mp3"
        _track(track, args.seconds + 5)
        base = {"photos": _photos(args.corpus, args.slides), "seconds": args.seconds,
                "track": str(track)}
        runs = {
            "reel": {**base, "kind": "zoomreel", "full": True, "out": str(work / "reel.mp4")},
            "plain": {**base, "kind": "zoomreel", "full": False,
                      "out": str(work / "plain.mp4")},
            "many": {**base, "photos": _photos(args.corpus, args.many), "kind": "zoomreel",
                     "full": True, "out": str(work / "many.mp4")},
        }
        if args.split:
            runs["fades"] = {**runs["plain"], "fades": True, "out": str(work / "fades.mp4")}
            runs["extras"] = {**runs["plain"], "extras": True, "out": str(work / "extras.mp4")}
        figures = {name: _measure(name, job, work) for name, job in runs.items()}
        if not args.no_chunked:
            one = {**runs["reel"], "out": str(work / "whole1.mp4")}
            figures["whole1"] = _measure("whole1", one, work, core=0)
            figures["chunked"] = _chunked({**one, "out": str(work / "chunked.mp4")}, work,
                                          args.chunk_seconds or args.seconds / 2)
        if not args.no_moviepy:
            figures["moviepy"] = _measure("moviepy", {**base, "kind": "moviepy",
                                                      "out": str(work / "moviepy.mp4")}, work)
    ratios = {
        "reel_over_plain_wall": figures["reel"]["wall_s"] / figures["plain"]["wall_s"],
        "reel_over_plain_cpu": figures["reel"]["cpu_s"] / figures["plain"]["cpu_s"],
        "many_over_reel_peak_rss": (figures["many"]["peak_rss_mb"]
                                    / figures["reel"]["peak_rss_mb"]),
    }
    for part in ("fades", "extras"):
        if part in figures:
            ratios[f"{part}_over_plain_cpu"] = figures[part]["cpu_s"] / figures["plain"]["cpu_s"]
    if "chunked" in figures:
        ratios["whole1_over_chunked_wall"] = (figures["whole1"]["wall_s"]
                                              / figures["chunked"]["wall_s"])
    if "moviepy" in figures:
        ratios["moviepy_over_reel_wall"] = figures["moviepy"]["wall_s"] / figures["reel"]["wall_s"]
        ratios["moviepy_over_reel_cpu"] = figures["moviepy"]["cpu_s"] / figures["reel"]["cpu_s"]
    for name, value in ratios.items():
        print(f"{name:28} {value:6.2f}")
    record = {"job": {k: str(v) if isinstance(v, Path) else v
                      for k, v in vars(args).items() if k != "child"},
              "load_average": os.getloadavg(), "figures": figures, "ratios": ratios}
    record["job"]["corpus"] = args.corpus.name  # no machine's path in a record
    path = save_record(record, "reel", **({"out": args.out} if args.out else {}))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
