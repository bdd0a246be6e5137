"""The REST front end: a Falcon app (served by waitress) over the job system."""

from __future__ import annotations

from .app import create_app
from .envelope import Answers

__all__ = ["Answers", "create_app"]
