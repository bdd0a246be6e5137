"""focus "auto" through a real ``zoomreel serve``: the done status says what was used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from imagegen import encode
from loopback import LoopbackServer
from PIL import Image, ImageDraw

pytestmark = pytest.mark.system


def test_focus_used_is_in_the_done_status(serve_factory: Any, image_server: LoopbackServer,
                                          tmp_path: Path) -> None:
    image = Image.fromarray(np.full((300, 400), 128, np.uint8))
    ImageDraw.Draw(image).ellipse((250, 25, 350, 125), fill=30)  # an object at (0.75, 0.25)
    url = image_server.add("/subject/disc.png", encode(image, "PNG"))
    serve = serve_factory(tmp_path / "data", workers=1).start()
    job_id = serve.submit(image_url=url, length=0.5, focus="auto", width=256, height=144)
    answer = serve.wait(job_id)["response"]
    assert answer["job_status"] == "done", answer
    used = answer["response"]["focus_used"]
    assert used["by"] == "saliency"
    assert used["x"] == pytest.approx(0.75, abs=0.05) and used["y"] == pytest.approx(0.25, abs=0.06)
    plain = serve.wait(serve.submit(image_url=url, length=0.5, width=256, height=144))
    assert "focus_used" not in plain["response"]["response"]
    # the path route has no pixels: it draws "auto" at the centre, never a 500
    r = serve.post("/v1/image/path", json={"image_width": 400, "image_height": 300,
                                           "focus": "auto", "end_zoom": 2, "samples": 2})
    assert r.status_code == 200, r.text
    x0, y0, x1, y1 = r.json()["response"]["samples"][-1]["rect"]
    assert (x0 + x1) / 2 == pytest.approx(200) and (y0 + y1) / 2 == pytest.approx(150)
