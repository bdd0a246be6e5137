"""The exact references the render tests compare with, written from CONTRACT.md
independently of zoomreel's own code."""

from __future__ import annotations

import math

from zoomreel.spec import RenderSpec

__all__ = ["contract_rect"]


def contract_rect(n: int, spec: RenderSpec, image_w: float, image_h: float,
                  out: tuple[int, int]) -> tuple[float, float, float, float]:
    """CONTRACT.md's path written out again, independently of zoomreel.camera."""
    u = n / spec.frame_rate / spec.length
    if spec.loop == "ping-pong":
        ku = (spec.cycles or 1) * u
        u = 1 - abs(1 - 2 * (ku - math.floor(ku)))
    p = {"linear": u, "ease-in": u * u, "ease-out": 1 - (1 - u) ** 2,
         "ease-in-out": 3 * u * u - 2 * u ** 3}[spec.easing]
    if spec.zoom_speed is not None:
        far = 1 + spec.zoom_speed / 100 * spec.length
        z0, z1 = (1.0, far) if spec.direction == "in" else (far, 1.0)
    else:
        z0, z1 = spec.start_zoom or 1.0, spec.end_zoom or 1.0
    z = z0 + (z1 - z0) * p if spec.curve == "linear" else z0 * (z1 / z0) ** p
    if image_w / image_h >= out[0] / out[1]:
        cw, ch = image_h * out[0] / out[1], image_h
    else:
        cw, ch = image_w, image_w * out[1] / out[0]
    f0 = spec.start_focus or spec.focus or (0.5, 0.5)
    f1 = spec.end_focus or spec.focus or (0.5, 0.5)
    w, h = cw / z, ch / z
    cx = min(max((f0[0] + (f1[0] - f0[0]) * p) * image_w, w / 2), image_w - w / 2)
    cy = min(max((f0[1] + (f1[1] - f0[1]) * p) * image_h, h / 2), image_h - h / 2)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
