"""The system-call filter programs run under, compiled once to the BPF bytes bubblewrap loads."""

import errno
import os
import signal
import socket

import pyseccomp as seccomp

# Calls no program needs that reach into other processes, the kernel or the mount and
# namespace machinery; they fail with EPERM as if the program lacked the privilege.
REFUSED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
)

# Extended attributes (user.*, ACLs, security.*) are metadata no program here needs, and writing them
# reaches every filesystem's and security module's xattr code. EOPNOTSUPP is what a filesystem without
# xattrs answers, so `cp -a`, shutil.copy2 and tar carry on without them; reading and removing stay allowed.
XATTR_WRITES = ("setxattr", "lsetxattr", "fsetxattr")
# setxattrat (Linux 6.13) is newer than Debian 12's libseccomp 2.5.4, which cannot resolve the name; on
# x86_64 it is then refused by its number, 463. On another architecture with such a libseccomp it stays
# allowed: only the x86_64 number is written here (and checked by the tests, on a 6.18 kernel).
XATTR_WRITES_BY_NUMBER_ON_X86_64 = {"setxattrat": 463}

# System V IPC objects belong to the ipc namespace, not to a process: under rlimits-only that is the
# host's, where a program's segments, queues and semaphores would outlive its run and reach other
# jobs. ENOSYS is what a kernel without CONFIG_SYSVIPC answers; Python, glibc and multiprocessing use
# POSIX semaphores and shared memory (files in /dev/shm) instead. (The multiplexed `ipc` call exists
# only in the i386 ABI, which kills the program anyway.)
SYSV_IPC = (
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
)

# inotify and fanotify watch files for other processes' accesses: a side channel on the host's files
# under rlimits-only, and instances and watches are counted per user, not per run. ENOSYS, as a kernel
# built without them, makes watchers (tail -f, watchdog, glib) fall back to polling.
FILE_WATCHES = ("inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init", "fanotify_mark")

# Linux native AIO contexts come from one host-wide pool (fs.aio-max-nr) that a program could drain for
# everyone, and the code is rarely exercised. ENOSYS, as a kernel without CONFIG_AIO: libaio users fall
# back, and POSIX aio in glibc uses threads, not these calls.
LINUX_AIO = ("io_setup", "io_submit")

# Calls refused whole, each group with the errno it gets.
WHOLE_CALLS = (
    (REFUSED_SYSCALLS, errno.EPERM),
    (XATTR_WRITES, errno.EOPNOTSUPP),
    (SYSV_IPC, errno.ENOSYS),
    (FILE_WATCHES, errno.ENOSYS),
    (LINUX_AIO, errno.ENOSYS),
)

# clone() flags that create namespaces (linux/sched.h; os has them only from Python 3.12): only
# CLONE_NEWUSER works unprivileged, the others are refused as well for depth.
NAMESPACE_FLAGS = (
    0x10000000,  # CLONE_NEWUSER
    0x00020000,  # CLONE_NEWNS
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x08000000,  # CLONE_NEWIPC
    0x04000000,  # CLONE_NEWUTS
    0x02000000,  # CLONE_NEWCGROUP
)

# Socket families a program may open; others (vsock to the hypervisor, AF_ALG, AF_KEY, ...) are refused.
ALLOWED_SOCKET_FAMILIES = frozenset({socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK})

# socket()'s type argument carries the type in its low bits (SOCK_TYPE_MASK), flags above them.
SOCKET_TYPE_MASK = 0xF

# prctl(PR_SET_PDEATHSIG) with any signal but SIGKILL is refused. The program gets SIGKILL as its
# parent-death signal (kept across exec) before the filter is loaded: from bwrap's --die-with-parent
# (bwrap's pid 1 sets its own the same way), from the rlimits-only child setup, or, on the warm path,
# by itself under the filter its init loaded before forking it (docs/warm-start.md). Refused, the
# program cannot clear it or choose another signal; setting SIGKILL again changes nothing, and a
# process that sets it for itself only ends with its parent. PR_GET_PDEATHSIG and every other option
# stay allowed.
PR_SET_PDEATHSIG = 1


