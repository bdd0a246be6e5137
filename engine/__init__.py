"""zoomreel: turn a still image into a zooming MP4, and run that as jobs.

``from zoomreel import RenderSpec, render_video`` is the library; the job system is
:mod:`zoomreel.jobs`, outbound HTTP :mod:`zoomreel.net`, the front ends
:mod:`zoomreel.frontends`. Importing this package is cheap and changes nothing
outside it: the heavy modules (Numba, PyAV, Pillow) load when a render first needs
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["RenderSpec", "RenderResult", "render_video", "join_videos", "ZoomreelError",
           "render_reel", "ReelSpec", "ReelResult", "Slide", "Transition", "__version__"]

#: The one version number: pyproject.toml reads it from here.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import ZoomreelError
    from .join import join_videos
    from .reel import ReelResult, render_reel
    from .reelspec import ReelSpec, Slide, Transition
    from .render import RenderResult, render_video
    from .spec import RenderSpec

_LAZY = {
    "RenderSpec": "spec",
    "RenderResult": "render",
    "render_video": "render",
    "join_videos": "join",
    "ZoomreelError": "errors",
    "render_reel": "reel",
    "ReelResult": "reel",
    "ReelSpec": "reelspec",
    "Slide": "reelspec",
    "Transition": "reelspec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoomreel' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
