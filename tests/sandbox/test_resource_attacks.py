"""Programs that try to take far more than their budget, seen from the host while they hold what they got.

Each test runs an attacker's program through the real sandbox and samples the host meanwhile
(host_side.py): the job's cgroup (memory.usage_in_bytes, and v1's separate TCP buffer counter), the
host's TCP buffers and its MemAvailable. Each shows that the job as a whole never held more than its
budget plus a small margin, whichever way it spent it: many processes, shared memory, memfds, tmpfs
metadata, disk, socket buffers; that what the filter refuses (SysV IPC, xattr writes, Linux AIO,
inotify) is refused; and that the run's cpu_time and memory_kb are the whole job's. After every run
nothing of it is left on the host: no process, cgroup or scratch disk.

TCP connections a job makes to its own listener and never accepts hold receive buffers that no
cgroup is charged for (the kernel gives a socket its memcg at accept()); measured before seccomp
refused internet sockets other than datagrams: 8 processes x 60 connections held 80-90 MiB of the
host's TCP memory, 32 processes ~700 MiB, with a 64 MiB budget. That test now shows the refusal.
"""

import platform
from collections.abc import Callable
from typing import Any

import pytest

from executor.sandbox import Isolation, Outcome, RunResult, Sandbox
from executor.sandbox.cgroups import HierarchyV1, socket_buffer_limit
from executor.sandbox.limits import Limits
from tests.sandbox.host_side import MIB, HostView, watch

Run = Callable[..., RunResult]
Watch = Callable[..., HostView]

MEMORY_MB = 64
BUDGET = MEMORY_MB * MIB
# The job's own counters are exact; a few pages may be charged past the limit before reclaim or the
# OOM killer acts (the kernel's TCP counter is forced past its limit by up to a few skbs).
CGROUP_MARGIN = 4 * MIB
# The host's MemAvailable moves with everything else on the machine; host_side.py takes out what it
# can attribute to others, and this covers the rest (measured: a few MiB on a quiet machine). Still
# far below what each attack here takes without its bound.
HOST_MARGIN = 48 * MIB
# How long an attacker holds what it got, so that samples every 20 ms see the peak.
HOLD_S = 1.5

MANY_CHILDREN = """
import os, sys, time
children, size = int(sys.argv[1]), int(sys.argv[2])
pids = []
for number in range(children):
    pid = os.fork()
    if pid == 0:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")  # the OOM killer takes children first: the parent lives to report
        block = bytearray(size)
        for offset in range(0, size, 4096):
            block[offset] = 1
        print(f"child {number} holds {size >> 20} MiB", flush=True)
        time.sleep(float(sys.argv[3]))
        os._exit(0)
    pids.append(pid)
held = sum(os.waitpid(pid, 0)[1] == 0 for pid in pids)
print(f"children that held their memory to the end: {held}/{children}", flush=True)
"""

SYSV_IPC = """
import ctypes, errno, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
libc.shmdt.argtypes = (ctypes.c_void_p,)
libc.shmget.argtypes = (ctypes.c_int, ctypes.c_size_t, ctypes.c_int)
libc.msgsnd.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
IPC_PRIVATE, IPC_CREAT, IPC_NOWAIT = 0, 0o1000, 0o4000
segment, segments, queues = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def refused(call):
    number = ctypes.get_errno()
    print(f"{call}: {errno.errorcode.get(number, number)}", flush=True)

kept = 0
for _ in range(segments):
    shmid = libc.shmget(IPC_PRIVATE, segment, IPC_CREAT | 0o600)
    if shmid < 0:
        refused("shmget")
        break
    address = libc.shmat(shmid, None, 0)
    if address is None or address == ctypes.c_void_p(-1).value:
        refused("shmat")
        break
    ctypes.memset(address, 1, segment)
    libc.shmdt(address)  # no IPC_RMID: the segment outlives every attachment
    kept += segment
    print(f"shm kept after shmdt: {kept >> 20} MiB", flush=True)
message = struct.pack("l", 1) + b"m" * 8192
queued = 0
for _ in range(queues):
    queue = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    if queue < 0:
        refused("msgget")
        break
    for _ in range(64):
        if libc.msgsnd(queue, message, 8192, IPC_NOWAIT) != 0:
            break
        queued += 8192
print(f"queued in messages: {queued >> 20} MiB", flush=True)
time.sleep(float(sys.argv[4]) if kept or queued else 0.2)
"""

