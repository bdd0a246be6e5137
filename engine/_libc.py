"""The C library's functions that Python's ``os`` module lacks, loaded once."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

__all__ = ["libc_function"]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)  # the C library this process runs with
    except (OSError, TypeError):  # TypeError: Windows has no such handle
        return None


def libc_function(name: str) -> Any | None:
    """The C library's function ``name``, or None where the system's has none (musl has
    no ``mallopt``, macOS no ``capget``). ctypes keeps one object per name, so its
    ``argtypes`` are set once."""
    libc = _libc()
    return None if libc is None else getattr(libc, name, None)
