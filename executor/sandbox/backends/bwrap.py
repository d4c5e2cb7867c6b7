"""Running a program under bubblewrap: its command line and its reports; the only module that knows bwrap."""

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack

from executor.languages import Language
from executor.sandbox.cgroups import JobCgroup
from executor.sandbox.isolation import Sandbox
from executor.sandbox.launch import (
    ProcessEnd,
    ReapedOnce,
    Run,
    Stdio,
    end_of,
    memfd_holding,
    process_allowance,
    program_environment,
    program_user,
    spawn,
)
from executor.sandbox.processes import children_of, kill_strays, send_kill, stat_fields
from executor.sandbox.rlimits import exec_prefix, program_rlimits
from executor.sandbox.scratch import split_sizes
from executor.sandbox.starter import starter_path

SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_HOSTNAME = "sandbox"
WORK_DIR = "/work"
# Top-level directories that merged-/usr systems make symlinks into /usr; shown as on the host.
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The devices a program may use, bound from the host. Not `--dev`: it adds /dev/pts and /dev/tty,
# which a program without a terminal does not need, and its devpts mount makes bwrap create a
# second user namespace, half a millisecond per run.
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEVICE_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
# RLIMIT_NPROC and the run's cgroup count bwrap's own processes too: the monitor and pid 1.
BWRAP_PROCESSES = 2
_SIGNALS = frozenset(signal.valid_signals())
# A warm program's command line is written over the zygote's arguments, the last of which is this much
# padding: longer command lines are cut there.
ZYGOTE_COMMAND_LINE_ROOM = 4096


def installed_path() -> str:
    """Where bubblewrap is on this host's PATH; "bwrap" (which runs nothing) where it is not."""
    return shutil.which("bwrap") or "bwrap"


def is_installed(path: str) -> bool:
    """Whether `path` is a bubblewrap this process may run."""
    return os.access(path, os.X_OK)


def start(run: Run, stdio: Stdio, cleanup: ExitStack) -> "BwrapProcess":
    """Spawn bwrap with the run's files and the filter passed as fds; `cleanup` closes what this opens."""
    file_fds = [memfd_holding("file", data, cleanup) for _, data in run.files]
    pass_fds = list(file_fds)
    seccomp_args: list[str] = []
    if run.sandbox.seccomp_filter:
        seccomp_fd = memfd_holding("seccomp", run.sandbox.seccomp_filter, cleanup)
        pass_fds.append(seccomp_fd)
        seccomp_args = ["--seccomp", str(seccomp_fd)]
    status_read, status_write = os.pipe2(os.O_CLOEXEC)
    cleanup.callback(os.close, status_read)
    block_args: list[str] = []
    if run.cgroup is not None:
        # pid 1 waits on this pipe before it forks the program, until both bwrap processes are in the cgroup.
        block_read, block_write = os.pipe2(os.O_CLOEXEC)
        cleanup.callback(os.close, block_write)
        pass_fds.append(block_read)
        block_args = ["--block-fd", str(block_read)]
    # A program on the host by its real path (a symlink into a directory the sandbox does not show
    # breaks); one in the working directory (a compiled program) as it is.
    program, *program_args = run.command
    executable = os.path.realpath(program) if os.path.isabs(program) else program
    rlimits = program_rlimits(
        run.limits, process_allowance(run.sandbox, BWRAP_PROCESSES), memory_in_cgroup=run.cgroup is not None
    )
    argv = [
        *exec_prefix(rlimits, program_user(run.sandbox), _starter(run.sandbox)),
        run.sandbox.bwrap_path,
        *_namespaces(run.language),
        *_filesystem(executable, run, file_fds),
        *seccomp_args,
        *block_args,
        "--json-status-fd",
        str(status_write),
        "--",
        executable,
        *program_args,
    ]
    try:
        popen = spawn(argv, env={}, cwd="/", stdio=stdio, pass_fds=[*pass_fds, status_write])
    finally:
        os.close(status_write)
        if block_args:
            os.close(block_read)
    uid = os.geteuid() if run.sandbox.program_uid is None else run.sandbox.program_uid
    process = BwrapProcess(popen, status_read, uid)
    cleanup.callback(process.close)
    if run.cgroup is not None:
        process.join_before_start(run.cgroup, block_write, run.limits.wall_time_s)
    return process


