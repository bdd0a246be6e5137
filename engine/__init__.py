"""zoomreel's engine: turn a still image into a zooming MP4, and run that as jobs.

The render core (spec, image loading, camera path, Numba kernel, PyAV encoder) is
importable on its own; the job system lives in ``engine.jobs``.
"""

from __future__ import annotations

from engine.errors import ZoomreelError
from engine.render import RenderResult, render_video
from engine.spec import RenderSpec

__all__ = ["RenderSpec", "RenderResult", "render_video", "ZoomreelError"]
__version__ = "0.1.0"
