"""The focus "auto" decision: time and peak memory per image, and the face hit rate.

    taskset -c 0 python -m benchmarks.subject [--corpus DIR] [--threads N]

Times are the best of five calls of ``find_subject`` on the decoded image (the decode
is not counted): wall time, and the process's CPU time (steadier on a shared machine);
for the corpus photos also ``subject_of`` on the file (best of three, CPU): the decode
(a JPEG drafted to about 1 MP) and the decision, what ``POST /v1/image/subject`` costs.
OpenCV runs on ``--threads`` threads (default 1: the one core the decision is budgeted
on; OpenCV's own default starts a thread per core, which only contend under taskset).
Memory is tracemalloc's peak (Python and NumPy allocations, not OpenCV's own). The hit
rate is over the photos of people the tests use (scikit-image's astronaut, alone and
placed on larger fields), each with one face; false faces are the faces found in the
corpus photos, none of which shows a face large enough to find.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from benchmarks._corpus import add_corpus_option
from zoomreel.subject import faces_available, find_subject, subject_of


def _people() -> dict[str, np.ndarray]:
    try:
        from skimage import data
    except ImportError:
        return {}
    astronaut = Image.fromarray(data.astronaut())
    placed = {"portrait 720x1280": ((720, 1280), 700, (10, 20)),
              "landscape 1600x700": ((1600, 700), 680, (900, 10)),
              "4:3 1280x960": ((1280, 960), 900, (300, 40))}
    people = {"astronaut 512x512": np.asarray(astronaut)}
    for name, (size, side, at) in placed.items():
        field = Image.new("RGB", size, (90, 110, 90))
        field.paste(astronaut.resize((side, side)), at)
        people[name] = np.asarray(field)
    return people


def _measure(name: str, image: np.ndarray, path: Path | None = None) -> str:
    find_subject(image)
    times = [_timed(lambda: find_subject(image)) for _ in range(5)]
    wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
    tracemalloc.start()
    subject = find_subject(image)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    h, w = image.shape[:2]
    used = subject.to_json()
    decoded = "-"
    if path is not None:  # what POST /v1/image/subject costs: decode (drafted) + decide
        decoded = f"{min(_timed(lambda: subject_of(path))[1] for _ in range(3)) * 1000:.0f}"
    return (f"| {name} | {w}x{h} | {wall * 1000:.0f} | {cpu * 1000:.0f} | {decoded} | "
            f"{peak / 1e6:.1f} | {used['by']} ({used['x']:.2f}, {used['y']:.2f}) |")


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_option(parser)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV's thread count (default 1)")
    args = parser.parse_args()
    if faces_available():
        import cv2

        cv2.setNumThreads(args.threads)
    print(f"face detector installed: {faces_available()}")
    print("| image | size | ms | CPU ms | CPU ms with decode | peak MB | focus_used |\n"
          "|---|---|---|---|---|---|---|")
    people = _people()
    for name, image in people.items():
        print(_measure(name, image))
    false_faces = 0
    if args.corpus is not None:
        for path in sorted(args.corpus.glob("*.jpg")):
            with Image.open(path) as opened:
                image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
            print(_measure(path.name, image, path))
            false_faces += find_subject(image).by == "faces"
    hits = sum(find_subject(image).by == "faces" for image in people.values())
    print(f"\nfaces found in {hits} of {len(people)} photos of people")
    if args.corpus is not None:
        print(f"photos without a face where one was found: {false_faces}")


if __name__ == "__main__":
    main()
