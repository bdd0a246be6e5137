"""render_video(frames=...) and join_videos: parts of one path joined without re-encoding
equal the single render, frame by frame (decoded with PyAV)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from decoded import frames_on_the_path
from imagegen import photo_like

from zoomreel import RenderSpec, render_video
from zoomreel.errors import RenderError
from zoomreel.join import join_videos

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "photo.png"
    image = photo_like(960, 640, seed=3)
    image.save(path)
    return image, path


def _packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        return [(p.pts * tb, p.dts * tb, p.is_keyframe) for p in container.demux(stream)
                if p.size], stream.codec_context.name, (stream.codec_context.width,
                                                       stream.codec_context.height)


@pytest.mark.parametrize("codec", ["h264", "h265", "vp9"])
def test_joined_parts_equal_the_single_render(source, tmp_path, codec):
    image, path = source
    spec = RenderSpec(length=3, frame_rate=15, zoom_speed=30, width=320, height=180,
                      codec=codec)
    ext = ".webm" if codec == "vp9" else ".mp4"
    whole = tmp_path / f"whole{ext}"
    render_video(path, whole, spec)
    parts, calls = [], []
    for n, frames in enumerate([range(0, 15), range(15, 30), range(30, 45)]):
        part = tmp_path / f"part{n}{ext}"
        result = render_video(path, part, spec, frames=frames,
                              progress=lambda d, t: calls.append((d, t)))
        assert result.frames == 15
        parts.append(part)
    assert calls[-1] == (15, 15)
    joined = join_videos(parts, tmp_path / f"joined{ext}", frame_rate=15,
                         expected_frames=45)
    assert (joined.frames, joined.width, joined.height) == (45, 320, 180)
    packets, name, size = _packets(joined.path)
    whole_packets, whole_name, whole_size = _packets(whole)
    assert (name, size) == (whole_name, whole_size)
    # timestamps continuous: one frame per tick at 15 fps, each part starting on a key
    assert sorted(round(p[0] * 15) for p in packets) == list(range(45))
    assert [p[1] for p in packets] == sorted(p[1] for p in packets)
    assert [n for n, p in enumerate(packets) if p[2]][:3] == [0, 15, 30]
    assert frames_on_the_path(Path(joined.path), whole, spec, image, (320, 180)) == 45


def test_a_wrong_frame_count_leaves_no_file(source, tmp_path):
    _, path = source
    spec = RenderSpec(length=1, frame_rate=15, width=256, height=144)
    part = tmp_path / "part.mp4"
    render_video(path, part, spec, frames=range(0, 10))
    with pytest.raises(RenderError, match="10 frames, not 15"):
        join_videos([part], tmp_path / "out.mp4", frame_rate=15, expected_frames=15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.mp4"]


@pytest.mark.parametrize("frames", [range(0, 0), range(5, 20), range(0, 10, 2)])
def test_frames_outside_the_path_are_refused(source, tmp_path, frames):
    _, path = source
    spec = RenderSpec(length=1, frame_rate=15, width=256, height=144)
    with pytest.raises(ValueError, match="frames must be"):
        render_video(path, tmp_path / "out.mp4", spec, frames=frames)

