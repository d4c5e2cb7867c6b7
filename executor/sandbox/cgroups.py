"""A cgroup per run: one memory, process and CPU account for everything a program starts, and one kill.

rlimits are per process and count only what a process maps; a cgroup counts what the kernel
charges to the job as a whole: anonymous memory, tmpfs, shm and memfd pages, kernel memory (slab
for inodes, xattrs, message queues), in every process of the job. Its OOM killer acts inside the
job, so the host's never has to choose between the worker, Redis and gunicorn.

Job cgroups live under one folder per host, `executor/` at the root of each hierarchy, named
after the worker process that made them (run_names.py), so any process on the host can tell a
dead worker's leftovers and remove them (`sweep_leftovers`). Both cgroup versions:

- v2 (one hierarchy; Debian 12's default): memory.max with no swap, pids.max, memory.peak,
  memory.events' oom_kill, cpu.stat's usage_usec, and cgroup.kill.
- v1 (memory, pids, cpuacct and freezer hierarchies): memory and memory+swap limits, a socket
  buffer limit (v1 counts socket buffers apart from the rest), memory.max_usage_in_bytes, oom_control's
  oom_kill, cpuacct.usage, and freeze + SIGKILL + thaw for the kill.
"""

import contextlib
import errno
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from executor.sandbox.run_names import owner_alive

CGROUP_ROOT = "/sys/fs/cgroup"
MOUNT = "/usr/bin/mount"  # util-linux, Essential on Debian
# The folder under each hierarchy's root that holds every job cgroup of this host.
PARENT = "executor"
V1_CONTROLLERS = ("memory", "pids", "cpuacct", "freezer")
# Waits for the kernel to finish killing (each poll rereads a small file); a job the kernel has not
# emptied by then is left to the next sweep, with a warning from the caller.
_EMPTY_WAIT_S = 2.0
_POLL_S = 0.001


def socket_buffer_limit(memory_bytes: int) -> int:
    """The socket buffer limit of a v1 job (`memory.kmem.tcp`, which holds UDP's too once set): a
    quarter of its memory budget, counted apart from it."""
    return memory_bytes // 4


class CgroupUnavailable(OSError):
    """No job cgroup can be made here: not root, no delegation, a controller missing."""


@dataclass(frozen=True)
class CgroupLimits:
    """What the kernel holds a job to: memory of every kind, and tasks (threads count)."""

    memory_bytes: int
    processes: int


@dataclass(frozen=True)
class Usage:
    """What the job as a whole used, read from its cgroup once every process of it has died."""

    memory_peak_kb: int
    cpu_time_s: float
    oom_kills: int


class JobCgroup(ABC):
    """One run's cgroup, from before its first process to its removal."""

    def __init__(self, directories: Mapping[str, str]) -> None:
        # Controller name (v1) or "" (v2) → the job's directory in that hierarchy.
        self.directories = dict(directories)

    @property
    def procs_files(self) -> list[str]:
        """The cgroup.procs file of every hierarchy: writing a pid there moves that process in."""
        return [os.path.join(directory, "cgroup.procs") for directory in self.directories.values()]

    def join(self, pid: int) -> None:
        """Move one process (all its threads) into the job, in every hierarchy."""
        for path in self.procs_files:
            _write(path, str(pid))

    def pids(self) -> list[int]:
        """The processes in the job now (zombies are not listed)."""
        first = next(iter(self.directories.values()))
        return _read_pids(os.path.join(first, "cgroup.procs"))

    def kill(self) -> bool:
        """SIGKILL everything in the job, whatever it did to its pid 1; True once the job is empty."""
        deadline = time.monotonic() + _EMPTY_WAIT_S
        while self.pids():
            if time.monotonic() > deadline:
                return False
            self._kill_all()
            _wait_until(lambda: not self.pids(), min(deadline, time.monotonic() + 0.2))
        return True

    def remove(self) -> None:
        """Remove the job's directories; the job must be empty (see `kill`)."""
        for directory in self.directories.values():
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(directory)

    @abstractmethod
    def usage(self) -> Usage:
        """Peak memory, CPU time and OOM kills of the whole job so far."""

    @abstractmethod
    def _kill_all(self) -> None:
        """Send SIGKILL to every process in the job, including ones forked meanwhile."""


