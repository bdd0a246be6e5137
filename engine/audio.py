"""A reel's track: decoded with PyAV, measured, normalised, faded and cut to the reel.

Any format FFmpeg decodes (mp3, m4a/aac, wav, flac, ogg/opus, ...) is resampled to
48 kHz stereo float. Loudness is measured as ITU-R BS.1770-4 integrated loudness (the
K-weighting filter at 48 kHz, 400 ms blocks every 100 ms, the absolute gate at -70 LUFS
and the relative one 10 LU below), over the part of the track the reel plays, and the
track is brought to :data:`TARGET_LUFS`, the level short-video platforms play at; a
gain that would clip a peak is lowered until it does not. The track fades in, and fades
out where the reel or the track ends; a track shorter than the reel ends in silence.

The track is read twice, once to measure and once to play, so only a few frames of
samples are held at a time whatever its length.
"""

from __future__ import annotations

import io
import math
import os
import uuid
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, cast

import av
import numba
import numpy as np

from .errors import AudioError, RenderError
from .image import Source

__all__ = ["RATE", "TARGET_LUFS", "Track", "Feed", "add_track", "duration_of",
           "integrated_loudness"]

#: Samples per second of every track, as the encoders take it (Opus only takes 48 kHz).
RATE = 48_000
#: The loudness tracks are brought to, in LUFS.
TARGET_LUFS = -14.0
#: Seconds of the fade at the start, and of the one where the track or the reel ends.
FADE_IN = 0.5
FADE_OUT = 1.5

# BS.1770-4's K-weighting at 48 kHz: the high-shelf "pre-filter", then the RLB high-pass;
# (b0, b1, b2, a1, a2), a0 = 1.
_SHELF = (1.53512485958697, -2.69169618940638, 1.19839281085285,
          -1.69065929318241, 0.73248077421585)
_HIGHPASS = (1.0, -2.0, 1.0, -1.99004745483398, 0.99007225036621)
_SEGMENT = RATE // 10  # 100 ms: a block is four of these, a step one


def _open(source: Source) -> Any:
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise AudioError("audio: the track is empty (0 bytes)")
        data: io.BytesIO | str = io.BytesIO(bytes(source))
    else:
        data = os.fspath(source)
    try:
        container = av.open(data)
    except FileNotFoundError:
        raise AudioError(f"audio: no such file: {data}") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"audio: the track cannot be decoded as audio ({_why(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise AudioError("audio: the file holds no audio stream")
    return container


def _why(exc: BaseException) -> str:
    return str(exc).split(": '", 1)[0]


def _decoded(source: Source) -> Iterator[np.ndarray]:
    """The track as (2, n) float32 chunks at RATE."""
    container = _open(source)
    with container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray()
            for out in resampler.resample(None):
                yield out.to_ndarray()
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"audio: the track cannot be decoded ({_why(exc)})") from None


def duration_of(source: Source) -> float:
    """Seconds of audio in the track, counted by decoding it (headers may be wrong).

    Raises:
        AudioError: not a track FFmpeg can decode.
    """
    samples = sum(int(chunk.shape[1]) for chunk in _decoded(source))
    if samples == 0:
        raise AudioError("audio: the track holds no sound")
    return samples / RATE


@numba.njit(nogil=True, cache=True)
def _k_weighted_power(chunk: np.ndarray, state: np.ndarray, power: np.ndarray) -> None:
    """``power[i]``: sample i's K-weighted power summed over both channels of the
    (2, n) ``chunk``; each channel through the two biquads (transposed direct form II,
    in float64) carrying ``state`` (channel, stage, (s1, s2)) from chunk to chunk.

    One kernel for both stages and both channels: one compiled signature to load."""
    for c in range(2):
        for i in range(chunk.shape[1]):
            y = _step(_step(np.float64(chunk[c, i]), _SHELF, state[c, 0]), _HIGHPASS,
                      state[c, 1])
            power[i] += y * y


@numba.njit(nogil=True, cache=True, inline="always")
def _step(x: float, coef: tuple[float, float, float, float, float],
          state: np.ndarray) -> float:
    """One sample through one biquad whose (s1, s2) are ``state``."""
    b0, b1, b2, a1, a2 = coef
    y: float = b0 * x + state[0]
    state[0] = b1 * x - a1 * y + state[1]
    state[1] = b2 * x - a2 * y
    return y


