"""zoomreel front ends: REST (Falcon on waitress), CLI, web page."""

from __future__ import annotations

__all__: list[str] = []