def build_seccomp_filter() -> bytes:
    """Compile the filter: allow by default, refuse the calls above, kill on foreign architectures."""
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # Only the native ABI is in the filter; i386 and x32 calls, which could dodge it, kill the program.
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for names, refusal in WHOLE_CALLS:
        for name in names:
            rules.add_rule(seccomp.ERRNO(refusal), name)
    _add_calls_unknown_to_libseccomp(rules)
    _add_process_rules(rules)
    _add_socket_rules(rules)
    with os.fdopen(os.memfd_create("seccomp-filter"), "w+b", buffering=0) as compiled:
        rules.export_bpf(compiled)
        compiled.seek(0)
        return compiled.read()


def _add_calls_unknown_to_libseccomp(rules: seccomp.SyscallFilter) -> None:
    """setxattrat by name where libseccomp knows it, else by its x86_64 number on x86_64."""
    refusal = seccomp.ERRNO(errno.EOPNOTSUPP)
    for name, number in XATTR_WRITES_BY_NUMBER_ON_X86_64.items():
        # An unknown name resolves to -1 (__NR_SCMP_ERROR); other negative numbers are libseccomp's own.
        if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) != -1:
            rules.add_rule(refusal, name)
        elif seccomp.system_arch() == seccomp.Arch.X86_64:
            rules.add_rule(refusal, number)


def _add_process_rules(rules: seccomp.SyscallFilter) -> None:
    """Namespaces by clone, clone3, kill(-1), personality and prctl, decided on their arguments."""
    refuse = seccomp.ERRNO(errno.EPERM)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes libc fall back to clone.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # kill(-1, ...) signals every process the uid may signal: without a pid namespace and a uid of
    # its own that includes the worker. The kernel reads pid as a 32-bit int, hence the mask.
    rules.add_rule(refuse, "kill", seccomp.Arg(0, seccomp.MASKED_EQ, 0xFFFFFFFF, 0xFFFFFFFF))
    # Personality changes (no ASLR, READ_IMPLIES_EXEC, ...) are refused; only PER_LINUX is allowed.
    rules.add_rule(refuse, "personality", seccomp.Arg(0, seccomp.NE, 0))
    # The kernel reads the option as a 32-bit int: the mask keeps high bits from slipping one past.
    # The signal is an unsigned long, compared whole.
    rules.add_rule(
        refuse,
        "prctl",
        seccomp.Arg(0, seccomp.MASKED_EQ, 0xFFFFFFFF, PR_SET_PDEATHSIG),
        seccomp.Arg(1, seccomp.NE, signal.SIGKILL),
    )


def _add_socket_rules(rules: seccomp.SyscallFilter) -> None:
    """EAFNOSUPPORT, as for a family the kernel lacks: socket() outside the allowed families, and
    socketpair() of any family but AF_UNIX, which creates its two sockets in the family's code (module
    autoloading included) before that family refuses the pair: without it, a way round socket()'s rule.
    EACCES for internet sockets other than datagrams (below)."""
    unsupported = seccomp.ERRNO(errno.EAFNOSUPPORT)
    highest = max(ALLOWED_SOCKET_FAMILIES)
    # A value with any of the high 32 bits set is above `highest` too, so refused whatever the kernel reads.
    rules.add_rule(unsupported, "socket", seccomp.Arg(0, seccomp.GT, highest))
    for family in range(highest):
        if family not in ALLOWED_SOCKET_FAMILIES:
            rules.add_rule(unsupported, "socket", seccomp.Arg(0, seccomp.EQ, family))
    rules.add_rule(unsupported, "socketpair", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    # Internet sockets of any type but datagrams (TCP, MPTCP, SCTP, raw) get EACCES, as for a type
    # the program may not create. A connection waiting in a listener's queue is charged to no cgroup
    # until it is accepted (the kernel gives a socket its memcg at accept()), so a job's own loopback
    # TCP could hold the host's TCP memory without bound (measured: 700 MiB from 32 processes with a
    # 64 MiB budget) and starve every TCP socket of the host, Redis's included. The kernel reads the
    # type as a 32-bit int whose low 4 bits are the type; the flags above them do not matter.
    denied = seccomp.ERRNO(errno.EACCES)
    for family in (socket.AF_INET, socket.AF_INET6):
        for kind in range(SOCKET_TYPE_MASK + 1):
            if kind != socket.SOCK_DGRAM:
                rules.add_rule(
                    denied,
                    "socket",
                    seccomp.Arg(0, seccomp.EQ, family),
                    seccomp.Arg(1, seccomp.MASKED_EQ, SOCKET_TYPE_MASK, kind),
                )