MEMFD = """
import errno, os, sys, time
fd = os.memfd_create("hoard")
chunk = b"m" * (1 << 20)
written = 0
try:
    for _ in range(int(sys.argv[1])):
        written += os.write(fd, chunk)  # never mapped: no process's RSS shows it
        if written % (8 << 20) == 0:
            print(f"memfd holds {written >> 20} MiB", flush=True)
except OSError as error:
    print(f"write failed at {written >> 20} MiB: {errno.errorcode[error.errno]}", flush=True)
time.sleep(float(sys.argv[2]))
"""

XATTRS = """
import errno, os, sys, time
open("target", "w").close()
value = b"x" * 65536
count = 0
try:
    for number in range(int(sys.argv[1])):
        os.setxattr("target", f"user.x{number}", value)
        count += 1
except OSError as error:
    name = "EOPNOTSUPP" if error.errno == errno.EOPNOTSUPP else errno.errorcode[error.errno]
    print(f"setxattr: {name} after {count}", flush=True)
print(f"xattrs set: {count} ({count * len(value) >> 20} MiB)", flush=True)
time.sleep(float(sys.argv[2]) if count else 0.2)
"""

EMPTY_FILES = """
import errno, os, sys, time
folders = [os.getcwd(), os.environ["TMPDIR"], *sys.argv[3:]]
deadline = time.monotonic() + 5
total = 0
for folder in folders:
    made = 0
    try:
        for number in range(int(sys.argv[1])):
            os.close(os.open(f"{folder}/e{number}", os.O_CREAT | os.O_WRONLY, 0o600))
            made += 1
            if time.monotonic() > deadline:
                break
        print(f"{folder}: {made} files, no error", flush=True)
    except OSError as error:
        print(f"{folder}: {made} files, then {errno.errorcode[error.errno]}", flush=True)
    total += made
print(f"total {total}", flush=True)
time.sleep(float(sys.argv[2]))
"""

DISK = """
import errno, os, sys, time
chunk = b"d" * (1 << 20)
total = 0
for folder in ("/work", "/tmp", "/dev/shm"):
    written = 0
    fd = os.open(f"{folder}/fill", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for _ in range(int(sys.argv[1])):
            written += os.write(fd, chunk)
        outcome = "no error"
    except OSError as error:
        outcome = errno.errorcode[error.errno]
    print(f"{folder}: {written} bytes, {outcome}", flush=True)
    total += written
print(f"total {total}", flush=True)
time.sleep(float(sys.argv[2]))
"""

# The end of the socket programs: hoard() in `processes` children at once, each the OOM killer's
# first choice so that the parent lives to wait for them all.
HOARD_IN_EACH_CHILD = """
pids = []
for _ in range(processes):
    pid = os.fork()
    if pid == 0:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
        try:
            hoard()
        finally:
            os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""

# A process per child, each with a listener and as many connections as RLIMIT_NOFILE leaves it:
# RLIMIT_NOFILE is per process, so the job's fds are processes x max_open_files.
TCP_BUFFERS = (
    """
import errno, os, socket, sys, time
processes, accept, hold = int(sys.argv[1]), sys.argv[2] == "accept", float(sys.argv[3])
BUFFER, chunk = 8 << 20, b"t" * 65536

def hoard():
    try:
        listener = socket.socket()
    except OSError as error:
        print(f"socket: {errno.errorcode[error.errno]}", flush=True)
        return
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)  # inherited by what it accepts
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    clients, servers, queued, stop = [], [], 0, "no error"
    try:
        for _ in range(128):
            client = socket.socket()
            clients.append(client)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            client.connect(listener.getsockname())
            client.setblocking(False)
            if accept:
                servers.append(listener.accept()[0])  # accepted, never read
    except OSError as error:
        stop = errno.errorcode[error.errno]
    for client in clients:
        for _ in range(1024):
            try:
                queued += client.send(chunk)
            except OSError:
                break
    print(f"{len(servers) or len(clients)} connections ({stop}), {queued >> 20} MiB queued", flush=True)
    time.sleep(hold)

"""
    + HOARD_IN_EACH_CHILD
)

UDP_BUFFERS = (
    """
