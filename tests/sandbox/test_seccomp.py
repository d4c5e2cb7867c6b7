"""Every rule of the seccomp filter, run for real under both isolation levels.

Each refusal is checked twice: under the real filter the call gets exactly the errno the rule
names, and under the same compiled filter with every errno it returns replaced by MARK it gets
MARK, an errno the kernel never gives for these calls. The second run proves the answer came from
the filter and not from the kernel refusing the call by itself (an unprivileged caller gets EPERM
for mount, reboot, init_module... with or without the filter), so each test fails if its rule is
lost. Calls the rules allow are shown to work. The numbers are x86_64's.
"""

import errno
import platform
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pyseccomp as seccomp
import pytest

from executor.sandbox import Limits, Outcome, Program, RunResult, Sandbox, run_program
from executor.sandbox.seccomp import (
    FILE_WATCHES,
    LINUX_AIO,
    NAMESPACE_FLAGS,
    REFUSED_SYSCALLS,
    SYSV_IPC,
    XATTR_WRITES,
    build_seccomp_filter,
)

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the probes use x86_64 numbers")

Run = Callable[..., RunResult]

# The errno marked filters answer with: "name not unique on network", which no call here can return.
MARK = errno.ENOTUNIQ
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ACTION = 0xFFFF0000
INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
SETXATTRAT = 463  # x86_64, Linux 6.13; unknown to libseccomp 2.5
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_SET_NAME = 1, 2, 15
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_VSOCK = 1, 2, 10, 16, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3

# What every probe starts with: syscall(number, *args) and call(function, *args) print-ready
# answers, "OK" or the errno's name.
PRELUDE = """
import ctypes, errno, os, signal, socket, sys
libc = ctypes.CDLL(None, use_errno=True)

def syscall(number, *args):
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(arg) for arg in args))
    return errno.errorcode[ctypes.get_errno()] if result == -1 else "OK"

def call(function, *args, **options):
    try:
        function(*args, **options)
    except OSError as error:
        return errno.errorcode[error.errno]
    return "OK"

kept = []  # buffers passed by address, alive until the program ends

def address(data):
    kept.append(ctypes.create_string_buffer(data))
    return ctypes.addressof(kept[-1])

"""

# clone(flags | SIGCHLD) with no stack: a fork where it is allowed; the child leaves at once.
CLONE = """
pid = libc.syscall(ctypes.c_long({number}), ctypes.c_long({flags} | signal.SIGCHLD), *[ctypes.c_long(0)] * 4)
if pid == 0:
    os._exit(0)
if pid > 0:
    os.waitpid(pid, 0)
print("OK" if pid > 0 else errno.errorcode[ctypes.get_errno()])
"""

# A foreign-ABI getpid made from a thread: the whole program must die (SIGSYS), not only the thread
# (libseccomp's default for a foreign ABI), after which the main thread would carry on.
FOREIGN_CALL_IN_A_THREAD = """
import ctypes, mmap, threading
{call}
thread = threading.Thread(target=lambda: print(call()), daemon=True)
thread.start()
thread.join(2)
print("survived")
"""
# getpid (20 in the i386 table) through `int 0x80`, from a page of machine code: mov eax, 20;
# int 0x80; ret.
I386_GETPID = """
memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
memory.write(bytes.fromhex("b814000000cd80c3"))
call = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(memory)))
"""
# getpid through the x32 ABI: a number the native filter does not describe.
X32_GETPID = "call = lambda: ctypes.CDLL(None).syscall(0x40000000 + 39)"

