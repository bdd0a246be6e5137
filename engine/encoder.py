"""The PyAV encoder: YUV 4:2:0 frames in, a video file out (H.264, H.265 or AV1 in MP4,
VP9 in WebM; see zoomreel.codecs).

Every stream option is set before the first frame; frames carry explicit pts; the
encoder is always flushed; an MP4 gets its index at the front (``+faststart``) so a
browser can play it while it downloads. Frames are written to a temporary name in the
target folder and renamed when complete, so a partial file never has the output name.
The encoder is called where no thread may enter a real-time scheduling class, and no
thread leaves a call in one (SVT-AV1 moves its threads there when it may:
zoomreel.realtime).
"""

from __future__ import annotations

import os
import uuid
from fractions import Fraction
from types import TracebackType
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from .codecs import CODECS, EncoderSettings, encoder_settings
from .errors import DiskFullError, RenderError, disk_full
from .realtime import RealtimeGuard, no_realtime
from .spec import RenderSpec

__all__ = ["Encoder"]

# AVCOL_* values: BT.709 primaries, transfer and matrix; MPEG (limited) range.
_BT709 = 1
_RANGE_MPEG = 1


def _failed(what: str, exc: BaseException) -> RenderError | DiskFullError:
    """The error to raise for ``exc``: a full disk is named as such (it may pass)."""
    if disk_full(exc):
        return DiskFullError(f"The disk holding the videos is full ({_reason(exc)})")
    return RenderError(f"{what}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """What went wrong, without the file's path (errno's text, or FFmpeg's)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).split(": '", 1)[0]


class Encoder:
    """Writes frames to a video file at ``path``; use as a context manager.

    Args:
        path: final output path.
        width: frame width (even).
        height: frame height (even).
        frame_rate: frames per second.
        codec: the output codec (``h264``, ``h265``, ``av1``, ``vp9``).
        settings: the encoder's quality, preset and options (see zoomreel.codecs).
        audio_rate: samples per second of a stereo track to add (the codec's audio
            encoder: AAC in MP4, Opus in WebM); None: video only.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        frame_rate: int,
        *,
        codec: str = "h264",
        settings: EncoderSettings | None = None,
        audio_rate: int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._name = os.path.basename(self.path)  # messages name the file, not the folders
        self.width = width
        self.height = height
        kind = CODECS[codec]
        settings = settings or kind.speeds["balanced"]
        folder, name = os.path.split(os.path.abspath(self.path))
        self.tmp_path = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
        self._frames = 0
        self._realtime = RealtimeGuard()  # before the encoder starts any thread
        if not os.path.isdir(folder):
            raise RenderError(f"Cannot write the video {self._name}: its folder does not exist")
        options = {"movflags": "+faststart"} if kind.container == "mp4" else {}
        try:
            self._container = av.open(self.tmp_path, "w", format=kind.container,
                                      options=options)
        except (OSError, av.FFmpegError) as exc:
            raise _failed(f"Cannot write the video {self._name}", exc) from None
        stream = cast(VideoStream, self._container.add_stream(kind.encoder,
                                                              rate=Fraction(frame_rate)))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, frame_rate)
        if kind.tag:
            stream.codec_tag = kind.tag
        ctx = stream.codec_context
        ctx.time_base = Fraction(1, frame_rate)
        ctx.framerate = Fraction(frame_rate)
        ctx.color_range = _RANGE_MPEG
        ctx.colorspace = _BT709
        ctx.color_primaries = _BT709
        ctx.color_trc = _BT709
        ctx.thread_count = 0
        stream_options: dict[str, object] = {"crf": f"{settings.crf:g}", **settings.options}
        if settings.preset is not None:
            stream_options["preset"] = settings.preset
        stream.options = stream_options
        self._stream = stream
        # The muxer rewrites stream.time_base when it writes the header; frames keep ours.
        self._time_base = Fraction(1, frame_rate)
        self._audio: AudioStream | None = None
        self._samples = 0
        if audio_rate is not None:
            name, bit_rate = kind.audio
            audio = cast(AudioStream, self._container.add_stream(name, rate=audio_rate))
            audio.layout = "stereo"
            audio.time_base = Fraction(1, audio_rate)
            audio.codec_context.time_base = Fraction(1, audio_rate)
            audio.bit_rate = bit_rate
            self._audio = audio
            self._audio_rate = audio_rate

    @classmethod
    def from_spec(cls, path: str | os.PathLike[str], spec: RenderSpec, width: int,
                  height: int, audio_rate: int | None = None) -> Encoder:
        """An encoder for ``spec``'s frame rate, codec and encoder settings at this size."""
        return cls(path, width, height, spec.frame_rate, codec=spec.codec,
                   settings=encoder_settings(spec), audio_rate=audio_rate)

    def new_frame(self) -> tuple[av.VideoFrame, np.ndarray, np.ndarray, np.ndarray]:
        """A fresh frame and writable (rows, cols) views of its Y, U and V planes."""
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        views = []
        for plane in frame.planes:
            buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
            rows = buf.reshape(plane.height, plane.line_size)
            views.append(rows[:, : plane.width])
        return frame, views[0], views[1], views[2]

    def encode(self, frame: av.VideoFrame) -> None:
        """Encode the next frame (pts is set here, one tick per frame)."""
        frame.pts = self._frames
        frame.time_base = self._time_base
        frame.color_range = _RANGE_MPEG
        frame.colorspace = _BT709
        frame.color_primaries = _BT709
        frame.color_trc = _BT709
        self._frames += 1
        try:
            with no_realtime():
                self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as exc:  # a full disk, mostly
            raise _failed("Encoding failed", exc) from exc
        finally:
            self._realtime.check()

    def encode_audio(self, samples: np.ndarray) -> None:
        """Encode the track's next samples: (2, n) float32 (pts set here, in samples)."""
        if self._audio is None or samples.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32),
                                           format="fltp", layout="stereo")
        frame.sample_rate = self._audio_rate
        frame.time_base = Fraction(1, self._audio_rate)
        frame.pts = self._samples
        self._samples += samples.shape[1]
        try:
            self._container.mux(self._audio.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise _failed("Encoding the audio failed", exc) from exc

    def close(self) -> None:
        """Flush the encoders, finish the file and give it its final name."""
        try:
            with no_realtime():
                self._container.mux(self._stream.encode(None))
                if self._audio is not None:
                    self._container.mux(self._audio.encode(None))
                self._container.close()
            os.replace(self.tmp_path, self.path)
        except (av.FFmpegError, OSError) as exc:
            raise _failed(f"Cannot finish the video {self._name}", exc) from exc
        finally:
            self._realtime.check()

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._container.close()
        except Exception:
            pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()
