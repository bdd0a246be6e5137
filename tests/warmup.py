"""Compile the Numba kernels once, before ``pytest -n N`` starts its test processes.

Each process that renders first compiles the kernels (Numba's ``cache=True``), unless it
finds them in Numba's on-disk cache. The test processes start together, so each of them
would compile the same kernels at once: about 8 s of CPU each on a 2-core machine.
Rendering one small video and one small reel here, in pytest's first process, writes the
cache they all load instead (as the ``zoomreel serve`` processes the tests start do).
"""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import numpy as np
from imagegen import encode, photo_like


def compile_kernels() -> None:
    """Render a tiny video and a tiny reel of each transition, with words and a track:
    the paths the tests render most go through every kernel they use."""
    from zoomreel import ReelSpec, RenderSpec, Slide, render_reel, render_video

    with tempfile.TemporaryDirectory(prefix="zoomreel-warmup-") as name:
        folder = Path(name)
        photo = folder / "photo.png"
        photo.write_bytes(encode(photo_like(320, 240), "PNG"))
        render_video(photo, folder / "video.mp4",
                     RenderSpec(length=0.2, frame_rate=15, width=128, height=128))
        track = folder / "track.wav"
        with wave.open(str(track), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(48_000)
            tone = (np.sin(np.arange(48_000) / 10) * 8000).astype("<i2")
            out.writeframes(tone.repeat(2).tobytes())
        for transition in ("crossfade", "fade", "slide-left", "slide-up"):
            render_reel([Slide(photo, length=0.4, caption="a"), Slide(photo, length=0.4)],
                        folder / "reel.mp4",
                        ReelSpec(width=128, height=128, frame_rate=15, title="t",
                                 transition=transition, transition_length=0.2, audio=track))