class _Meter:
    """BS.1770 integrated loudness of stereo chunks fed in order."""

    def __init__(self) -> None:
        self._state = np.zeros((2, 2, 2))  # channel, stage, (s1, s2)
        self._segments: list[float] = []  # K-weighted energy (sum over channels) each 100 ms
        self._partial = 0.0
        self._filled = 0

    def feed(self, chunk: np.ndarray) -> None:
        n = chunk.shape[1]
        power = np.zeros(n)
        _k_weighted_power(np.ascontiguousarray(chunk, dtype=np.float32), self._state, power)
        at = 0
        while at < n:
            take = min(_SEGMENT - self._filled, n - at)
            self._partial += float(power[at:at + take].sum())
            self._filled += take
            at += take
            if self._filled == _SEGMENT:
                self._segments.append(self._partial)
                self._partial, self._filled = 0.0, 0

    def integrated(self) -> float:
        """Integrated loudness in LUFS (-inf: silence, or under 400 ms)."""
        seg = np.asarray(self._segments)
        if len(seg) < 4:
            return -math.inf
        blocks = (seg[:-3] + seg[1:-2] + seg[2:-1] + seg[3:]) / (4 * _SEGMENT)
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(blocks)
        kept = blocks[loud > -70.0]
        if not len(kept):
            return -math.inf
        relative = -0.691 + 10 * math.log10(kept.mean()) - 10.0
        kept = blocks[(loud > -70.0) & (loud > relative)]
        return float(-0.691 + 10 * math.log10(kept.mean()))


def integrated_loudness(samples: np.ndarray) -> float:
    """BS.1770-4 integrated loudness (LUFS) of (2, n) float samples at 48 kHz."""
    meter = _Meter()
    meter.feed(np.asarray(samples, dtype=np.float32))
    return meter.integrated()


