"""The system-call filter programs run under, compiled once to the BPF bytes bubblewrap loads."""

import errno
import os
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


def build_seccomp_filter() -> bytes:
    """Compile the filter: allow by default, refuse the calls above, kill on foreign architectures."""
    refuse = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    # Only the native ABI is in the filter; i386 and x32 calls, which could dodge it, kill the program.
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for name in REFUSED_SYSCALLS:
        rules.add_rule(refuse, name)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes libc fall back to clone.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # kill(-1, ...) signals every process the uid may signal: without a pid namespace and a uid of
    # its own that includes the worker. The kernel reads pid as a 32-bit int, hence the mask.
    rules.add_rule(refuse, "kill", seccomp.Arg(0, seccomp.MASKED_EQ, 0xFFFFFFFF, 0xFFFFFFFF))
    # Personality changes (no ASLR, READ_IMPLIES_EXEC, ...) are refused; only PER_LINUX is allowed.
    rules.add_rule(refuse, "personality", seccomp.Arg(0, seccomp.NE, 0))
    unsupported = seccomp.ERRNO(errno.EAFNOSUPPORT)
    highest = max(ALLOWED_SOCKET_FAMILIES)
    rules.add_rule(unsupported, "socket", seccomp.Arg(0, seccomp.GT, highest))
    for family in range(highest):
        if family not in ALLOWED_SOCKET_FAMILIES:
            rules.add_rule(unsupported, "socket", seccomp.Arg(0, seccomp.EQ, family))
    with os.fdopen(os.memfd_create("seccomp-filter"), "w+b", buffering=0) as compiled:
        rules.export_bpf(compiled)
        compiled.seek(0)
        return compiled.read()