def _starter(sandbox: Sandbox) -> str | None:
    """The path of the worker's executor-start, or None where runs use prlimit and setpriv."""
    return None if sandbox.starter_fd is None else starter_path(sandbox.starter_fd)


def _namespaces(
    language: Language, uid: int = SANDBOX_UID, gid: int = SANDBOX_GID, capabilities: str = "--cap-drop"
) -> list[str]:
    """A new namespace of every kind, a program's user in it with no capabilities (or, for a zygote,
    uid 0 with every capability: `capabilities` "--cap-add"), a clean environment, and death with
    the worker."""
    variables = program_environment(language, home=WORK_DIR, tmpdir="/tmp")
    environment = [arg for name, value in variables.items() for arg in ("--setenv", name, value)]
    return [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        capabilities,
        "ALL",
        "--uid",
        str(uid),
        "--gid",
        str(gid),
        "--hostname",
        SANDBOX_HOSTNAME,
        "--clearenv",
        *environment,
    ]


def _filesystem(executable: str, run: Run, file_fds: list[int]) -> list[str]:
    """/usr read-only, a fresh /proc, a few devices, size-bounded /tmp, /dev/shm and /work, nothing else."""
    args = _host_view(executable, run.language)
    args += _writable(run)
    args += _files(run.files, file_fds)
    args += ["--remount-ro", "/", "--chdir", WORK_DIR]
    return args


def root_links() -> list[str]:
    """The merged-/usr links (ROOT_LINKS) as the sandbox shows them: a symlink where the host has
    one, the folder read-only where the host has a folder."""
    args: list[str] = []
    for path in ROOT_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _host_view(executable: str, language: Language) -> list[str]:
    """What a program sees of the host: /usr read-only and the merged-/usr links, the interpreter's
    prefix and the language's own paths read-only, a fresh /proc and a few devices."""
    args = ["--ro-bind", "/usr", "/usr", *root_links()]
    if os.path.isabs(executable) and not executable.startswith("/usr/"):
        # An interpreter outside /usr (e.g. /opt/python/bin/python3) needs its prefix, read-only.
        prefix = os.path.dirname(os.path.dirname(executable))
        if prefix == "/":
            raise ValueError(f"{executable}: its prefix would be the whole host filesystem")
        args += ["--ro-bind", prefix, prefix]
    for path in language.host_paths:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc"]
    for device in DEVICES:
        args += ["--dev-bind", device, device]
    for target, link in DEVICE_LINKS:
        args += ["--symlink", target, link]
    return args


def zygote_command(
    sandbox: Sandbox, interpreter: Sequence[str], language: Language, zygote_file: str, socket_fd: int
) -> list[str]:
    """The command that starts a warm-start zygote (executor/sandbox/warm) for `language`, whose
    interpreter and flags are `interpreter`: as a cold run is started (the slot's uid, no new
    privileges, the same view of the host and environment), except that the zygote is pid 1 of its
    pid namespace and keeps every capability in its own user namespace (uid 0 there, the slot's uid
    outside), which each run needs for its namespaces and mounts and drops before user code.
    /work, /tmp and /dev/shm are bare mount points, where each run mounts its own."""
    executable = os.path.realpath(interpreter[0])
    inside = "/zygote/" + os.path.basename(zygote_file)
    return [
        *exec_prefix((), program_user(sandbox), _starter(sandbox)),
        sandbox.bwrap_path,
        *_namespaces(language, 0, 0, "--cap-add"),
        "--as-pid-1",
        *_host_view(executable, language),
        *(arg for place in (WORK_DIR, "/tmp", "/dev/shm") for arg in ("--dir", place)),
        "--ro-bind",
        zygote_file,
        inside,
        "--remount-ro",
        "/",
        "--chdir",
        "/",
        "--",
        executable,
        *interpreter[1:],
        inside,
        str(socket_fd),
        # Room each program's command line is written over (zygote_main._show_command_line).
        " " * ZYGOTE_COMMAND_LINE_ROOM,
    ]


