"""What the host sees of a run while it holds what it took: its cgroup, the host's TCP buffers, MemAvailable.

A run's cgroup is gone once run_program returns, so it is read while the run is under way: the
run goes to a background thread and the calling thread samples every `SAMPLE_S` until it ends.

MemAvailable is the whole machine's, and other test sessions and workers share it. It is read with
the free pages the kernel keeps per CPU added back, less what the rest of the machine took meanwhile
(other job cgroups, processes outside every job): what remains of its drop is the job's, including
whatever it holds that its cgroup is not charged for.
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from executor.sandbox import RunResult
from executor.sandbox.cgroups import CGROUP_ROOT, PARENT, V1_CONTROLLERS
from executor.sandbox.scratch import SCRATCH_ROOT

MIB = 1024 * 1024
SAMPLE_S = 0.02
MEMORY_PARENT = os.path.join(CGROUP_ROOT, "memory", PARENT)


@dataclass(frozen=True)
class HostView:
    """A run's result and what the host saw of it."""

    result: RunResult
    # Samples in which the job's cgroup existed: zero means nothing below was about this job.
    samples: int
    # The job's memory (usage, and the kernel's own high-water mark, which catches peaks between samples).
    peak_bytes: int
    # v1 counts TCP buffers apart from the rest of the job's memory.
    peak_tcp_bytes: int
    # How far the host's TCP and UDP buffer memory (all sockets, /proc/net/sockstat) rose above its level
    # just before the run: what the job's sockets hold whether or not its cgroup is charged for it.
    host_socket_rise_bytes: int
    # How far the host's MemAvailable fell below its level just before the run, less what the rest of
    # the machine took meanwhile (see _Host.others).
    available_drop_bytes: int
    # Cgroup directories (any controller) and scratch disks of the run's name left after it returned.
    leftovers: list[str]

    def summary(self) -> str:
        """The figures, for assertion messages and -s output."""
        return (
            f"{self.samples} samples; peak {self.peak_bytes / MIB:.1f} MiB, "
            f"tcp {self.peak_tcp_bytes / MIB:.1f} MiB, "
            f"host sockets +{self.host_socket_rise_bytes / MIB:.1f} MiB, "
            f"MemAvailable drop {self.available_drop_bytes / MIB:.1f} MiB;"
            f" {self.result.outcome.value} signal={self.result.signal} memory_kb={self.result.memory_kb} "
            f"cpu_time={self.result.cpu_time}; stdout={self.result.stdout[-600:]!r} "
            f"stderr={self.result.stderr[-300:]!r}"
        )


def watch(start_run: Callable[[], RunResult], run_prefix: str) -> HostView:
    """Run `start_run` in a thread and sample the host until it returns."""
    prefix = run_prefix + "-"
    assert _job_directories(prefix) == [], "a job of this prefix exists before the run: samples would mix"
    baseline = _baseline()
    outcome: list[RunResult] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(start_run())
        except BaseException as error:  # re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=target, name="attack-run", daemon=True)
    samples = peak = peak_tcp = socket_rise = drop = 0
    thread.start()
    while thread.is_alive():
        ours = seen = 0
        for directory in _job_directories(prefix):
            with contextlib.suppress(OSError, ValueError):  # removed while read
                usage = _read_int(directory, "memory.usage_in_bytes")
                tcp = _read_int(directory, "memory.kmem.tcp.usage_in_bytes")
                ours += usage + tcp
                # The kernel's high-water marks catch what rose and fell between two samples.
                peak = max(peak, usage, _read_int(directory, "memory.max_usage_in_bytes"))
                peak_tcp = max(peak_tcp, tcp, _read_int(directory, "memory.kmem.tcp.max_usage_in_bytes"))
                seen = 1
        samples += seen
        now = _host(ours)
        drop = max(drop, (baseline.available - now.available) - (now.others - baseline.others))
        socket_rise = max(socket_rise, now.sockets - baseline.sockets)
        thread.join(SAMPLE_S)
    if failure:
        raise failure[0]
    return HostView(outcome[0], samples, peak, peak_tcp, socket_rise, drop, leftovers(prefix))


def leftovers(prefix: str) -> list[str]:
    """Whatever of the runs named `prefix…` is still on the host: cgroups in any hierarchy, scratch disks."""
    found = []
    for controller in V1_CONTROLLERS:
        found += _named(os.path.join(CGROUP_ROOT, controller, PARENT), prefix)
    return found + _named(SCRATCH_ROOT, prefix)


def _job_directories(prefix: str) -> list[str]:
    return _named(MEMORY_PARENT, prefix)


def _named(parent: str, prefix: str) -> list[str]:
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return []
    return [os.path.join(parent, name) for name in names if name.startswith(prefix)]


def _read_int(directory: str, name: str) -> int:
    with open(os.path.join(directory, name)) as file:
        return int(file.read())


@dataclass(frozen=True)
class _Host:
    # MemAvailable, and the free pages it leaves out.
    available: int
    # What the rest of the machine holds that no job of ours can have caused: the other job cgroups
    # (other workers', other test runs'), and the anonymous memory of processes outside every job
    # cgroup (other test sessions, workers starting up) but this one, which runs the job.
    others: int
    # Every TCP and UDP socket's buffers.
    sockets: int


def _host(ours: int) -> _Host:
    """The host now; `ours` is what our job's cgroup holds, already in the parent's usage."""
    meminfo = _keyed("/proc/meminfo")
    others = meminfo["AnonPages"] * 1024 - _keyed("/proc/self/status")["RssAnon"] * 1024
    with contextlib.suppress(FileNotFoundError):
        jobs = _read_int(MEMORY_PARENT, "memory.usage_in_bytes")
        jobs += _read_int(MEMORY_PARENT, "memory.kmem.tcp.usage_in_bytes")
        jobs_anon = _keyed(os.path.join(MEMORY_PARENT, "memory.stat"))["total_rss"]
        others += jobs - ours - jobs_anon
    return _Host(meminfo["MemAvailable"] * 1024 + _per_cpu_free_bytes(), others, _socket_bytes())


def _socket_bytes() -> int:
    """The TCP and UDP buffer memory of the whole host, in pages in /proc/net/sockstat ("TCP: ... mem N")."""
    pages = 0
    with open("/proc/net/sockstat") as sockstat:
        for line in sockstat:
            fields = line.split()
            if fields[:1] in (["TCP:"], ["UDP:"]):
                pages += int(fields[fields.index("mem") + 1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _per_cpu_free_bytes() -> int:
    """Free pages the kernel keeps in per-CPU lists, which MemFree and MemAvailable leave out.

    Pages a killed process frees go there first, and the lists grow to tens of MiB per CPU
    (zoneinfo's high_max), which would otherwise read as memory the job still held.
    """
    pages = 0
    with open("/proc/zoneinfo") as zoneinfo:
        for line in zoneinfo:
            fields = line.split()
            if fields[:1] == ["count:"]:
                pages += int(fields[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _baseline() -> _Host:
    """The host just before the run: the median of a few reads, against passing noise."""
    reads = []
    for _ in range(5):
        reads.append(_host(0))
        time.sleep(SAMPLE_S / 2)
    return sorted(reads, key=lambda host: host.available - host.others)[len(reads) // 2]


def _keyed(path: str) -> dict[str, int]:
    """The numbers of a file of "key value" or "key: value kB" lines, by key."""
    values = {}
    with open(path) as file:
        for line in file:
            fields = line.replace(":", " ").split()
            if len(fields) >= 2 and fields[1].isdigit():
                values[fields[0]] = int(fields[1])
    return values
