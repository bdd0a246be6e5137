"""Where benchmarks keep their records: one JSON file per run, named by its UTC time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The records' folder (git-ignored); each benchmark's ``--out`` defaults to it.
RESULTS = Path(__file__).resolve().parent / "results"


def utc_stamp() -> str:
    """The UTC time as records are named: ``20261201T080120Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def save_record(record: Any, name: str, out: Path | str = RESULTS,
                stamp: str | None = None) -> Path:
    """Write ``record`` as JSON to ``out/<stamp>-<name>.json`` (``stamp``: now); its path.
    A benchmark that rewrites its record as it goes passes the same stamp each time."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp or utc_stamp()}-{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