def _writable(run: Run) -> list[str]:
    """/work, /tmp and /dev/shm: the run's scratch disk, or three tmpfs splitting the disk budget.

    Everything else stays on the root tmpfs (holding /dev), which becomes read-only after setup.
    """
    places = {WORK_DIR: "work", "/tmp": "tmp", "/dev/shm": "shm"}
    if run.scratch is not None:
        return [
            arg for place, folder in places.items() for arg in ("--bind", run.scratch.folder(folder), place)
        ]
    sizes = split_sizes(run.limits)
    return [arg for place in places for arg in ("--size", str(sizes[place]), "--tmpfs", place)]


def _files(files: tuple[tuple[str, bytes], ...], fds: list[int]) -> list[str]:
    """The run's files, each in its folder under /work, written by bwrap from its memfd."""
    args: list[str] = []
    folders: set[str] = set()
    for (path, _), fd in zip(files, fds, strict=True):
        parts = path.split("/")
        for end in range(1, len(parts)):
            folder = "/".join(parts[:end])
            if folder not in folders:
                folders.add(folder)
                args += ["--dir", f"{WORK_DIR}/{folder}"]
        args += ["--perms", "0644", "--file", str(fd), f"{WORK_DIR}/{path}"]
    return args


def program_status(exit_code: int) -> tuple[int | None, int | None]:
    """Undo bwrap's shell convention of reporting death by signal N as exit code 128 + N.

    A program that itself exits with such a code (e.g. sys.exit(137)) is reported as killed by
    that signal: bwrap gives no way to tell the two apart.
    """
    if exit_code - 128 in _SIGNALS:
        return None, exit_code - 128
    return exit_code, None