SYSCALLS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return ctypes.get_errno() if result == -1 else 0
print("ptrace", errno_of(libc.ptrace(0, 0, None, None)))
print("unshare", errno_of(libc.unshare(0x10000000)))
print("mount", errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
"""

# What programs really do: processes, threads, pools with POSIX semaphores and shared memory in
# /dev/shm, an event loop with a subprocess, temporary files, sqlite, and copies that carry
# extended attributes where they can (shutil.copy2, cp -a).
WORKLOAD = """
import asyncio, multiprocessing, shutil, sqlite3, subprocess, tempfile, threading
from multiprocessing import shared_memory


def square(number):
    return number * number


async def gather():
    process = await asyncio.create_subprocess_exec("/bin/sh", "-c", "echo async", stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    slept = await asyncio.gather(*(asyncio.sleep(0.01, result=n) for n in range(3)))
    return sum(slept), out.decode().strip()


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print("pool", sum(pool.map(square, range(10))))
    with multiprocessing.Lock():
        print("lock", multiprocessing.Value("i", 7).value)
    memory = shared_memory.SharedMemory(create=True, size=16)
    memory.buf[0] = 42
    print("shared_memory", memory.buf[0])
    memory.close()
    memory.unlink()
    results = []
    threads = [threading.Thread(target=results.append, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("threads", sorted(results))
    shell = subprocess.run(["/bin/sh", "-c", "echo hi"], capture_output=True, text=True, check=True)
    print("subprocess", shell.stdout.strip())
    with tempfile.TemporaryDirectory() as directory:
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as scratch:
            scratch.write("x")
        shutil.copy2(scratch.name, directory + "/copy2")
        copy = subprocess.run(["cp", "-a", scratch.name, directory + "/cp-a"], capture_output=True, text=True)
        copies = [open(directory + name).read() for name in ("/copy2", "/cp-a")]
        print("copies", *copies, repr(copy.stderr))
    print("asyncio", asyncio.run(gather()))
    database = sqlite3.connect(":memory:")
    database.execute("create table t (n integer)")
    database.executemany("insert into t values (?)", [(n,) for n in range(5)])
    print("sqlite3", database.execute("select sum(n) from t").fetchone()[0])
"""
WORKLOAD_OUTPUT = (
    "pool 285\nlock 7\nshared_memory 42\nthreads [0, 1, 2]\nsubprocess hi\ncopies x x ''\n"
    "asyncio (3, 'async')\nsqlite3 10\n"
)


def number(name: str) -> int:
    """The system call's number, from libseccomp's table."""
    resolved: int = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    assert resolved >= 0, f"libseccomp does not know {name}"
    return resolved


def with_errnos_marked(compiled: bytes) -> bytes:
    """The same filter, with every SECCOMP_RET_ERRNO it returns made MARK."""
    marked = bytearray(compiled)
    for offset in range(0, len(marked), INSTRUCTION.size):
        code, jump_true, jump_false, k = INSTRUCTION.unpack_from(marked, offset)
        if code == BPF_RET_K and k & SECCOMP_RET_ACTION == SECCOMP_RET_ERRNO:
            INSTRUCTION.pack_into(marked, offset, code, jump_true, jump_false, SECCOMP_RET_ERRNO | MARK)
    return bytes(marked)


def errnos_returned(compiled: bytes) -> set[int]:
    """The errnos the filter's SECCOMP_RET_ERRNO returns carry."""
    return {
        k & 0xFFFF
        for code, _, _, k in INSTRUCTION.iter_unpack(compiled)
        if code == BPF_RET_K and k & SECCOMP_RET_ACTION == SECCOMP_RET_ERRNO
    }


def runner(sandbox: Sandbox) -> Run:
    """run(code, **limits) in this sandbox."""

    def run(code: str, **limits: Any) -> RunResult:
        return run_program(Program(code), Limits(**{"wall_time_s": 5.0, **limits}), sandbox)

    return run


@pytest.fixture
def run_marked(sandbox: Sandbox) -> Run:
    """Run code in the parametrized sandbox under the filter with its errnos marked."""
    return runner(replace(sandbox, seccomp_filter=with_errnos_marked(sandbox.seccomp_filter)))


@pytest.fixture
def run_unfiltered(sandbox: Sandbox) -> Run:
    """Run code in the parametrized sandbox without any filter: what the kernel itself answers."""
    return runner(replace(sandbox, seccomp_filter=b""))


def answers(run: Run, code: str) -> list[str]:
    """What the probe printed, a word at a time."""
    result = run(PRELUDE + code)
    assert result.outcome is Outcome.SUCCESS, result.stderr
    return result.stdout.split()


def assert_refused(run: Run, run_marked: Run, code: str, expected: str) -> None:
    """Every call the probe prints is refused with `expected`, and by the filter."""
    refused = answers(run, code)
    assert refused and set(refused) == {expected}
    assert set(answers(run_marked, code)) == {errno.errorcode[MARK]}


def test_the_filter_compiles_with_the_errnos_of_its_rules() -> None:
    compiled = build_seccomp_filter()
    assert compiled and len(compiled) % INSTRUCTION.size == 0
    assert len(compiled) // INSTRUCTION.size <= 4096  # BPF_MAXINSNS
    assert errnos_returned(compiled) == {
        errno.EPERM,
        errno.EOPNOTSUPP,
        errno.ENOSYS,
        errno.EAFNOSUPPORT,
        errno.EACCES,
    }
    assert errnos_returned(with_errnos_marked(compiled)) == {MARK}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("print('hello')", "hello\n"),
        (
            "import subprocess\n"
            "command = 'echo hi; echo $((6 * 7)) | cat'\n"
            "shell = subprocess.run(['/bin/sh', '-c', command], capture_output=True)\n"
            "print(shell.stdout.decode(), end='')",
            "hi\n42\n",
        ),
        (WORKLOAD, WORKLOAD_OUTPUT),
    ],
    ids=["hello-world", "shell", "workload"],
)
def test_programs_and_a_real_workload_run_under_the_filter(run: Run, code: str, expected: str) -> None:
    result = run(code, wall_time_s=20.0)
    assert (result.outcome, result.stderr) == (Outcome.SUCCESS, "")
    assert result.stdout == expected


@pytest.mark.parametrize("name", REFUSED_SYSCALLS)
def test_a_refused_call_gets_eperm(run: Run, run_marked: Run, name: str) -> None:
    # Zero arguments. Without the filter (measured on this kernel) unshare(0) succeeds, most give
    # EINVAL, EFAULT, ESRCH or ENOENT, but pivot_root, fsmount, swapon... give EPERM by themselves
    # and the module and kexec calls ENOSYS (not built in): the marked run is what shows the rule.
    assert_refused(run, run_marked, f"print(syscall({number(name)}))", "EPERM")


def test_ptrace_unshare_and_mount_are_refused(run: Run) -> None:
    result = run(SYSCALLS)
    assert result.stdout == "ptrace 1\nunshare 1\nmount 1\n"


XATTR_PROBES = {
    "setxattr": "print(call(os.setxattr, 'probe', 'user.probe', b'1'))",
    "lsetxattr": "print(call(os.setxattr, 'probe', 'user.probe', b'1', follow_symlinks=False))",
    "fsetxattr": "print(call(os.setxattr, os.open('probe', os.O_RDONLY), 'user.probe', b'1'))",
    # setxattrat(AT_FDCWD, "probe", 0, "user.probe", &{value, size 1, flags 0}, sizeof): valid
    # arguments, so that without the rule the kernel would set the attribute.
    "setxattrat": (
        "value = ctypes.create_string_buffer(b'1')\n"
        "xattr_args = (ctypes.c_uint64 * 2)(ctypes.addressof(value), 1)\n"
        f"print(syscall({SETXATTRAT}, -100, address(b'probe'), 0, address(b'user.probe'),"
        " ctypes.addressof(xattr_args), 16))"
    ),
}


def test_every_xattr_write_is_probed() -> None:
    assert set(XATTR_PROBES) == {*XATTR_WRITES, "setxattrat"}


@pytest.mark.parametrize("name", XATTR_PROBES)
def test_an_xattr_write_gets_eopnotsupp(run: Run, run_marked: Run, name: str) -> None:
    # EOPNOTSUPP and ENOTSUP are one number (95) on Linux; Python names it ENOTSUP. Without the
    # filter all four writes succeed, on /work's tmpfs and on the host's ext4 (measured).
    code = "open('probe', 'w').close()\n" + XATTR_PROBES[name]
    assert_refused(run, run_marked, code, "ENOTSUP")


def test_xattrs_can_still_be_read_and_removed(run_marked: Run) -> None:
    code = (
        "open('probe', 'w').close()\n"
        "print(call(os.listxattr, 'probe'), call(os.getxattr, 'probe', 'user.probe'),"
        " call(os.removexattr, 'probe', 'user.probe'))"
    )
    listed, got, removed = answers(run_marked, code)
    assert listed == "OK"
    assert errno.errorcode[MARK] not in (got, removed)


@pytest.mark.parametrize("name", SYSV_IPC)
def test_a_sysv_ipc_call_gets_enosys(run: Run, run_marked: Run, name: str) -> None:
    # Without the filter (measured under bwrap, in its own ipc namespace): EINVAL, ENOMEM, E2BIG,
    # ENOMSG, and msgget(IPC_PRIVATE, 0) makes a queue; never ENOSYS (CONFIG_SYSVIPC=y here).
    assert_refused(run, run_marked, f"print(syscall({number(name)}))", "ENOSYS")


@pytest.mark.parametrize("name", FILE_WATCHES)
def test_an_inotify_or_fanotify_call_gets_enosys(run: Run, run_marked: Run, name: str) -> None:
    # Without the filter inotify_init() gives an fd, fanotify_init(0, 0) EPERM unprivileged.
    assert_refused(run, run_marked, f"print(syscall({number(name)}))", "ENOSYS")


@pytest.mark.parametrize("name", LINUX_AIO)
def test_a_linux_aio_call_gets_enosys(run: Run, run_marked: Run, name: str) -> None:
    # Without the filter io_setup(0, NULL) gives EINVAL, io_submit(0, 0, NULL) EINVAL.
    assert_refused(run, run_marked, f"print(syscall({number(name)}))", "ENOSYS")


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS, ids=hex)
def test_clone_with_a_namespace_flag_is_refused(run: Run, run_marked: Run, flag: int) -> None:
    # Without the filter CLONE_NEWUSER succeeds; the others give EPERM unprivileged.
    code = CLONE.format(number=number("clone"), flags=flag)
    assert_refused(run, run_marked, code, "EPERM")


def test_clone_without_namespace_flags_works(run: Run) -> None:
    # A bare clone(SIGCHLD), then glibc's fork (clone with CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID).
    code = (
        CLONE.format(number=number("clone"), flags=0)
        + "pid = os.fork()\nos.waitpid(pid, 0) if pid else os._exit(0)\nprint('OK')"
    )
    assert answers(run, code) == ["OK", "OK"]


def test_clone3_gets_enosys_and_threads_still_start(run: Run, run_marked: Run) -> None:
    # Without the filter clone3(NULL, 0) gives EINVAL (a size below the smallest struct).
    assert_refused(run, run_marked, f"print(syscall({number('clone3')}, 0, 0))", "ENOSYS")
    code = "import threading\nthread = threading.Thread(target=print, args=('OK',))\nthread.start()"
    assert answers(run, code) == ["OK"]


@pytest.mark.parametrize("pid", [-1, 0xFFFFFFFF, 0x5_FFFFFFFF], ids=["-1", "32-bit", "high-bits"])
def test_kill_minus_one_is_refused(run: Run, run_marked: Run, pid: int) -> None:
    # Signal 0 only checks. Without the filter kill(-1, 0) succeeds under rlimits-only (other
    # processes of the uid) and gives ESRCH under bwrap (it skips the caller and pid 1, all the
    # namespace holds). The kernel reads each of these pids as -1.
    assert_refused(run, run_marked, f"print(syscall({number('kill')}, {pid}, 0))", "EPERM")


def test_a_signal_to_itself_or_its_group_is_allowed(run: Run) -> None:
    code = f"print(syscall({number('kill')}, os.getpid(), 0), syscall({number('kill')}, 0, 0))"
    assert answers(run, code) == ["OK", "OK"]


@pytest.mark.parametrize(
    "persona", [0x0040000, 0x0400000, 0xFFFFFFFF], ids=["no-aslr", "read-implies-exec", "query"]
)
def test_a_personality_change_is_refused(run: Run, run_marked: Run, persona: int) -> None:
    # Without the filter each succeeds (and returns the previous persona).
    assert_refused(run, run_marked, f"print(syscall({number('personality')}, {persona}))", "EPERM")


def test_personality_per_linux_is_allowed(run: Run) -> None:
    assert answers(run, f"print(syscall({number('personality')}, 0))") == ["OK"]


@pytest.mark.parametrize(
    "family",
    [5, 15, 17, 38, AF_VSOCK, 46, (1 << 32) | AF_VSOCK],
    ids=["appletalk", "key", "packet", "alg", "vsock", "mctp", "vsock-high-bits"],
)
def test_a_socket_of_another_family_gets_eafnosupport(run: Run, run_marked: Run, family: int) -> None:
    # Without the filter (measured): EPERM for AF_PACKET (no CAP_NET_RAW), ENODEV for AF_VSOCK (no
    # vsock transport on this machine), EAFNOSUPPORT for the families not built in, the filter's
    # errno too, hence the marked run. The kernel reads the last value as AF_VSOCK.
    code = f"print(syscall({number('socket')}, {family}, {SOCK_DGRAM}, 0))"
    assert_refused(run, run_marked, code, "EAFNOSUPPORT")


@pytest.mark.parametrize(
    ("family", "kind"),
    [(AF_UNIX, SOCK_STREAM), (AF_INET, SOCK_DGRAM), (AF_INET6, SOCK_DGRAM), (AF_NETLINK, SOCK_RAW)],
    ids=["unix", "inet", "inet6", "netlink"],
)
def test_a_socket_of_an_allowed_family_opens(run: Run, family: int, kind: int) -> None:
    assert answers(run, f"print(call(socket.socket, {family}, {kind}))") == ["OK"]


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        (AF_INET, SOCK_STREAM),
        (AF_INET6, SOCK_STREAM),
        (AF_INET, SOCK_STREAM | 0o4000 | 0o2000000),  # SOCK_NONBLOCK | SOCK_CLOEXEC
        (AF_INET, (1 << 32) | SOCK_STREAM),  # the kernel reads a 32-bit int
        (AF_INET, SOCK_RAW),
        (AF_INET6, 5),  # SOCK_SEQPACKET (SCTP)
    ],
    ids=["tcp", "tcp6", "tcp-with-flags", "tcp-high-bits", "raw", "seqpacket6"],
)
def test_an_internet_socket_other_than_datagrams_gets_eacces(
    run: Run, run_marked: Run, family: int, kind: int
) -> None:
    # Without the filter a TCP socket opens; the buffers of its connections not yet accepted would be
    # charged to no cgroup (test_resource_attacks.py).
    code = f"print(syscall({number('socket')}, {family}, {kind}, 0))"
    assert_refused(run, run_marked, code, "EACCES")


