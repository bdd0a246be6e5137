"""``zoomreel reel``: a reel from files, and bad input exiting 2 with one error line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import av
import pytest
from service_helpers import jpeg, zoomreel_script
from test_audio import tone, write_track

pytestmark = pytest.mark.system

SMALL = ["--width", "256", "--height", "144", "--frame-rate", "15"]


def zoomreel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([zoomreel_script(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, env=os.environ)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for name, colour in (("a.jpg", (200, 40, 40)), ("b.png", (40, 200, 40))):
        (tmp_path / name).write_bytes(jpeg(400, 300, colour, fmt=name[-3:].upper()
                                           .replace("JPG", "JPEG")))
    write_track(tmp_path / "song.wav", tone(3.0, -20, 440))
    return tmp_path


def test_a_reel_with_a_track_a_title_and_captions(photos: Path) -> None:
    done = zoomreel("reel", "a.jpg", "b.png", "-o", "out.mp4", "--audio", "song.wav",
                    "--title", "Hello", "--caption", "one", "--caption", "two",
                    "--transition", "slide-left", "--length", "audio", "--poster", "p.jpg",
                    *SMALL, cwd=photos)
    assert done.returncode == 0, done.stderr
    assert "2 slides, 45 frames, 3 s, 256x144, with audio" in done.stdout
    with av.open(str(photos / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert (photos / "p.jpg").read_bytes()[:2] == b"\xff\xd8"


@pytest.mark.parametrize(("args", "needle"), [
    (["a.jpg", "--title", "\U0001f600"], "error: title: has '\U0001f600'"),
    (["a.jpg", "missing.jpg"], "error: slides[1]: No such file: missing.jpg"),
    (["a.jpg", "--caption", "x", "--caption", "y"], "error: caption: is given 2 times for 1"),
    (["a.jpg", "--audio", "b.png"], "error: audio: "),
    (["a.jpg", "--length", "audio"], 'error: length: "audio" needs an audio track'),
    (["a.jpg", "--transition", "wipe"], "error: transition: must be one of cut"),
    (["a.jpg", "--zoom-speed", "500"], "error: slides[0].zoom_speed: must be a number"),
    (["a.jpg", "--codec", "vp9"], "error: output: must end in .webm"),
])
def test_bad_input_exits_2_with_one_error_line(photos: Path, args: list[str],
                                               needle: str) -> None:
    done = zoomreel("reel", *args, "-o", "out.mp4", *SMALL, cwd=photos)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(needle), done.stderr
    assert "Traceback" not in done.stderr and not (photos / "out.mp4").exists()


def _disc_png(path: Path, centre: tuple[int, int]) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 300), (128, 128, 128))
    x, y = centre
    ImageDraw.Draw(image).ellipse((x - 30, y - 30, x + 30, y + 30), fill=(20, 20, 20))
    image.save(path)


def test_focus_auto_aims_each_slide_and_says_where(tmp_path: Path) -> None:
    _disc_png(tmp_path / "left.png", (100, 225))
    _disc_png(tmp_path / "right.png", (300, 75))
    done = zoomreel("reel", "left.png", "right.png", "-o", "out.mp4", "--focus", "auto",
                    "--length", "2", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "focus auto" in line]
    assert [line[:27] for line in said] == ["slide 1: focus auto: 0.25, ",
                                           "slide 2: focus auto: 0.75, "], done.stdout
    assert [float(line[27:31]) for line in said] == pytest.approx([0.75, 0.25], abs=0.02)
    assert all(line.endswith("(by saliency)") for line in said)
