"""Full disks: the data folder's free space, and a job store whose disk is full.

Redis refuses every write (``MISCONF``) once it could not save its data (a background
save or an append to its log failed, mostly for want of space) until a save succeeds
again; it still answers reads. The front ends say so as "the job store's disk is full",
not "unreachable"; :meth:`JobService.health` reports both disks.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import redis

__all__ = ["STORE_DISK_FULL", "disk_space", "store_disk_full", "store_refused_writes"]

#: What a request refused by a job store whose disk is full is told.
STORE_DISK_FULL = "The job store's disk is full (Redis refuses writes); nothing was changed"
#: A data folder with less free space than this is full ...
_FULL_BELOW_BYTES = 64 * 1024 * 1024
#: ... or than this share of its disk, on a small one.
_FULL_BELOW_SHARE = 0.02


def disk_space(folder: Path) -> dict[str, Any]:
    """The free space of the disk holding ``folder`` (or its nearest existing parent):
    ``{"disk_free_bytes": n, "disk_full": bool}``."""
    path = folder
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return {"disk_free_bytes": None, "disk_full": False}
    below = min(_FULL_BELOW_BYTES, usage.total * _FULL_BELOW_SHARE)
    return {"disk_free_bytes": usage.free, "disk_full": usage.free < below}


def store_disk_full(persistence: dict[str, Any]) -> bool:
    """Whether Redis (its ``INFO persistence``) failed its last save, and so refuses
    writes: an RDB snapshot or an append-only write that failed."""
    return (persistence.get("rdb_last_bgsave_status") == "err"
            or persistence.get("aof_last_write_status") == "err")


def store_refused_writes(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write because it cannot save (MISCONF),
    answered to a command or to a script (whose error quotes it after its own)."""
    return isinstance(exc, redis.ResponseError) and "MISCONF " in str(exc)