@pytest.mark.parametrize(
    "family", [AF_INET, AF_INET6, AF_NETLINK, AF_VSOCK], ids=["inet", "inet6", "netlink", "vsock"]
)
def test_socketpair_of_another_family_gets_eafnosupport(run: Run, run_marked: Run, family: int) -> None:
    # Without the filter the kernel creates the sockets, then answers EOPNOTSUPP (ENOTSUP), or
    # ESOCKTNOSUPPORT for a netlink stream.
    code = f"print(syscall({number('socketpair')}, {family}, {SOCK_STREAM}, 0, address(bytes(8))))"
    assert_refused(run, run_marked, code, "EAFNOSUPPORT")


def test_socketpair_of_unix_works(run: Run) -> None:
    assert answers(run, "print(call(socket.socketpair, socket.AF_UNIX))") == ["OK"]


@pytest.mark.parametrize(
    "option", [PR_SET_PDEATHSIG, (1 << 32) | PR_SET_PDEATHSIG], ids=["plain", "high-bits"]
)
def test_prctl_set_pdeathsig_is_refused(run: Run, run_marked: Run, option: int) -> None:
    # Without the filter it succeeds; the kernel reads the second option as PR_SET_PDEATHSIG too.
    assert_refused(run, run_marked, f"print(syscall({number('prctl')}, {option}, 15))", "EPERM")


