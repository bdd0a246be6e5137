"""Reels: zoomreel against MoviePy 2 doing the same reel, and what reels cost.

    python -m benchmarks.reel --corpus PATH/TO/corpus [--slides 10] [--seconds 60]
        [--many 100] [--no-moviepy] [--out DIR]

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
    result = render_reel(slides, job["out"], reel)
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


def _measure(name: str, job: dict[str, Any], work: Path) -> dict[str, Any]:
    spec = work / f"{name}.job.json"
    spec.write_text(json.dumps(job))
    report = work / f"{name}.report.json"
    cmd = [sys.executable, "-m", "benchmarks._peak_rss", str(report),
           sys.executable, "-m", "benchmarks.reel", "--child", str(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={
        **os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(report.read_text())
    figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
    figures["cpu_s"] = figures["user_s"] + figures["sys_s"]
    figures["peak_rss_mb"] = figures["peak_rss_kib"] * 1024 / 1e6
    print(f"{name:8} wall {figures['wall_s']:7.1f} s  cpu {figures['cpu_s']:7.1f} s  "
          f"peak {figures['peak_rss_mb']:6.0f} MB  {figures['bytes'] / 1e6:6.1f} MB file",
          flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reel",
                                     description=__doc__.splitlines()[0])
    add_corpus_option(parser)
    parser.add_argument("--slides", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--many", type=int, default=100, help="slides of the memory run")
    parser.add_argument("--no-moviepy", action="store_true")
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
        if not args.no_moviepy:
            runs["moviepy"] = {**base, "kind": "moviepy", "out": str(work / "moviepy.mp4")}
        figures = {name: _measure(name, job, work) for name, job in runs.items()}
    ratios = {
        "reel_over_plain_wall": figures["reel"]["wall_s"] / figures["plain"]["wall_s"],
        "reel_over_plain_cpu": figures["reel"]["cpu_s"] / figures["plain"]["cpu_s"],
        "many_over_reel_peak_rss": (figures["many"]["peak_rss_mb"]
                                    / figures["reel"]["peak_rss_mb"]),
    }
    for part in ("fades", "extras"):
        if part in figures:
            ratios[f"{part}_over_plain_cpu"] = figures[part]["cpu_s"] / figures["plain"]["cpu_s"]
    if "moviepy" in figures:
        ratios["moviepy_over_reel_wall"] = figures["moviepy"]["wall_s"] / figures["reel"]["wall_s"]
        ratios["moviepy_over_reel_cpu"] = figures["moviepy"]["cpu_s"] / figures["reel"]["cpu_s"]
    for name, value in ratios.items():
        print(f"{name:26} {value:6.2f}")
    record = {"job": {k: str(v) if isinstance(v, Path) else v
                      for k, v in vars(args).items() if k != "child"},
              "load_average": os.getloadavg(), "figures": figures, "ratios": ratios}
    record["job"]["corpus"] = args.corpus.name  # no machine's path in a record
    path = save_record(record, "reel", **({"out": args.out} if args.out else {}))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
