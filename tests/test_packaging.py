"""What ``pip install .`` puts in place, and what importing it costs and changes.

Each check runs in a fresh interpreter (in a temporary folder, so the working tree is
not on ``sys.path``) against the installed package, as a user's program would.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from imagegen import photo_like
from service_helpers import zoomreel_script

import zoomreel

HEAVY = ("numba", "av", "PIL")


def run_python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.unit
@pytest.mark.skipif(
    any(str(f).startswith("__editable__")
        for f in importlib.metadata.distribution("zoomreel").files or []),
    reason="pip install -e puts a finder in site-packages, not the package (tox installs it)")
def test_one_top_level_package_named_zoomreel() -> None:
    dist = importlib.metadata.distribution("zoomreel")
    assert dist.version == zoomreel.__version__
    tops = {Path(str(f)).parts[0] for f in dist.files or []
            if not str(f).startswith("..")}  # ../../bin/zoomreel: the console script
    assert {t for t in tops if not t.endswith(".dist-info")} == {"zoomreel"}
    assert not any(str(f).startswith(("engine/", "frontends/")) for f in dist.files or [])
    scripts = [e for e in dist.entry_points if e.group == "console_scripts"]
    assert [(e.name, e.value) for e in scripts] == [("zoomreel", "zoomreel.frontends.cli:main")]
    assert Path(zoomreel.__file__).parent.name == "zoomreel"  # the installed copy


@pytest.mark.system
@pytest.mark.parametrize("module", [
    "zoomreel", "zoomreel.errors", "zoomreel.spec", "zoomreel.jobs", "zoomreel.net",
    "zoomreel.frontends.cli", "zoomreel.frontends.serve", "zoomreel.frontends.rest",
])
def test_importing_loads_neither_numba_nor_av_nor_pillow(module: str, tmp_path: Path) -> None:
    done = run_python(f"""
        import sys, {module}
        from zoomreel import RenderSpec
        RenderSpec(length=2)
        print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.system
def test_a_library_render_changes_no_process_wide_state(tmp_path: Path) -> None:
    photo_like(320, 200).save(tmp_path / "in.png")
    done = run_python("""
        import json, os
        import PIL.Image
        before = (PIL.Image.MAX_IMAGE_PIXELS, dict(os.environ))

        from zoomreel import RenderSpec, render_video
        import dramatiq.broker
        render_video("in.png", "out.mp4", RenderSpec(length=0.5, width=256, height=144))
        after = (PIL.Image.MAX_IMAGE_PIXELS, dict(os.environ))
        print(json.dumps({"same": before == after, "pixels": after[0],
                          "broker": dramatiq.broker.global_broker is None,
                          "video": os.path.getsize("out.mp4")}))
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["same"] and result["pixels"] == 89478485  # Pillow's own default
    assert result["broker"] and result["video"] > 0


@pytest.mark.system
def test_a_job_service_sets_no_global_broker(redis_url: str, tmp_path: Path) -> None:
    done = run_python(f"""
        import redis, dramatiq.broker
        from zoomreel.frontends.rest import Answers
        from zoomreel.jobs import JobService, JobSettings
        service = JobService(redis.Redis.from_url({redis_url!r}), JobSettings(data_dir="d"),
                             embedded=False, answer=Answers().status)
        assert service.messages.render_actor.broker is service.broker
        print(dramatiq.broker.global_broker is None)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.system
def test_help_loads_neither_numba_nor_av_nor_pillow(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", zoomreel_script(), "render",
                           "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--zoom-speed" in done.stdout
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0]
              for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "zoomreel" in loaded and not loaded & set(HEAVY)


@pytest.mark.system
def test_an_api_only_serve_loads_neither_numba_nor_av_nor_pillow(serve_factory) -> None:
    api = serve_factory(workers=0)
    assert api.get("/health").status_code == 200
    r = api.post("/v1/image/convert/video", json={"image_url": "http://127.0.0.1/x.jpg"})
    assert r.status_code == 202  # accepted and queued for workers elsewhere
    assert api.proc is not None
    maps = Path(f"/proc/{api.proc.pid}/maps").read_text()
    for library in ("numba", "libavcodec", "PIL/_imaging", "llvmlite"):
        assert library not in maps, library
