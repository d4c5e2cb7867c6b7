"""executor-start (start.c), built once per worker process: the one exec between the worker's vfork and
bubblewrap, setting the rlimits, the uid, gid and groups and NoNewPrivs that `prlimit` and `setpriv`
set in two execs.

Each of those is a dynamically linked exec, about 1 ms on the development VM; executor-start has
no libc and takes about 0.1 ms. It is compiled from its source with the host's C compiler when the
worker detects its sandbox, kept in a sealed memfd of the worker (nothing on disk for anyone to
replace or to clean up), and executed by its /proc path. Where it cannot be built (no compiler, an
architecture start.c does not know, memfds that may not be executed) or does not pass its own check,
runs keep the prlimit → setpriv chain, with the same settings (`tests/sandbox/test_rlimits.py`).
"""

import fcntl
import logging
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

_logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("start.c")
# No libc, no start files: start.c makes its own system calls and has its own entry point.
CFLAGS = (
    "-O2",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-pie",
    "-no-pie",
)
BUILD_TIMEOUT_S = 60.0
# linux/memfd.h, which Python 3.11's os does not name: an executable memfd where vm.memfd_noexec would
# make it non-executable (Linux 6.3+; older kernels reject the flag, so it is retried without).
MFD_EXEC = 0x0010
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# What the check runs: the helper must set a limit and execute a program that exits 0.
CHECK_PROGRAM = "/usr/bin/true"


def starter_path(fd: int) -> str:
    """The path a child of this process executes the helper by (the worker's own fd, which the
    child's close_fds does not touch; computed per spawn, as the worker's pid may change)."""
    return f"/proc/{os.getpid()}/fd/{fd}"


def build_starter() -> int | None:
    """Compile executor-start into a sealed, close-on-exec memfd and check it; its fd, or None (logged)
    where runs must keep the prlimit → setpriv chain."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        _logger.warning("no C compiler: programs start through prlimit and setpriv, about 2 ms more per run")
        return None
    try:
        binary = _compile(compiler)
        fd = _sealed_memfd(binary)
    except (OSError, subprocess.SubprocessError) as error:
        _logger.warning(
            "could not build executor-start (%s): programs start through prlimit and setpriv", error
        )
        return None
    problem = _check(fd)
    if problem is None:
        return fd
    os.close(fd)
    _logger.warning(
        "executor-start does not work here (%s): programs start through prlimit and setpriv", problem
    )
    return None


def _compile(compiler: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="executor-start-") as directory:
        output = os.path.join(directory, "executor-start")
        subprocess.run(
            [compiler, *CFLAGS, "-o", output, str(SOURCE)],
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
        )
        return Path(output).read_bytes()


def _sealed_memfd(binary: bytes) -> int:
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("executor-start", flags | MFD_EXEC)
    except OSError:
        fd = os.memfd_create("executor-start", flags)
    try:
        view = memoryview(binary)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except OSError:
        os.close(fd)
        raise
    return fd


def _check(fd: int) -> str | None:
    """Run the helper once on CHECK_PROGRAM, without switching user: why it failed, or None."""
    argv = [starter_path(fd), "-", "-", "1", str(resource.RLIMIT_CORE), "0", "0", CHECK_PROGRAM]
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode != 0:
        return f"exit status {done.returncode}: {done.stderr.decode(errors='replace').strip()}"
    return None