class JobCgroupV2(JobCgroup):
    """A job cgroup in the unified hierarchy."""

    @property
    def _directory(self) -> str:
        return self.directories[""]

    def usage(self) -> Usage:
        stat = _keyed(os.path.join(self._directory, "cpu.stat"))
        events = _keyed(os.path.join(self._directory, "memory.events"))
        peak = int(_read(os.path.join(self._directory, "memory.peak")))
        return Usage(peak // 1024, stat.get("usage_usec", 0) / 1e6, events.get("oom_kill", 0))

    def _kill_all(self) -> None:
        # The kernel kills every process, including ones forked while it does (Linux 5.14).
        _write(os.path.join(self._directory, "cgroup.kill"), "1")


class JobCgroupV1(JobCgroup):
    """A job cgroup made of one directory in each of the memory, pids, cpuacct and freezer hierarchies."""

    def usage(self) -> Usage:
        memory = self.directories["memory"]
        peak = int(_read(os.path.join(memory, "memory.max_usage_in_bytes")))
        oom = _keyed(os.path.join(memory, "memory.oom_control"))
        cpu_ns = int(_read(os.path.join(self.directories["cpuacct"], "cpuacct.usage")))
        return Usage(peak // 1024, cpu_ns / 1e9, oom.get("oom_kill", 0))

    def _kill_all(self) -> None:
        # Frozen, nothing can fork or exit, so every pid read is a live member and none is recycled.
        state = os.path.join(self.directories["freezer"], "freezer.state")
        _write(state, "FROZEN")
        try:
            _wait_until(lambda: _read(state) != "FREEZING", time.monotonic() + 0.5)
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            _write(state, "THAWED")


class Hierarchy(ABC):
    """Where job cgroups are made on this host, and how."""

    version: int

    @abstractmethod
    def create(self, name: str, limits: CgroupLimits) -> JobCgroup:
        """Make the job's cgroup with its limits set; it holds no process yet."""

    @abstractmethod
    def job_names(self) -> list[str]:
        """The names of the job cgroups that exist now, whoever made them."""

    @abstractmethod
    def existing(self, name: str) -> JobCgroup:
        """A handle on a job cgroup that exists, to kill and remove it."""

    def make(self, name: str, limits: CgroupLimits) -> JobCgroup:
        """A fresh job cgroup; nothing of it is left if setting it up fails."""
        try:
            return self.create(name, limits)
        except OSError:
            with contextlib.suppress(OSError):
                self.existing(name).remove()
            raise


class HierarchyV2(Hierarchy):
    """cgroup v2: `<root>/executor/<job>`, with the memory and pids controllers delegated to it."""

    version = 2

    def __init__(self, root: str) -> None:
        self.parent = os.path.join(root, PARENT)

    def prepare(self) -> None:
        """Make the parent and enable the controllers for its children (it holds no process itself)."""
        os.makedirs(self.parent, exist_ok=True)
        _write(os.path.join(self.parent, "cgroup.subtree_control"), "+memory +pids")

    def create(self, name: str, limits: CgroupLimits) -> JobCgroup:
        directory = os.path.join(self.parent, name)
        os.mkdir(directory)
        cgroup = JobCgroupV2({"": directory})
        _write(os.path.join(directory, "memory.max"), str(limits.memory_bytes))
        _write(os.path.join(directory, "memory.swap.max"), "0")
        # The kernel's OOM kill takes the whole job at once, never a part of it.
        _write(os.path.join(directory, "memory.oom.group"), "1")
        _write(os.path.join(directory, "pids.max"), str(limits.processes))
        return cgroup

    def job_names(self) -> list[str]:
        return _subdirectories(self.parent)

    def existing(self, name: str) -> JobCgroup:
        return JobCgroupV2({"": os.path.join(self.parent, name)})


class HierarchyV1(Hierarchy):
    """cgroup v1: `<controller mount>/executor/<job>` in each of the four hierarchies."""

    version = 1

    def __init__(self, mounts: Mapping[str, str]) -> None:
        self.parents = {controller: os.path.join(mounts[controller], PARENT) for controller in V1_CONTROLLERS}

    def prepare(self) -> None:
        """Make the parents; memory is hierarchical so that a parent limit, if set, holds its jobs."""
        for parent in self.parents.values():
            os.makedirs(parent, exist_ok=True)

    def create(self, name: str, limits: CgroupLimits) -> JobCgroup:
        directories = {controller: os.path.join(parent, name) for controller, parent in self.parents.items()}
        for directory in directories.values():
            os.mkdir(directory)
        cgroup = JobCgroupV1(directories)
        memory = directories["memory"]
        _write(os.path.join(memory, "memory.limit_in_bytes"), str(limits.memory_bytes))
        # memory+swap no higher than memory: the job never swaps (no-op where there is no swap).
        with contextlib.suppress(FileNotFoundError):
            _write(os.path.join(memory, "memory.memsw.limit_in_bytes"), str(limits.memory_bytes))
        # v1 charges socket buffers (TCP's and, once this is set, UDP's) to a counter of their own,
        # unlimited unless set (v2 counts them in memory.max): a quarter of the budget on top of it.
        _write(
            os.path.join(memory, "memory.kmem.tcp.limit_in_bytes"),
            str(socket_buffer_limit(limits.memory_bytes)),
        )
        _write(os.path.join(directories["pids"], "pids.max"), str(limits.processes))
        return cgroup

    def job_names(self) -> list[str]:
        return _subdirectories(self.parents["memory"])

    def existing(self, name: str) -> JobCgroup:
        return JobCgroupV1(
            {controller: os.path.join(parent, name) for controller, parent in self.parents.items()}
        )


def find_hierarchy(mountinfo: str = "/proc/self/mountinfo") -> Hierarchy:
    """The cgroup hierarchy this host gives, prepared for job cgroups; raises CgroupUnavailable."""
    v2_root, v1_mounts = _cgroup_mounts(mountinfo)
    hierarchy: HierarchyV1 | HierarchyV2
    if v2_root is not None and {"memory", "pids"} <= set(_read(f"{v2_root}/cgroup.controllers").split()):
        hierarchy = HierarchyV2(v2_root)
    elif all(controller in v1_mounts for controller in V1_CONTROLLERS):
        hierarchy = HierarchyV1(v1_mounts)
    else:
        missing = [controller for controller in V1_CONTROLLERS if controller not in v1_mounts]
        raise CgroupUnavailable(
            errno.ENOENT,
            f"no cgroup v2 with memory and pids, and cgroup v1 lacks {', '.join(missing)}",
        )
    try:
        hierarchy.prepare()
    except OSError as error:
        raise CgroupUnavailable(error.errno, f"cannot make job cgroups: {error}") from error
    return hierarchy


def favor_fast_moves(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Turn on cgroup2's `favordynmods` where it is off; returns why it could not, or None once it is on.

    Moving a process into a cgroup takes the kernel's global cgroup_threadgroup_rwsem for writing,
    which waits for an RCU grace period and holds every fork and exit of the host meanwhile: 6-7 ms
    per run here, the whole cost of a run's cgroup many times over. With `favordynmods` (a flag of
    the cgroup2 mount that switches that lock for all hierarchies, v1 included) the move takes
    0.08 ms, and forks and exits take the lock's slower, atomic path (Documentation/admin-guide/
    cgroup-v2.rst). util-linux's mount keeps the mount's other options.
    """
    targets = [line.split() for line in _mount_lines(mountinfo) if _fs_type(line) == "cgroup2"]
    if not targets:
        return "no cgroup2 is mounted, and only its mount carries favordynmods"
    if any("favordynmods" in fields[fields.index("-") + 3].split(",") for fields in targets):
        return None
    remount = subprocess.run(
        [MOUNT, "-o", "remount,favordynmods", targets[0][4]], capture_output=True, text=True, check=False
    )
    return remount.stderr.strip() or None if remount.returncode else None


def sweep_leftovers(hierarchy: Hierarchy) -> list[str]:
    """Kill and remove the job cgroups of worker processes that no longer exist; return their names.

    A worker SIGKILLed in the middle of a run leaves its job's cgroup, and in it whatever the
    program did to outlive its sandbox (e.g. a pid 1 that lost its parent-death signal).
    """
    removed: list[str] = []
    for name in hierarchy.job_names():
        if owner_alive(name):
            continue
        leftover = hierarchy.existing(name)
        # Every worker of the host sweeps: another may remove this one while this one is at it.
        with contextlib.suppress(FileNotFoundError):
            if leftover.kill():
                leftover.remove()
                removed.append(name)
    return removed


def _cgroup_mounts(mountinfo: str) -> tuple[str | None, dict[str, str]]:
    """Where cgroup2 is mounted, and each v1 controller's mount point, from the mount table."""
    v2_root = None
    v1_mounts: dict[str, str] = {}
    for line in _mount_lines(mountinfo):
        fields = line.split()
        mount_point, fs_type, options = fields[4], _fs_type(line), fields[fields.index("-") + 3]
        if fs_type == "cgroup2" and (v2_root is None or mount_point == CGROUP_ROOT):
            v2_root = mount_point
        elif fs_type == "cgroup":
            for option in options.split(","):
                if option in V1_CONTROLLERS:
                    v1_mounts.setdefault(option, mount_point)
    return v2_root, v1_mounts


def _mount_lines(mountinfo: str) -> list[str]:
    with open(mountinfo) as table:
        return table.readlines()


def _fs_type(mountinfo_line: str) -> str:
    fields = mountinfo_line.split()
    return fields[fields.index("-") + 1]


def _subdirectories(parent: str) -> list[str]:
    try:
        with os.scandir(parent) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def _wait_until(condition: Callable[[], bool], deadline: float) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _read(path: str) -> str:
    with open(path) as file:
        return file.read().strip()


def _read_pids(path: str) -> list[int]:
    try:
        return [int(line) for line in _read(path).split()]
    except FileNotFoundError:
        return []


def _keyed(path: str) -> dict[str, int]:
    """A flat-keyed cgroup file ("key value" lines) as a dict."""
    values = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
