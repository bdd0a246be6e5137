"""The REST front end: a Falcon app (served by waitress) over the job system."""

from __future__ import annotations

from frontends.rest.app import create_app

__all__ = ["create_app"]