class Track:
    """The track of a reel of ``seconds``, measured, ready to play.

    Args:
        source: the track: a path or its encoded bytes.
        seconds: the reel's duration; the track is cut there (fading out) or padded
            with silence.

    Raises:
        AudioError: the track cannot be decoded.
    """

    def __init__(self, source: Source, seconds: float) -> None:
        self.source = source
        self.samples = int(round(seconds * RATE))
        meter = _Meter()
        peak, have = 0.0, 0
        for chunk in _decoded(source):
            chunk = chunk[:, : self.samples - have]
            meter.feed(chunk)
            if chunk.size:
                peak = max(peak, float(np.abs(chunk).max()))
            have += chunk.shape[1]
            if have >= self.samples:
                break
        if have == 0:
            raise AudioError("audio: the track holds no sound")
        self.track_samples = have  # of the reel's samples, how many the track fills
        self.loudness = meter.integrated()
        gain_db = 0.0 if math.isinf(self.loudness) else TARGET_LUFS - self.loudness
        gain = 10 ** (gain_db / 20)
        if peak * gain > 0.99:  # no clipping: a quieter track rather than a distorted one
            gain = 0.99 / peak
        self.gain = gain
        self._fade_in = min(int(FADE_IN * RATE), have // 4)
        self._fade_out = min(int(FADE_OUT * RATE), have // 4)

    def chunks(self) -> Iterator[np.ndarray]:
        """The reel's audio: exactly ``samples`` samples as (2, n) float32 chunks."""
        at = 0
        end = self.track_samples
        for chunk in _decoded(self.source):
            chunk = chunk[:, : end - at] * np.float32(self.gain)
            n = chunk.shape[1]
            if not n:
                break
            envelope = np.ones(n, dtype=np.float32)
            pos = np.arange(at, at + n, dtype=np.float32)
            if at < self._fade_in:
                envelope = np.minimum(envelope, (pos + 0.5) / self._fade_in)
            if at + n > end - self._fade_out:
                envelope = np.minimum(envelope, (end - pos - 0.5) / self._fade_out)
            yield (chunk * np.clip(envelope, 0.0, 1.0)).astype(np.float32)
            at += n
            if at >= end:
                break
        while at < self.samples:  # silence after a shorter track
            n = min(RATE, self.samples - at)
            yield np.zeros((2, n), dtype=np.float32)
            at += n


class Feed:
    """Hands out a track's samples by count, in step with the video's frames."""

    def __init__(self, track: Track) -> None:
        self._chunks = track.chunks()
        self._held = np.zeros((2, 0), dtype=np.float32)
        self.total = track.samples
        self.given = 0

    def until(self, sample: int) -> np.ndarray:
        """The samples from the last call's end up to ``sample`` (at most the total)."""
        want = min(sample, self.total) - self.given
        parts = [self._held]
        have = self._held.shape[1]
        while have < want:
            chunk = next(self._chunks)
            parts.append(chunk)
            have += chunk.shape[1]
        joined = np.concatenate(parts, axis=1) if len(parts) > 1 else self._held
        out, self._held = joined[:, :max(want, 0)], joined[:, max(want, 0):]
        self.given += out.shape[1]
        return np.ascontiguousarray(out)


def add_track(video: str | os.PathLike[str], track: Source, out: str | os.PathLike[str],
              *, frame_rate: int, audio_codec: tuple[str, int] = ("aac", 160_000)) -> None:
    """Put a reel's track beside the video-only file ``video``, as ``out``.

    The video's packets are copied as they are (no decode, no re-encode); the track is
    made as :func:`~zoomreel.render_reel` makes it (a :class:`Track` as long as the
    video: normalised, faded, cut or padded with silence) and encoded in the container's
    audio codec, interleaved with the video by time. The audio stream therefore lasts
    exactly as long as the video, and sample ``n`` plays with frame
    ``n * frame_rate / RATE``: the joined chunks of a reel keep their sync to a frame.

    Args:
        video: a video-only file (the joined chunks of a reel).
        track: the track, a path or its encoded bytes.
        out: the file written (``.mp4`` or ``.webm``), under a temporary name first.
        frame_rate: the video's frame rate (its duration is frames / frame_rate).
        audio_codec: the FFmpeg audio encoder and its bit rate (the codec's
            ``Codec.audio``: AAC in MP4, Opus in WebM).

    Raises:
        AudioError: the track cannot be decoded (``audio: ...``).
        RenderError: the video cannot be read or the file written.
    """
    out = os.fspath(out)
    folder, name = os.path.split(os.path.abspath(out))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
    container = "webm" if name.endswith(".webm") else "mp4"
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    try:
        with av.open(os.fspath(video)) as source:
            src = source.streams.video[0]
            frames = sum(1 for p in source.demux(src) if p.size)
            seconds = frames / frame_rate
            feed = Feed(Track(track, seconds))
            source.seek(0)
            with av.open(tmp, "w", format=container, options=options) as output:
                stream = output.add_stream_from_template(src)
                codec, bit_rate = audio_codec
                audio = cast(Any, output.add_stream(codec, rate=RATE))
                audio.layout = "stereo"
                audio.time_base = Fraction(1, RATE)
                audio.codec_context.time_base = Fraction(1, RATE)
                audio.bit_rate = bit_rate
                given = 0

                def encode_until(sample: int) -> None:
                    nonlocal given
                    samples = feed.until(sample)
                    if samples.shape[1] == 0:
                        return
                    frame = av.AudioFrame.from_ndarray(samples, format="fltp",
                                                       layout="stereo")
                    frame.sample_rate = RATE
                    frame.time_base = Fraction(1, RATE)
                    frame.pts = given
                    given += samples.shape[1]
                    output.mux(audio.encode(frame))

                assert src.time_base is not None
                for packet in source.demux(src):
                    if packet.size == 0:
                        continue
                    if packet.dts is not None:  # the track up to this packet's time
                        encode_until(round(float(packet.dts * src.time_base) * RATE))
                    packet.stream = stream
                    output.mux(packet)
                encode_until(feed.total)
                output.mux(audio.encode(None))
        os.replace(tmp, out)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, av.FFmpegError | OSError):
            raise RenderError(f"Cannot add the track to the video: {exc}") from exc
        raise
