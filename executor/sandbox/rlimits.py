"""Resource limits and the privilege drop a program starts with, set between fork and exec."""

import ctypes
import os
import resource
import signal
from collections.abc import Callable, Sequence

from executor.sandbox.limits import MIB, Limits

# util-linux (Essential on Debian): they apply the same settings from between exec's.
PRLIMIT = "/usr/bin/prlimit"
SETPRIV = "/usr/bin/setpriv"
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_LIBC = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    """The kernel's struct sock_fprog: a BPF program as length and pointer."""

    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


RlimitSettings = tuple[tuple[int, tuple[int, int]], ...]

_PRLIMIT_OPTIONS = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_NPROC: "--nproc",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_CORE: "--core",
    resource.RLIMIT_AS: "--as",
}


def program_rlimits(limits: Limits, extra_processes: int, memory_in_cgroup: bool) -> RlimitSettings:
    """The rlimits of a run, ordered so that RLIMIT_AS comes last (see child_setup).

    RLIMIT_AS bounds memory only where no cgroup does: it counts address space, not memory, so it
    stops runtimes that reserve more than they use (threads' stacks, node, the JVM, Go) and misses
    what no process maps (tmpfs, shm, kernel memory), all of which the job's cgroup counts.
    """
    disk = limits.max_disk_mb * MIB
    processes = limits.max_processes + extra_processes
    settings = (
        # SIGXCPU at the soft limit; SIGKILL a second later if the program ignores it.
        (resource.RLIMIT_CPU, (limits.cpu_time_s, limits.cpu_time_s + 1)),
        (resource.RLIMIT_NPROC, (processes, processes)),
        (resource.RLIMIT_FSIZE, (disk, disk)),
        (resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
    )
    if memory_in_cgroup:
        return settings
    return (*settings, (resource.RLIMIT_AS, (limits.memory_mb * MIB, limits.memory_mb * MIB)))


def child_setup(
    rlimits: RlimitSettings, seccomp_filter: bytes, cgroup_procs_fds: Sequence[int] = ()
) -> Callable[[], None]:
    """The preexec function: join the job's cgroup, die with the worker, no new privileges, the seccomp
    filter and the rlimits.

    `cgroup_procs_fds` are the job's cgroup.procs files, opened by the worker: writing "0" moves the
    writer itself, so the program is in its cgroup before its first instruction.
    """
    program = ctypes.create_string_buffer(seccomp_filter, len(seccomp_filter))
    fprog = _SockFprog(len(seccomp_filter) // 8, ctypes.cast(program, ctypes.c_void_p))
    zero, one, filter_mode = ctypes.c_ulong(0), ctypes.c_ulong(1), ctypes.c_ulong(SECCOMP_MODE_FILTER)
    kill_signal = ctypes.c_ulong(signal.SIGKILL)
    fprog_pointer = ctypes.byref(fprog)

    def apply() -> None:
        # Runs in the forked child of a possibly multi-threaded worker: everything is prepared
        # above, so this only makes system calls; RLIMIT_AS comes last, since after it the copy of
        # the worker may not be able to allocate anything.
        for fd in cgroup_procs_fds:
            os.write(fd, b"0")
        # Die with the worker (the forking thread: jobs run on the worker's main thread). Before the
        # seccomp filter, which refuses this prctl to the program.
        if _LIBC.prctl(PR_SET_PDEATHSIG, kill_signal, zero, zero, zero) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if seccomp_filter and _LIBC.prctl(PR_SET_SECCOMP, filter_mode, fprog_pointer, zero, zero) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
        for limit, values in rlimits:
            resource.setrlimit(limit, values)

    return apply


def exec_prefix(rlimits: RlimitSettings, user: tuple[int, int] | None, starter: str | None) -> list[str]:
    """A command prefix making the rlimits and the uid, gid and group drop with no new privileges.

    It execs in the child's own pid, so no Python runs between fork and exec and the spawn can use
    vfork (CPython 3.11's _posixsubprocess forks instead when Popen gets `preexec_fn`, `user`, `group`
    or `extra_groups`: 2-3 ms more per run in a 50 MB worker). `starter` is executor-start
    (starter.py), one exec of a program without libc; without it, prlimit execs setpriv, two
    dynamically linked execs, about 2 ms more per run on the development VM.
    """
    if starter is not None:
        ids = ["-", "-"] if user is None else [str(user[0]), str(user[1])]
        triples = [str(value) for limit, (soft, hard) in rlimits for value in (limit, soft, hard)]
        return [starter, *ids, str(len(rlimits)), *triples]
    prefix = [PRLIMIT, *(f"{_PRLIMIT_OPTIONS[limit]}={soft}:{hard}" for limit, (soft, hard) in rlimits), "--"]
    if user is not None:
        uid, gid = user
        prefix += [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--"]
    return prefix