import os, socket, sys, time
processes, hold = int(sys.argv[1]), float(sys.argv[2])

def hoard():
    receivers, sent = [], 0
    try:
        for _ in range(60):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receivers.append(receiver)
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            receiver.bind(("127.0.0.1", 0))
    except OSError:
        pass
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    for receiver in receivers:
        for _ in range(256):  # 15 MiB a socket, far past what its buffer keeps
            try:
                sent += sender.sendto(b"d" * 60000, receiver.getsockname())
            except OSError:
                break
    print(f"{len(receivers)} sockets, {sent >> 20} MiB sent", flush=True)
    time.sleep(hold)

"""
    + HOARD_IN_EACH_CHILD
)

UNIX_BUFFERS = (
    """
import errno, os, socket, sys, time
processes, hold = int(sys.argv[1]), float(sys.argv[2])
BUFFER, chunk = 8 << 20, b"u" * 65536

def hoard():
    pairs, queued, stop = [], 0, "no error"
    try:
        for _ in range(64):
            pair = socket.socketpair()
            pairs.append(pair)
            for end in pair:
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
                end.setblocking(False)
    except OSError as error:
        stop = errno.errorcode[error.errno]
    for pair in pairs:
        for end in pair:  # both ways, never read
            for _ in range(256):
                try:
                    queued += end.send(chunk)
                except OSError:
                    break
        print(f"{len(pairs)} pairs ({stop}), {queued >> 20} MiB queued", flush=True)
    time.sleep(hold)

"""
    + HOARD_IN_EACH_CHILD
)

IO_SETUP = """
import ctypes, errno, sys, time
libc = ctypes.CDLL(None, use_errno=True)
contexts = []
for _ in range(int(sys.argv[1])):
    context = ctypes.c_ulong(0)
    if libc.syscall(206, 65536, ctypes.byref(context)) != 0:  # io_setup(nr_events, ctx) on x86_64
        number = ctypes.get_errno()
        print(f"io_setup: {errno.errorcode.get(number, number)}", flush=True)
        break
    contexts.append(context)
print(f"contexts: {len(contexts)}", flush=True)
time.sleep(float(sys.argv[2]) if contexts else 0.2)
"""

INOTIFY = """
import ctypes, errno, os, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_CLOEXEC)
if fd < 0:
    number = ctypes.get_errno()
    print(f"inotify_init1: {errno.errorcode.get(number, number)}", flush=True)
else:
    print(f"watching /usr: {libc.inotify_add_watch(fd, b'/usr/bin', 0x20)}", flush=True)  # IN_OPEN
time.sleep(0.2)
"""

# The burner reports once it has used 0.4 s of CPU, then keeps burning until the run kills it.
CPU_AFTER_EXIT = """
import os, time
ready, burnt = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(ready)
        while time.process_time() < 0.4:
            pass
        os.write(burnt, b"burnt")
        while time.process_time() < 3:
            pass
    os._exit(0)