class BwrapProcess(ReapedOnce):
    """A running bwrap: the monitor we spawned, and pid 1 of its namespace once bwrap reports it."""

    def __init__(self, popen: "subprocess.Popen[bytes]", status_fd: int, uid: int) -> None:
        self._popen = popen
        self._uid = uid
        self._pidfd = os.pidfd_open(popen.pid)
        self._since_ticks = int(stat_fields(popen.pid)[19])
        self._status_fd = status_fd
        self._status = bytearray()
        self._init_pid: int | None = None
        self._init_pidfd: int | None = None

    @property
    def pidfd(self) -> int:
        """A pidfd of the bwrap monitor, readable once it has exited."""
        return self._pidfd

    @property
    def listeners(self) -> Mapping[int, Callable[[bytes], None]]:
        """bwrap's JSON status lines, read while the program runs to learn pid 1."""
        return {self._status_fd: self._read_status}

    def kill(self) -> None:
        """End the program (from any thread, for a cancel), keeping its accounting."""
        self.end_program()

    def end_program(self) -> None:
        """SIGKILL pid 1's children, the program first among them, but not pid 1 itself.

        Pid 1 then reaps the program, so its rusage keeps the program's CPU time and peak memory
        (an exiting pid 1 reaps its namespace without accounting), and the monitor exits as after
        any end of the program. Before pid 1 has a child there is nothing to keep: kill it all.
        """
        init_pid = self._init_pid
        children = [] if init_pid is None else children_of(init_pid, self._uid)
        if not children:
            self.kill_tree()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                pidfd = os.pidfd_open(pid)
                # Checked after pinning it with a pidfd, so a recycled pid is never signalled.
                with contextlib.suppress(OSError):
                    if int(stat_fields(pid)[1]) == init_pid:
                        send_kill(pidfd)
                os.close(pidfd)

    def kill_tree(self) -> None:
        """SIGKILL the monitor, then pid 1, whose death takes the whole pid namespace with it."""
        # The monitor first: dead, it cannot reap pid 1, which reparents to us (the subreaper)
        # with the program's CPU time and peak memory in its rusage, where finish() finds them.
        send_kill(self._pidfd)
        if self._init_pidfd is not None:
            send_kill(self._init_pidfd)

    def join_before_start(self, cgroup: JobCgroup, block_fd: int, timeout_s: float) -> None:
        """Move bwrap's monitor and pid 1 into the job's cgroup, then let pid 1 start the program.

        pid 1 is blocked (`--block-fd`) until then, so the program and all it forks are born in the
        cgroup. If pid 1 is never reported (bwrap failed, or hung past the deadline), it is never
        let go: the program cannot run outside its cgroup.
        """
        deadline = time.monotonic() + timeout_s
        while self._init_pid is None and (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self._status_fd], [], [], remaining)[0]:
                return
            chunk = os.read(self._status_fd, 4096)
            if not chunk:
                return
            self._read_status(chunk)
        if self._init_pidfd is None or self._init_pid is None:
            return
        # pid 1 gone already means bwrap failed in its set-up: the run ends with bwrap's report.
        with contextlib.suppress(ProcessLookupError, BrokenPipeError):
            cgroup.join(self._popen.pid)
            cgroup.join(self._init_pid)
            os.write(block_fd, b"1")

    def _release(self) -> None:
        os.close(self._pidfd)
        if self._init_pidfd is not None:
            os.close(self._init_pidfd)

    def _collect(self) -> ProcessEnd:
        """Kill, reap the monitor and pid 1, and report the program's end from bwrap's status."""
        self.kill_tree()
        _, status, usage = os.wait4(self._popen.pid, 0)
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        # The monitor wrote pid 1 before it could die; read it now if the loop did not.
        with contextlib.suppress(BlockingIOError):
            os.set_blocking(self._status_fd, False)
            while chunk := os.read(self._status_fd, 4096):
                self._read_status(chunk)
        self.kill_tree()
        cpu_time = usage.ru_utime + usage.ru_stime
        if self._init_pid is None and os.WIFSIGNALED(status):
            # Killed between its clone() and reporting pid 1, the monitor leaves pid 1 blocked for
            # ever on an eventfd, before it asked to die with its parent: it is ours now, find it.
            cpu_time += kill_strays(self._popen.pid, self._since_ticks, self._uid, whole_uid=False)
        memory_kb = None
        if self._init_pidfd is not None and self._init_pid is not None:
            with contextlib.suppress(ChildProcessError):
                _, _, init_usage = os.wait4(self._init_pid, 0)
                cpu_time += init_usage.ru_utime + init_usage.ru_stime
                # Not the monitor's: forked from the worker, its peak includes the worker's memory.
                memory_kb = init_usage.ru_maxrss
        exit_code = self._reported("exit-code")
        if exit_code is not None:
            return_code, signal_number = program_status(exit_code)
            return ProcessEnd(return_code, signal_number, cpu_time, memory_kb)
        return_code, signal_number = end_of(status)
        if signal_number is not None:
            # Killed by us (timeout, output, cancel) before bwrap could report on the program.
            return ProcessEnd(None, signal_number, cpu_time, memory_kb)
        return ProcessEnd(
            cpu_time=cpu_time, sandbox_error=f"bubblewrap failed to start the program (status {return_code})"
        )

    def _read_status(self, chunk: bytes) -> None:
        self._status += chunk
        if self._init_pid is None:
            self._init_pid = self._reported("child-pid")
            if self._init_pid is not None:
                self._init_pidfd = self._open_init(self._init_pid)

    def _open_init(self, pid: int) -> int | None:
        """A pidfd of pid 1, checked to be a child of the monitor or of ours, so never a recycled pid."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        try:
            parent = int(stat_fields(pid)[1])
        except OSError:
            parent = None
        if parent in (self._popen.pid, os.getpid()):
            return pidfd
        os.close(pidfd)
        return None

    def _reported(self, key: str) -> int | None:
        """The last value bwrap reported for `key` in its complete JSON lines; others are ignored."""
        value = None
        for line in bytes(self._status).splitlines(keepends=True):
            if not line.endswith(b"\n"):
                continue
            with contextlib.suppress(ValueError):
                report = json.loads(line)
                if isinstance(report, dict) and isinstance(report.get(key), int):
                    value = report[key]
        return value
