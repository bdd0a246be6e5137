"""``zoomreel render --jobs N``: one video rendered by N local processes, each a part of
the path (zoomreel.join.chunk_ranges), then joined without re-encoding."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from zoomreel.join import JOINABLE, chunk_ranges, join_videos
from zoomreel.render import RenderResult, render_video
from zoomreel.spec import RenderSpec

__all__ = ["render_in_parts"]

_done: Any = None  # each process's view of the shared frame counts


def _share(done: Any) -> None:
    global _done
    _done = done


def _render_part(source: str | bytes, out: str, spec: RenderSpec, index: int,
                 frames: range) -> RenderResult:
    def progress(done: int, total: int) -> None:
        _done[index] = done

    return render_video(source, out, spec, progress=progress, frames=frames)


def render_in_parts(source: str | bytes, out: str, spec: RenderSpec, jobs: int,
                    progress: Callable[[int, int], object]) -> RenderResult:
    """Render ``spec`` of ``source`` into ``out`` in ``jobs`` processes at once.

    Raises:
        ZoomreelError: as render_video (the first part's error).
    """
    total = spec.total_frames
    ranges = [range(total)]
    if spec.codec in JOINABLE:
        ranges = chunk_ranges(total, spec.frame_rate, spec.length / jobs)
    context = multiprocessing.get_context("spawn")  # no Numba or FFmpeg state forked
    done = context.Array("i", len(ranges))
    folder = os.path.dirname(os.path.abspath(out))
    extension = os.path.splitext(out)[1]
    with tempfile.TemporaryDirectory(dir=folder, prefix=".parts-") as tmp:
        parts = [os.path.join(tmp, f"{n}{extension}") for n in range(len(ranges))]
        with ProcessPoolExecutor(len(ranges), mp_context=context, initializer=_share,
                                 initargs=(done,)) as pool:
            futures = [pool.submit(_render_part, source, part, spec, n, frames)
                       for n, (part, frames) in enumerate(zip(parts, ranges, strict=True))]
            while not all(f.done() for f in futures):
                progress(min(sum(done[:]), total - 1), total)
                time.sleep(0.1)
            first = [future.result() for future in futures][0]  # the first failure
        result = join_videos(parts, out, frame_rate=spec.frame_rate, expected_frames=total)
    progress(total, total)
    # each part found the same subject: the first one's, as render_video reports it
    return dataclasses.replace(result, focus_used=first.focus_used)