os.close(burnt)
print(os.read(ready, 5).decode(), flush=True)
"""

TWO_HOLDERS = """
import os, time
def hold():
    block = bytearray(20 << 20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    return block, int(peak)
ready, held = os.pipe()
if os.fork() == 0:
    block, peak = hold()
    os.write(held, f"{peak}\\n".encode())
    time.sleep(0.5)
    os._exit(0)
block, peak = hold()
print(peak, os.read(ready, 64).decode().strip(), flush=True)
os.wait()
"""


def _watcher(run: Run, sandbox: Sandbox) -> Watch:
    if not isinstance(sandbox.cgroups, HierarchyV1):
        pytest.skip("the host side read here is cgroup v1's (memory.usage_in_bytes, memory.kmem.tcp.*)")

    def run_watched(code: str, *args: object, **limits: Any) -> HostView:
        settings = {"memory_mb": MEMORY_MB, "wall_time_s": 8.0, **limits}
        return watch(lambda: run(code, args=tuple(map(str, args)), **settings), sandbox.run_prefix)

    return run_watched


@pytest.fixture
def watched(run: Run, sandbox: Sandbox) -> Watch:
    """watched(code, *args, **limits): the run, in the parametrized sandbox, with the host's view of it."""
    return _watcher(run, sandbox)


@pytest.fixture
def watched_bwrap(run_bwrap: Run, bwrap_sandbox: Sandbox) -> Watch:
    """watched, under bubblewrap only."""
    return _watcher(run_bwrap, bwrap_sandbox)


def assert_contained(view: HostView, memory_bytes: int = BUDGET, host_bytes: int | None = None) -> None:
    """The job held no more than its budget, seen from its cgroup and from the host, and left nothing."""
    figures = view.summary()
    print(figures)  # shown with -s: the figures each attack reached
    assert view.samples > 0, f"the sampler never saw the job's cgroup: {figures}"
    assert view.leftovers == [], figures
    assert view.peak_bytes <= memory_bytes + CGROUP_MARGIN, figures
    host_budget = memory_bytes if host_bytes is None else host_bytes
    assert view.available_drop_bytes <= host_budget + HOST_MARGIN, figures
    assert view.result.memory_kb is not None, figures
    assert view.result.memory_kb * 1024 <= memory_bytes, figures


def test_memory_spread_over_many_children_is_bounded_as_one_job(watched: Watch) -> None:
    # Unbounded: 16 x 0.7 x 64 MiB = 717 MiB, each child well under any per-process limit.
    view = watched(MANY_CHILDREN, 16, int(BUDGET * 0.7), HOLD_S)
    assert "children that held their memory to the end" in view.result.stdout, view.summary()
    assert_contained(view)


def test_sysv_shared_memory_and_message_queues_are_refused(watched: Watch) -> None:
    # Unbounded: 16 segments of 32 MiB kept after shmdt (512 MiB, under rlimits-only in the host's ipc
    # namespace, outliving the run), and 8192 queues of 16 KiB (128 MiB of kernel memory).
    view = watched(SYSV_IPC, 32 * MIB, 16, 8192, HOLD_S)
    assert "shmget: ENOSYS" in view.result.stdout, view.summary()
    assert "msgget: ENOSYS" in view.result.stdout, view.summary()
    assert_contained(view)


def test_a_memfd_written_but_never_mapped_counts_against_the_job(watched: Watch) -> None:
    # Unbounded: 4 x 64 MiB = 256 MiB of shmem pages that no process maps.
    view = watched(MEMFD, 4 * MEMORY_MB, HOLD_S)
    assert "memfd holds" in view.result.stdout, view.summary()
    assert view.result.outcome is Outcome.MEMORY_LIMIT, view.summary()
    assert_contained(view)


def test_xattrs_on_a_scratch_file_are_refused(watched: Watch) -> None:
    # Unbounded: 4096 values of 64 KiB = 256 MiB of kernel memory on one empty file.
    view = watched(XATTRS, 4096, HOLD_S)
    assert "setxattr: EOPNOTSUPP after 0" in view.result.stdout, view.summary()
    assert_contained(view)


def test_empty_files_stop_at_one_inode_bound_shared_by_the_writable_folders(
    watched: Watch, sandbox: Sandbox
) -> None:
    # Unbounded: up to 300000 files in each folder, about 1 KiB of kernel memory each (inode and
    # dentry), so 0.6-0.9 GiB. The memory cgroup would stop that too; the disk's inode bound stops it
    # first, at about a quarter of the job's memory. /dev/shm is the scratch disk's under bwrap only
    # (under rlimits-only it is the host's), so only there is it a third folder.
    inodes = Limits(memory_mb=MEMORY_MB).max_disk_inodes
    shm = ["/dev/shm"] if sandbox.isolation == Isolation.BWRAP else []
    view = watched(EMPTY_FILES, 300_000, HOLD_S, *shm)
    lines = view.result.stdout.splitlines()
    assert lines[-1].startswith("total "), view.summary()
    total = int(lines[-1].split()[1])
    # Every folder but the first stops at once: the bound is the disk's, not each folder's.
    assert all(line.endswith("then ENOSPC") for line in lines[:-1]), view.summary()
    assert inodes - 16 <= total <= inodes, view.summary()
    assert_contained(view)


def test_work_tmp_and_dev_shm_share_one_disk_budget(watched_bwrap: Watch) -> None:
    # Memory well above the disk, so that only the disk's size can stop the writes. Unbounded (a tmpfs
    # of max_disk_mb for each folder): 3 x 96 = 288 MiB.
    disk_mb, memory_mb = 96, 384
    view = watched_bwrap(DISK, disk_mb, HOLD_S, memory_mb=memory_mb, max_disk_mb=disk_mb)
    lines = view.result.stdout.splitlines()
    assert lines[-1].startswith("total "), view.summary()
    total = int(lines[-1].split()[1])
    assert disk_mb * MIB - MIB <= total <= disk_mb * MIB + MIB, view.summary()
    # tmpfs pages are charged to the job that wrote them.
    assert view.peak_bytes >= total, view.summary()
    # The interpreter's own 16 MiB on top of the disk.
    assert_contained(view, memory_mb * MIB, host_bytes=disk_mb * MIB + 16 * MIB)


def test_tcp_sockets_are_refused_so_no_connection_can_hold_the_hosts_tcp_memory(watched: Watch) -> None:
    # Unbounded before the refusal: 8 processes x 60 connections (RLIMIT_NOFILE is per process), never
    # accepted, each with an 8 MiB receive buffer, up to the host-wide net.ipv4.tcp_mem (2.2 GiB here,
    # after which every TCP socket of the host, Redis's included, is starved).
    view = watched(TCP_BUFFERS, 8, "backlog", HOLD_S)
    assert view.result.stdout.split("\n").count("socket: EACCES") == 8, view.summary()
    assert view.host_socket_rise_bytes <= CGROUP_MARGIN, view.summary()
    assert_contained(view)


def test_udp_buffers_over_loopback_stay_within_the_jobs_socket_limit(watched: Watch) -> None:
    # Unbounded: 8 processes x 60 sockets (RLIMIT_NOFILE is per process), each with an 8 MiB receive
    # buffer (net.core.rmem_max here is 4 MiB, doubled by the kernel), flooded and never read: 3.8 GiB.
    view = watched(UDP_BUFFERS, 8, HOLD_S)
    assert view.result.stdout.count("sockets") == 8, view.summary()
    # v1 charges UDP buffers to the job's socket counter (kmem.tcp), as it does TCP's.
    assert view.peak_tcp_bytes <= socket_buffer_limit(BUDGET) + CGROUP_MARGIN, view.summary()
    assert view.host_socket_rise_bytes <= socket_buffer_limit(BUDGET) + CGROUP_MARGIN, view.summary()
    assert_contained(view, host_bytes=BUDGET + socket_buffer_limit(BUDGET))


def test_unix_socket_buffers_count_against_the_job(watched: Watch) -> None:
    # Unbounded: 8 processes x ~30 pairs x 2 directions x 8 MiB (net.core.wmem_max here is 4 MiB,
    # doubled by the kernel) ~ 3.8 GiB, each process within RLIMIT_NOFILE.
    view = watched(UNIX_BUFFERS, 8, HOLD_S)
    assert "pairs" in view.result.stdout, view.summary()
    assert_contained(view)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="io_setup is called by its x86_64 number")
