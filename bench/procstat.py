"""CPU time and resident memory of the stack's processes, through psutil."""

import os
import resource
import time
from dataclasses import dataclass

import psutil

MIB = 1024 * 1024
# In the command line of a zygote, and of the bubblewrap process around it.
_ZYGOTE_MAIN = "zygote_main.py"


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


def zygote_cpu_s(roots: list[int]) -> float:
    """User + system time of the live zygotes under `roots` (bubblewrap's process included) and of the
    runs they have reaped. A warm run is a zygote's child, not the worker's: its time reaches the
    worker's reaped children only when its zygote ends, so a live zygote's is counted here."""
    total = 0.0
    for process in _zygote_processes(roots):
        times = cpu_times(process.pid)
        total += times.own_s + times.children_s
    return total


def zygote_memory_mib(roots: list[int]) -> dict[str, float]:
    """The largest zygote's resident and proportional memory (bubblewrap's process included), in MiB:
    what a worker slot holds besides the worker itself. Proportional counts the pages it shares
    (the interpreter's, the libraries') once across the processes that map them."""
    by_zygote: dict[int, list[float]] = {}
    for process in _zygote_processes(roots):
        try:
            memory = process.memory_full_info()
            # bubblewrap's process and its child, the zygote, under one key: bubblewrap's pid.
            key = process.pid if process.name() == "bwrap" else process.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss, pss = by_zygote.setdefault(key, [0.0, 0.0])
        by_zygote[key] = [rss + memory.rss / MIB, pss + memory.pss / MIB]
    if not by_zygote:
        return {}
    return {
        "zygote_rss_mib": max(rss for rss, _ in by_zygote.values()),
        "zygote_pss_mib": max(pss for _, pss in by_zygote.values()),
    }


def _zygote_processes(roots: list[int]) -> list[psutil.Process]:
    """The zygotes `roots` started themselves: each a bubblewrap child of a root and the zygote in it.
    Not their other descendants': a worker started by a root is measured as a root of its own."""
    found = []
    for root in roots:
        try:
            started = psutil.Process(root).children()
        except psutil.NoSuchProcess:
            continue
        for process in started:
            try:
                if _ZYGOTE_MAIN in " ".join(process.cmdline()):
                    found += [process, *process.children()]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return found


def descendants(pid: int) -> list[psutil.Process]:
    """Every process `pid` started, and they started, still running."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def reap_orphans(left: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """Wait for those of `left` (what a process we stopped had started) that are now this process's
    children: a subreaper (this process is one once it has run a program itself) adopts what a
    stopped process leaves, and each ends with its parent (--die-with-parent, a parent-death signal,
    its pid namespace's end). A zombie left unreaped still counts against its uid's process limit,
    which the next worker in that slot would inherit."""
    deadline = time.monotonic() + timeout_s
    for process in left:
        try:
            if process.ppid() != os.getpid():
                continue
        except psutil.NoSuchProcess:
            continue
        while os.waitpid(process.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid {process.pid}, left by a stopped process, did not end")
            time.sleep(0.01)


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
