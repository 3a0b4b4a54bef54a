"""How many CPUs this process may use: the default number of workers."""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_cpus() -> int:
    """The CPUs the scheduler lets this process run on, fewer if a cgroup CPU quota (a container's
    CPU limit) allows less: a worker per CPU the quota cannot feed would only add contention."""
    count = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def cgroup_cpu_quota(root: Path = _CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cgroup v2 cpu.max, else v1 cfs), None if unlimited or unknown."""
    for path in _cgroup_v2_files(root):
        try:
            quota, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else int(quota) / int(period)
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _cgroup_v2_files(root: Path) -> list[Path]:
    """cpu.max of this process's own cgroup (as /proc/self/cgroup names it), then of the root."""
    files = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                files.append(root / line[3:].lstrip("/") / "cpu.max")
    except OSError:
        pass
    files.append(root / "cpu.max")
    return files