def test_linux_aio_contexts_are_refused(watched: Watch) -> None:
    # Unbounded: 64 contexts of 65536 events drain the host-wide fs.aio-max-nr (65536 here) for everyone.
    view = watched(IO_SETUP, 64, HOLD_S)
    assert "io_setup: ENOSYS" in view.result.stdout, view.summary()
    assert_contained(view)


def test_inotify_is_refused(watched: Watch) -> None:
    view = watched(INOTIFY)
    assert view.result.stdout == "inotify_init1: ENOSYS\n", view.summary()
    assert_contained(view)


def test_cpu_burnt_by_a_daemon_after_the_program_exits_is_counted(watched: Watch) -> None:
    view = watched(CPU_AFTER_EXIT)
    assert (view.result.outcome, view.result.stdout) == (Outcome.SUCCESS, "burnt\n"), view.summary()
    assert view.result.cpu_time >= 0.4, view.summary()
    assert_contained(view)


def test_memory_kb_counts_every_process_of_the_job(watched: Watch) -> None:
    view = watched(TWO_HOLDERS)
    assert view.result.outcome is Outcome.SUCCESS, view.summary()
    peaks_kb = [int(peak) for peak in view.result.stdout.split()]
    # Each process alone stays below 40 MiB (20 MiB and an interpreter); the job held both at once.
    assert view.result.memory_kb is not None, view.summary()
    assert max(peaks_kb) < 40 * 1024 <= view.result.memory_kb, view.summary()
    assert_contained(view)
