"""join_videos: parts of one render (``render_video(..., frames=range(a, b))``) into one
video, by remuxing their packets: nothing is decoded or encoded again.

Every part starts with an IDR frame and was encoded with the same settings at the same
size, so their streams join into one valid stream; each part's timestamps are shifted
by the frames before it, so they run on without a gap or an overlap. The joined file is
written under a temporary name and renamed once its frame count is checked.
:func:`chunk_ranges` says where to cut a path into parts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from .errors import RenderError

if TYPE_CHECKING:
    from av.video.stream import VideoStream

    from .render import RenderResult

__all__ = ["join_videos", "chunk_ranges", "JOINABLE"]

#: The codecs whose parts join. Not AV1: PyAV opens an AV1 part with the dav1d decoder
#: and cannot make an output stream from it (no codec of that name to mux with).
JOINABLE = ("h264", "h265", "vp9")


def chunk_ranges(total: int, frame_rate: int, chunk_s: float) -> list[range]:
    """The frame ranges of a video of ``total`` frames cut into chunks of about
    ``chunk_s`` seconds, as many as make chunks nearest that length, all of one length
    to a frame: the chunks render at once on as many workers, and the video is ready
    when its longest chunk is. One range: render it whole.

    Each part a chunk renders starts with an IDR frame and its own GOPs (the encoder's
    keyframe interval counts from there), so its GOPs end with it.
    """
    if chunk_s <= 0:
        return [range(total)]
    count = max(1, round(total / max(1.0, chunk_s * frame_rate)))
    if count == 1:
        return [range(total)]
    bounds = [total * i // count for i in range(count + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def join_videos(parts: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                frame_rate: int, expected_frames: int | None = None) -> RenderResult:
    """Join the video files ``parts``, in order, into ``out`` without re-encoding.

    Args:
        parts: the parts, each a render of consecutive frames of the same path with the
            same codec, size and encoder settings.
        out: the joined video (its extension chooses the container: ``.mp4``,
            ``.webm``); written under a temporary name, renamed when complete.
        frame_rate: the parts' frame rate (one timestamp tick per frame at it).
        expected_frames: the frames the joined video must have; checked before the
            rename.

    Returns:
        A RenderResult describing the joined file.

    Raises:
        RenderError: a part cannot be read, or the frame count is not the expected one
            (no output file is left).
    """
    out = os.fspath(out)
    folder, name = os.path.split(os.path.abspath(out))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
    try:
        container = "webm" if name.endswith(".webm") else "mp4"
        written, width, height = _remux(parts, tmp, container, frame_rate)
        if expected_frames is not None and written != expected_frames:
            raise RenderError(f"Joining the video's parts gave {written} frames, "
                              f"not {expected_frames}")
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    from .render import RenderResult

    return RenderResult(path=out, frames=written, duration=written / frame_rate,
                        width=width, height=height, frame_rate=frame_rate,
                        size_bytes=os.path.getsize(out))


def _remux(parts: Sequence[str | os.PathLike[str]], tmp: str, container: str,
           frame_rate: int) -> tuple[int, int, int]:
    import av  # loaded when first used: chunk_ranges stays cheap to import

    if not parts:
        raise RenderError("No parts to join")
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    written = 0
    frame = Fraction(1, frame_rate)
    try:
        with av.open(tmp, "w", format=container, options=options) as output:
            stream: VideoStream | None = None
            for part in parts:
                with av.open(os.fspath(part)) as source:
                    src = source.streams.video[0]
                    if stream is None:
                        stream = output.add_stream_from_template(src)
                    assert src.time_base is not None
                    shift = round(written * frame / src.time_base)
                    count = 0
                    for packet in source.demux(src):
                        if packet.size == 0:  # the demuxer's end-of-stream marker
                            continue
                        if packet.pts is not None:
                            packet.pts += shift
                        if packet.dts is not None:
                            packet.dts += shift
                        packet.stream = stream
                        output.mux(packet)
                        count += 1
                    written += count
    except (OSError, av.FFmpegError) as exc:
        raise RenderError(f"Cannot join the video's parts: {exc}") from exc
    assert stream is not None
    return written, stream.codec_context.width, stream.codec_context.height
