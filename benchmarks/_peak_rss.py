"""Run a command and report its wall time and its own peak RSS.

    python -m benchmarks._peak_rss REPORT.json CMD [ARG ...]

A child's ``ru_maxrss`` on Linux includes the memory of the process it was forked
from (the high-water mark survives fork and exec), so ``bench.py``, which holds whole
videos, cannot read it for its children directly. This small interpreter forks the
command instead: what it adds is its own few MB, below any real command's peak.
The command's output passes through; the report goes to REPORT.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def rss_now_and_peak() -> tuple[float, float]:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MB (10^6
    bytes), from /proc/self/status (Linux)."""
    rss = hwm = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024 / 1e6
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024 / 1e6
    return rss, hwm


def main(argv: list[str]) -> int:
    """Run argv[1:], write {"wall_s", "peak_rss_kib", "user_s", "sys_s", "returncode"}
    to argv[0] (user_s and sys_s: the command's own CPU time)."""
    report, cmd = argv[0], argv[1:]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as f:
        json.dump(
            {
                "wall_s": wall,
                "peak_rss_kib": usage.ru_maxrss,
                "user_s": usage.ru_utime,
                "sys_s": usage.ru_stime,
                "returncode": code,
            },
            f,
        )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
