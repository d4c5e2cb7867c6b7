"""CPU time and resident memory of processes, read from /proc as `ps` would."""

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
KIB = 1024


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of a process itself, and of its children that it has waited for."""

    own_s: float
    children_s: float


def cpu_times(pid: int) -> CpuTimes:
    """utime+stime and cutime+cstime of `pid`; zeros for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return CpuTimes(0.0, 0.0)
    # The command name in parentheses may hold spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return CpuTimes((utime + stime) / TICKS_PER_S, (cutime + cstime) / TICKS_PER_S)


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` in MiB; zero for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / KIB
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers, for its master)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return found