def test_prctl_set_pdeathsig_to_sigkill_is_allowed_and_changes_nothing(run: Run) -> None:
    """The warm path's program sets it under its init's filter; anywhere, it is the signal it has."""
    code = (
        f"print(syscall({number('prctl')}, {PR_SET_PDEATHSIG}, 9))\n"
        "death_signal = ctypes.c_int(-1)\n"
        f"syscall({number('prctl')}, {PR_GET_PDEATHSIG}, ctypes.addressof(death_signal))\n"
        "print(death_signal.value)\n"
    )
    assert answers(run, code) == ["OK", "9"]


def test_other_prctl_options_work_and_the_death_signal_set_before_the_filter_stays(run: Run) -> None:
    code = (
        "death_signal = ctypes.c_int(-1)\n"
        f"print(syscall({number('prctl')}, {PR_GET_PDEATHSIG}, ctypes.addressof(death_signal)))\n"
        "print(death_signal.value)\n"
        f"print(syscall({number('prctl')}, {PR_SET_NAME}, address(b'probe')))"
    )
    # SIGKILL when its parent dies, set before the filter: by bwrap's --die-with-parent (the parent
    # is pid 1), by the child setup under rlimits-only (the worker).
    assert answers(run, code) == ["OK", "9", "OK"]


@pytest.mark.parametrize("call", [X32_GETPID, I386_GETPID], ids=["x32", "i386"])
def test_a_foreign_architecture_system_call_kills_the_program(
    run: Run, run_unfiltered: Run, call: str
) -> None:
    code = FOREIGN_CALL_IN_A_THREAD.format(call=call)
    result = run(code)
    assert (result.outcome, result.signal, result.stdout) == (Outcome.FAILED, "SIGSYS", "")
    # Without the filter: x32 is not built into this kernel (-1, ENOSYS), i386 answers the pid.
    unfiltered = run_unfiltered(code)
    assert (unfiltered.outcome, unfiltered.stdout.split()[-1]) == (Outcome.SUCCESS, "survived")
