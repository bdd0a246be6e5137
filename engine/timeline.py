"""When each slide of a reel is on screen, and what each frame of the reel shows.

Slide i owns the frames ``starts[i] .. starts[i] + counts[i] - 1`` of the reel, and its
own frame k (the frame render_video would make, k from 0) is the reel's frame
``starts[i] + k``. The transition between slides i and i+1 lasts ``fades[i]`` frames,
centred on their boundary b = starts[i+1]: frames ``b - fades[i] // 2`` up to the
rest. There the outgoing slide shows its own frames past its length and the incoming one
frames before its start: both keep moving (see :func:`zoomreel.reel` for how a path runs
on outside its length). A transition is never longer than either slide it joins, so two
transitions never overlap and the reel lasts exactly the sum of the slides' frames.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SpecError

__all__ = ["Timeline", "Shot", "DEFAULT_SLIDE_SECONDS"]

#: A slide's length when neither it nor the reel says.
DEFAULT_SLIDE_SECONDS = 3.0


@dataclass(frozen=True)
class Shot:
    """What one frame of the reel shows.

    ``slide`` at its own frame ``frame``; in a transition also ``incoming`` at its own
    ``incoming_frame`` (negative: before its start), ``step`` of ``steps`` frames in.
    """

    slide: int
    frame: int
    incoming: int | None = None
    incoming_frame: int = 0
    step: int = 0
    steps: int = 0

    @property
    def progress(self) -> float:
        """How far the transition is, in (0, 1): the middle of the step's frame."""
        return (self.step + 0.5) / self.steps if self.steps else 0.0


@dataclass(frozen=True)
class Timeline:
    """The frames of each slide and of each transition.

    Attributes:
        frame_rate: frames per second.
        lengths: seconds each slide's motion runs over (its RenderSpec's length).
        counts: frames of each slide: round(length * frame_rate).
        starts: the reel frame each slide starts on.
        fades: frames of the transition after each slide but the last.
    """

    frame_rate: int
    lengths: tuple[float, ...]
    counts: tuple[int, ...]
    starts: tuple[int, ...]
    fades: tuple[int, ...]

    @classmethod
    def build(cls, lengths: Sequence[float | None], frame_rate: int, *,
              length: float | str | None = None, audio_seconds: float | None = None,
              transition_seconds: float = 0.0) -> Timeline:
        """The timeline of slides of these ``lengths`` (None: an equal share).

        Args:
            lengths: each slide's length in seconds, or None.
            frame_rate: frames per second.
            length: the reel's: seconds, ``"audio"`` (``audio_seconds``) or None.
            audio_seconds: the track's duration, for ``length="audio"``.
            transition_seconds: each transition's length (0: cuts).

        Raises:
            SpecError: no slides; a slide too short for a frame; a length the slides'
                own lengths already exceed, or differ from when all have one.
        """
        if not lengths:
            raise SpecError("slides", "must hold at least one slide", [])
        if length == "audio" and audio_seconds is None:
            raise SpecError("length", '"audio" needs an audio track', length)
        total_seconds = audio_seconds if length == "audio" else length
        assert not isinstance(total_seconds, str)
        whole = _counts(lengths, frame_rate, total_seconds, length)
        out_lengths = tuple(float(s) if s is not None else n / frame_rate
                            for s, n in zip(lengths, whole, strict=True))
        starts = [0]
        for n in whole[:-1]:
            starts.append(starts[-1] + n)
        fade = int(round(transition_seconds * frame_rate))
        fades = tuple(min(fade, a, b) for a, b in zip(whole, whole[1:], strict=False))
        return cls(frame_rate, out_lengths, tuple(whole), tuple(starts), fades)

    @property
    def total_frames(self) -> int:
        """Frames of the whole reel: the sum of the slides'."""
        return self.starts[-1] + self.counts[-1]

    @property
    def duration(self) -> float:
        """Seconds of the whole reel."""
        return self.total_frames / self.frame_rate

    def transition_frames(self, i: int) -> range:
        """The reel frames of the transition between slides i and i+1 (maybe empty)."""
        first = self.starts[i + 1] - self.fades[i] // 2
        return range(first, first + self.fades[i])

    def shown(self, i: int) -> range:
        """Slide i's own frames on screen: its length and the halves of its transitions
        (negative: before its start)."""
        before = self.fades[i - 1] - self.fades[i - 1] // 2 if i > 0 else 0
        after = self.fades[i] // 2 if i < len(self.fades) else 0
        return range(-before, self.counts[i] + after)

    def shot(self, n: int) -> Shot:
        """What reel frame ``n`` shows."""
        if not 0 <= n < self.total_frames:
            raise IndexError(f"frame {n} is not in 0..{self.total_frames - 1}")
        i = bisect.bisect_right(self.starts, n) - 1
        if i > 0 and n in self.transition_frames(i - 1):
            a = i - 1
        elif i + 1 < len(self.starts) and n in self.transition_frames(i):
            a = i
        else:
            return Shot(i, n - self.starts[i])
        span = self.transition_frames(a)
        return Shot(a, n - self.starts[a], a + 1, n - self.starts[a + 1], n - span.start,
                    len(span))

    def slides_in(self, frames: range) -> range:
        """The slides whose images the reel frames ``frames`` need (for a chunk)."""
        first, last = self.shot(frames.start), self.shot(frames.stop - 1)
        top = last.incoming if last.incoming is not None else last.slide
        return range(first.slide, top + 1)


def _counts(lengths: Sequence[float | None], rate: int, total_seconds: float | None,
            length: float | str | None) -> list[int]:
    """Frames of each slide: its own length's, else an equal share in whole frames (the
    first few one more) of what ``total_seconds`` leaves, else 3 s."""
    counts: list[int | None] = []
    for i, seconds in enumerate(lengths):
        n = None if seconds is None else int(round(seconds * rate))
        if n is not None and n < 1:
            raise SpecError(f"slides[{i}].length",
                            "is too short to hold a single frame at this frame_rate", seconds)
        counts.append(n)
    given = sum(n for n in counts if n is not None)
    missing = [i for i, n in enumerate(counts) if n is None]
    if total_seconds is None:
        share = int(round(DEFAULT_SLIDE_SECONDS * rate))
        return [share if n is None else n for n in counts]
    total = int(round(total_seconds * rate))
    if not missing:
        if total != given:
            raise SpecError("length", "must equal the sum of the slides' lengths "
                            f"({given / rate:g} s) when every slide has one", length)
        return [n for n in counts if n is not None]
    left = total - given
    if left < len(missing):
        raise SpecError("length", "must leave at least a frame for each slide without a "
                        f"length (the others take {given / rate:g} s)", length)
    base, extra = divmod(left, len(missing))
    for k, i in enumerate(missing):
        counts[i] = base + (k < extra)
    return [n for n in counts if n is not None]
