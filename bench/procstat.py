"""CPU time and resident memory of the stack's processes, through psutil."""

import resource
from dataclasses import dataclass

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of a process itself, and of its children that it has waited for."""

    own_s: float
    children_s: float


def cpu_times(pid: int) -> CpuTimes:
    """User + system time of `pid` and of its reaped children; zeros for a process that is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return CpuTimes(0.0, 0.0)
    return CpuTimes(times.user + times.system, times.children_user + times.children_system)


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB; zero for a process that is gone."""
    try:
        return float(psutil.Process(pid).memory_info().rss) / MIB
    except psutil.NoSuchProcess:
        return 0.0


def children(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers, for its master)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def idle_s() -> float:
    """Seconds the machine's cores have spent idle (idle + iowait, summed over cores) since boot.

    Divided by a phase's wall time, it says how many cores sat idle on average: near zero, the phase
    was bound by CPU, and throughput follows CPU per job; well above it, by waits and wake-ups.
    """
    times = psutil.cpu_times()
    return times.idle + getattr(times, "iowait", 0.0)


def own_cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF) or of its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
