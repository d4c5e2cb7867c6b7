"""Finding, killing and reaping the processes a program leaves behind, and the registry of live runs."""

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36

_LIBC = ctypes.CDLL(None, use_errno=True)
# A fork bomb refills the table while it is swept; each sweep kills all it sees, so few are needed.
_MAX_SWEEPS = 50
# Tasks that run as a program uid outside every run, by uid: a warm-start zygote's. RLIMIT_NPROC
# counts them against each run of that uid, which is allowed them on top of its own budget.
_RESIDENT_TASKS: dict[int, int] = {}
_RESIDENT_LOCK = threading.Lock()


def count_resident_tasks(uid: int, change: int) -> None:
    """Record tasks that start (`change` > 0) or stop (< 0) running as `uid` outside every run."""
    with _RESIDENT_LOCK:
        count = _RESIDENT_TASKS.get(uid, 0) + change
        if count > 0:
            _RESIDENT_TASKS[uid] = count
        else:
            _RESIDENT_TASKS.pop(uid, None)


def resident_tasks(uid: int | None) -> int:
    """The tasks running as `uid` outside every run (`count_resident_tasks`)."""
    with _RESIDENT_LOCK:
        return 0 if uid is None else _RESIDENT_TASKS.get(uid, 0)


def become_subreaper() -> None:
    """Make orphaned descendants reparent to this process, so they can still be found, killed and reaped.

    Not inherited across fork, hence set by every run rather than once per worker.
    """
    zero = ctypes.c_ulong(0)
    if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), zero, zero, zero) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def send_kill(pidfd: int) -> None:
    """SIGKILL the process behind a pidfd, which cannot hit a recycled pid; a dead one is fine."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


@dataclass(frozen=True)
class ProcessInfo:
    """One line of the process table, as /proc/<pid>/stat tells it."""

    pid: int
    ppid: int
    zombie: bool
    threads: int
    start_ticks: int


def process_table(uid: int) -> Iterator[ProcessInfo]:
    """The processes of one uid; others are skipped before their stat is read, which is what costs."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                fields = stat_fields(int(entry.name))
            except OSError:
                continue  # it has just exited
            yield ProcessInfo(
                pid=int(entry.name),
                ppid=int(fields[1]),
                zombie=fields[0] == b"Z",
                threads=int(fields[17]),
                start_ticks=int(fields[19]),
            )


def stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    with open(f"/proc/{pid}/stat", "rb") as stat_file:
        stat = stat_file.read()
    # The command name may contain spaces and parentheses: the fields start after the last ")".
    return stat[stat.rindex(b")") + 2 :].split()


def children_of(pid: int, uid: int) -> list[int]:
    """The pids of uid's processes whose parent is `pid`."""
    return [info.pid for info in process_table(uid) if info.ppid == pid]


def count_tasks(uid: int) -> int:
    """How many tasks (threads included) a uid runs now, which is what RLIMIT_NPROC counts."""
    return sum(info.threads for info in process_table(uid))


def _strays(child_pid: int, since_ticks: int, uid: int, whole_uid: bool) -> list[ProcessInfo]:
    """The processes of the program's uid that its run left besides its child.

    With a uid of its own, that is all of them. Sharing the worker's uid, it is the descendants of
    the child and the orphans reparented to us since it started. No-new-privileges keeps the
    program from starting processes of any other uid.
    """
    me = os.getpid()
    table = {info.pid: info for info in process_table(uid)}
    roots = {child_pid} | {
        info.pid for info in table.values() if info.ppid == me and info.start_ticks >= since_ticks
    }

    def belongs(info: ProcessInfo) -> bool:
        ancestor = info
        for _ in range(len(table)):
            if whole_uid or ancestor.pid in roots:
                return True
            parent = table.get(ancestor.ppid)
            if parent is None:
                return False
            ancestor = parent
        return False

    return [info for info in table.values() if info.pid not in (me, child_pid) and belongs(info)]


def kill_strays(child_pid: int, since_ticks: int, uid: int, whole_uid: bool) -> float:
    """SIGKILL and reap what a run left outside its process group; returns the CPU seconds reaped.

    Without a pid namespace nothing kills a whole tree at once, so the table is swept until a
    sweep finds nothing; processes reparented to us are reaped, others are left to their parent.
    """
    me = os.getpid()
    cpu_time = 0.0
    for _ in range(_MAX_SWEEPS):
        strays = _strays(child_pid, since_ticks, uid, whole_uid)
        # A zombie whose parent is not us is its parent's (or init's) to reap.
        if not any(info.ppid == me or not info.zombie for info in strays):
            break
        dying = {info.pid for info in strays if info.zombie or _kill_if_owned(info.pid, uid)}
        cpu_time += reap(info.pid for info in strays if info.ppid == me and info.pid in dying)
    return cpu_time


def kill_all_of(uid: int) -> None:
    """SIGKILL every process of a uid that is a worker slot's own, e.g. left by a worker that died."""
    kill_strays(0, 0, uid, whole_uid=True)


def _kill_if_owned(pid: int, uid: int) -> bool:
    """SIGKILL `pid` if it is still a process of `uid`; pinned by a pidfd first, never a recycled pid."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        # If the pidfd's process has died and its pid been reused, this reads the newcomer, but
        # the signal then goes to the dead process and does nothing.
        if os.stat(f"/proc/{pid}").st_uid != uid:
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except (FileNotFoundError, ProcessLookupError):
        return False
    finally:
        os.close(pidfd)


def reap(pids: Iterable[int]) -> float:
    """Wait for killed children of ours; returns the CPU seconds they and their reaped children used."""
    cpu_time = 0.0
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            _, _, usage = os.wait4(pid, 0)
            cpu_time += usage.ru_utime + usage.ru_stime
    return cpu_time


class RunningPrograms:
    """The programs this process is running, so that a cancel arriving on another thread can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._killers: set[Callable[[], None]] = set()

    @contextlib.contextmanager
    def registered(self, kill: Callable[[], None]) -> Iterator[None]:
        """Keep `kill` callable from other threads for the duration of the block, and not after."""
        with self._lock:
            self._killers.add(kill)
        try:
            yield
        finally:
            with self._lock:
                self._killers.discard(kill)

    def kill_all(self) -> int:
        """Kill every registered program; returns how many there were."""
        with self._lock:
            for kill in self._killers:
                kill()
            return len(self._killers)
