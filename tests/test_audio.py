"""A reel's track: BS.1770 loudness against EBU Tech 3341's cases, the formats PyAV
decodes, normalisation, fades, and sync with the video to a frame (real files)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from decoded import decoded_audio
from imagegen import encode, photo_like

from zoomreel import ReelSpec, Slide, render_reel
from zoomreel.audio import RATE, Track, duration_of, integrated_loudness
from zoomreel.errors import AudioError

pytestmark = pytest.mark.unit

SIZE = {"width": 256, "height": 144, "frame_rate": 30}
CODECS = {".wav": "pcm_s16le", ".mp3": "libmp3lame", ".flac": "flac", ".ogg": "libopus",
          ".m4a": "aac"}


def tone(seconds: float, dbfs: float, hz: float = 1000.0) -> np.ndarray:
    """A stereo sine whose peak is ``dbfs``, (2, n) float32 at 48 kHz."""
    t = np.arange(int(round(seconds * RATE))) / RATE
    wave = (10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([wave, wave])


def write_track(path: Path, samples: np.ndarray) -> Path:
    """``samples`` (2, n) float at 48 kHz as a file of ``path``'s format, with PyAV."""
    with av.open(str(path), "w", format="ipod" if path.suffix == ".m4a" else None) as out:
        stream = out.add_stream(CODECS[path.suffix], rate=RATE)
        stream.layout = "stereo"
        for start in range(0, samples.shape[1], RATE):  # PyAV converts to the codec's format
            part = np.ascontiguousarray(samples[:, start:start + RATE], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
            frame.sample_rate = RATE
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "p.jpg"
    path.write_bytes(encode(photo_like(480, 270), "JPEG", quality=90))
    return path


# -- loudness ------------------------------------------------------------------


@pytest.mark.parametrize("dbfs", [-23.0, -33.0])
def test_a_stereo_sine_reads_its_level_as_ebu_3341_says(dbfs: float) -> None:
    # EBU Tech 3341, cases 1 and 2: 1 kHz stereo sine at -23 / -33 dBFS reads -23 / -33 LUFS
    assert integrated_loudness(tone(20, dbfs)) == pytest.approx(dbfs, abs=0.1)


def test_the_relative_gate_leaves_out_the_quiet_parts() -> None:
    # EBU Tech 3341 case 3: -36 / -23 / -36 dBFS for 10 / 60 / 10 s reads -23 LUFS
    signal = np.concatenate([tone(10, -36), tone(60, -23), tone(10, -36)], axis=1)
    assert integrated_loudness(signal) == pytest.approx(-23.0, abs=0.1)


def test_silence_has_no_loudness() -> None:
    assert integrated_loudness(np.zeros((2, RATE))) == -np.inf


# -- decoding --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_each_format_decodes_to_its_duration(tmp_path: Path, suffix: str) -> None:
    path = write_track(tmp_path / f"t{suffix}", tone(2.0, -20, 440))
    assert duration_of(path) == pytest.approx(2.0, abs=0.06)  # mp3/aac frames pad a little
    assert duration_of(path.read_bytes()) == pytest.approx(duration_of(path))


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 100,
                                  encode(photo_like(64, 64), "PNG")])
def test_what_is_not_audio_is_refused_naming_the_track(data: bytes) -> None:
    with pytest.raises(AudioError, match="^audio: "):
        duration_of(data)


def test_a_reel_with_a_bad_track_leaves_no_file(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="^audio: "):
        render_reel([Slide(photo)], tmp_path / "r.mp4", ReelSpec(audio=b"junk" * 99, **SIZE))
    assert not list(tmp_path.iterdir())


# -- in the reel -------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "suffix"), [("h264", ".mp4"), ("vp9", ".webm")])
def test_a_click_lands_on_its_frame_and_the_streams_end_together(
        photo: Path, tmp_path: Path, codec: str, suffix: str) -> None:
    samples = tone(3.0, -40, 220)
    click = int(1.5 * RATE)
    samples[:, click:click + 240] = 0.9  # a 5 ms click at 1.5 s: frame 45 at 30 fps
    track = write_track(tmp_path / "click.flac", samples)
    out = tmp_path / f"reel{suffix}"
    result = render_reel([Slide(photo, length=1.5), Slide(photo, length=1.5)], out,
                         ReelSpec(audio=track, codec=codec, **SIZE))
    assert result.audio and result.frames == 90
    audio, first, video_seconds, _ = decoded_audio(out)
    assert video_seconds == 3.0
    # the audio stream lasts as long as the video, to a frame
    assert abs(first + audio.shape[1] / RATE - video_seconds) < 1 / 30
    at = first + int(np.argmax(np.abs(audio[0]))) / RATE
    assert int(at * 30) == 45 and abs(at - 1.5) < 1 / 30


def test_the_track_is_brought_to_minus_14_lufs(photo: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "quiet.wav", tone(6.0, -32))
    assert Track(track, 6.0).loudness == pytest.approx(-32, abs=0.2)
    out = tmp_path / "r.mp4"
    render_reel([Slide(photo, length=3), Slide(photo, length=3)], out,
                ReelSpec(audio=track, **SIZE))
    audio, _, _, _ = decoded_audio(out)
    assert integrated_loudness(audio[:, RATE: 4 * RATE]) == pytest.approx(-14.0, abs=1.0)
    assert np.abs(audio[:, :240]).max() < 0.02  # it fades in


def test_a_shorter_track_ends_in_silence(photo: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "short.ogg", tone(1.0, -20, 440))
    out = tmp_path / "r.mp4"
    render_reel([Slide(photo, length=3)], out, ReelSpec(audio=track, **SIZE))
    audio, first, video_seconds, _ = decoded_audio(out)
    assert abs(first + audio.shape[1] / RATE - video_seconds) < 1 / 30
    assert np.abs(audio[:, int(0.4 * RATE): int(0.6 * RATE)]).max() > 0.05  # playing
    assert np.abs(audio[:, int(1.2 * RATE):]).max() < 0.01  # then silent


def test_a_longer_track_is_cut_with_a_fade(photo: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "long.mp3", tone(8.0, -20, 440))
    out = tmp_path / "r.mp4"
    render_reel([Slide(photo, length=3)], out, ReelSpec(audio=track, **SIZE))
    audio, first, video_seconds, _ = decoded_audio(out)
    assert video_seconds == 3.0
    assert abs(first + audio.shape[1] / RATE - 3.0) < 1 / 30
    middle = np.abs(audio[:, RATE: RATE + 4800]).max()
    end = np.abs(audio[:, -4800:]).max()
    assert end < middle / 4


def test_length_audio_fits_the_reel_to_the_track(photo: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "t.wav", tone(2.5, -20, 440))
    result = render_reel([Slide(photo), Slide(photo)], tmp_path / "r.mp4",
                         ReelSpec(audio=track, length="audio", **SIZE))
    assert (result.frames, result.duration) == (75, 2.5)
