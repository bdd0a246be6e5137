"""Where the benchmarks find the photo corpus: ``--corpus DIR``, else ``$ZOOMREEL_CORPUS``.

The corpus is a folder of real camera photos (redpanda-foliage.jpg, castle-facade.jpg,
office-iso800.jpg, cathedral-steps.jpg, tree-phone-exif6.jpg) kept outside the
repository; no benchmark assumes where it is on a machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: The variable naming the corpus folder when ``--corpus`` is not given.
ENV = "ZOOMREEL_CORPUS"


def default_corpus() -> Path | None:
    """The folder ``$ZOOMREEL_CORPUS`` names, or None when it is unset or empty."""
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def add_corpus_option(parser: argparse.ArgumentParser) -> None:
    """``--corpus DIR``, defaulting to ``$ZOOMREEL_CORPUS``."""
    parser.add_argument("--corpus", type=Path, default=default_corpus(),
                        help=f"folder of the corpus photos (default: ${ENV})")
