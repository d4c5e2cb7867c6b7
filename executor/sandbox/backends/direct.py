"""Running a program straight on the host, with only rlimits, seccomp and its own uid around it.

The fallback when bubblewrap does not work: the program sees the host's files (as its uid may),
network and processes; docs/sandbox.md spells out what that allows.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack

from executor.sandbox.launch import (
    ProcessEnd,
    ReapedOnce,
    Run,
    Stdio,
    end_of,
    process_allowance,
    program_environment,
    program_user,
    spawn,
)
from executor.sandbox.processes import kill_strays, send_kill, stat_fields
from executor.sandbox.rlimits import child_setup, program_rlimits


def start(run: Run, stdio: Stdio, cleanup: ExitStack) -> "DirectProcess":
    """Spawn the interpreter in the run's scratch disk, or a fresh directory that `cleanup` removes."""
    sandbox = run.sandbox
    if run.scratch is not None:
        workdir, tmpdir = run.scratch.folder("work"), run.scratch.folder("tmp")
    else:
        workdir = tmpdir = tempfile.mkdtemp(prefix="executor-run-")
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    user = program_user(sandbox)
    for path, data in run.files:
        _write_file(workdir, path, data, user)
    if user is not None:
        os.chown(workdir, *user)
    environment = program_environment(run.language, home=workdir, tmpdir=tmpdir)
    rlimits = program_rlimits(
        run.limits, process_allowance(sandbox, 0), memory_in_cgroup=run.cgroup is not None
    )
    procs_fds = []
    for path in run.cgroup.procs_files if run.cgroup is not None else ():
        procs_fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        cleanup.callback(os.close, procs_fds[-1])
    baseline_kb = _peak_rss_kb()
    popen = spawn(
        run.command,
        env=environment,
        cwd=workdir,
        stdio=stdio,
        pass_fds=(),
        child_setup=child_setup(rlimits, sandbox.seccomp_filter, procs_fds),
        user=user,
    )
    process = DirectProcess(popen, sandbox.program_uid, baseline_kb)
    cleanup.callback(process.close)
    return process


def _write_file(workdir: str, path: str, data: bytes, user: tuple[int, int] | None) -> None:
    """Write a file of the job under `workdir`, making its folders, all owned by the program's uid.

    `path` is plain and relative (executor/jobs/files.py), and the directory is the job's own: fresh
    and not yet seen by any program, or holding what the runner carried from the compile, which is
    never a link (`scratch.carry_work`).
    """
    folder = workdir
    for part in path.split("/")[:-1]:
        folder = os.path.join(folder, part)
        if not os.path.isdir(folder):
            os.mkdir(folder, 0o755)
            if user is not None:
                os.chown(folder, *user)
    target = os.path.join(workdir, path)
    with open(target, "wb") as file:
        file.write(data)
    if user is not None:
        os.chown(target, *user)


def _peak_rss_kb() -> int:
    """This process's peak resident memory, which a child forked from it inherits in ru_maxrss."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    return 0


class DirectProcess(ReapedOnce):
    """The interpreter as our direct child, leading its own process group and session."""

    def __init__(self, popen: "subprocess.Popen[bytes]", program_uid: int | None, baseline_kb: int) -> None:
        self._popen = popen
        self._pidfd = os.pidfd_open(popen.pid)
        # A uid of its own is the program's alone: everything running as it is the run's to kill.
        self._uid = os.geteuid() if program_uid is None else program_uid
        self._whole_uid = program_uid is not None
        self._baseline_kb = baseline_kb
        self._since_ticks = int(stat_fields(popen.pid)[19])
        self._strays_cpu_time = 0.0

    @property
    def pidfd(self) -> int:
        """A pidfd of the interpreter, readable once it has exited."""
        return self._pidfd

    @property
    def listeners(self) -> Mapping[int, Callable[[bytes], None]]:
        """Nothing to read besides the standard streams."""
        return {}

    def kill(self) -> None:
        """SIGKILL the interpreter and its process group (valid: the leader is not reaped yet)."""
        send_kill(self._pidfd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)

    def kill_tree(self) -> None:
        """Kill the group, then sweep the process table for what left it (setsid, double fork)."""
        self.kill()
        self._strays_cpu_time += kill_strays(self._popen.pid, self._since_ticks, self._uid, self._whole_uid)

    def end_program(self) -> None:
        """The interpreter is our child: we reap it, so killing the tree loses none of its accounting."""
        self.kill_tree()

    def _release(self) -> None:
        os.close(self._pidfd)

    def _collect(self) -> ProcessEnd:
        """Kill, reap the interpreter, then reap its killed descendants, which reparent to us."""
        self.kill_tree()
        _, status, usage = os.wait4(self._popen.pid, 0)
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        self._strays_cpu_time += kill_strays(self._popen.pid, self._since_ticks, self._uid, self._whole_uid)
        return_code, signal_number = end_of(status)
        # ru_maxrss of a child forked from the worker starts at the worker's own resident size:
        # only a peak above that is the program's; below it the true figure is unknown.
        memory_kb = usage.ru_maxrss if usage.ru_maxrss > self._baseline_kb else None
        cpu_time = usage.ru_utime + usage.ru_stime + self._strays_cpu_time
        return ProcessEnd(return_code, signal_number, cpu_time, memory_kb)
