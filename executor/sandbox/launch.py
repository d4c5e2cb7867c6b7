"""What both isolation levels share: spawning the child, and the shape of what they report back."""

import contextlib
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from executor.languages import Language
from executor.sandbox.cgroups import JobCgroup
from executor.sandbox.isolation import Sandbox
from executor.sandbox.limits import Limits
from executor.sandbox.processes import count_tasks, resident_tasks
from executor.sandbox.program import Program
from executor.sandbox.scratch import Scratch
from executor.sandbox.streams import OutputListener

# (relative path, content) pairs, written into a working directory.
FileList = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Run:
    """One stage's inputs: the program, its language, limits and sandbox, what to execute, and where."""

    program: Program
    language: Language
    limits: Limits
    sandbox: Sandbox
    # What runs, in the working directory: the compiler, or the program with the client's arguments.
    command: tuple[str, ...]
    # Made empty by the runner; every process of the run must be in it before the program starts.
    cgroup: JobCgroup | None = None
    # The run's disk, where the worker could mount one (scratch.py).
    scratch: Scratch | None = None
    # (relative path, content): written into the working directory before the stage starts; the
    # source and the client's files, unless an earlier stage left them on the run's disk.
    files: FileList = ()
    # Told the program's output as it is read (live output), if anyone listens.
    on_output: "OutputListener | None" = None
    # Started by the language's zygote rather than cold (executor/sandbox/warm), if it still answers.
    warm: bool = False


@dataclass(frozen=True)
class Stdio:
    """The child's ends of its standard-stream pipes."""

    stdin: int
    stdout: int
    stderr: int


@dataclass(frozen=True)
class ProcessEnd:
    """How the process tree ended, as far as the isolation layer can tell."""

    return_code: int | None = None
    signal: int | None = None
    cpu_time: float = 0.0
    memory_kb: int | None = None
    # From the job's cgroup; None where runs have none.
    oom_kills: int | None = None
    # Set when the sandbox itself failed before the program ran.
    sandbox_error: str | None = None


class ReapedOnce(ABC):
    """The end of a run collected exactly once, and the fds released only after it was.

    Subclasses say how to collect (`_collect`: kill, reap, account) and what to release.
    """

    _end: ProcessEnd | None = None

    def finish(self) -> ProcessEnd:
        """Kill and reap the tree on the first call; later calls report the same end."""
        if self._end is None:
            self._end = self._collect()
        return self._end

    def close(self) -> None:
        """Release the fds, once the run is over (its end reaped even if collecting was interrupted)."""
        # An exception (e.g. RQ's job timeout) may have cut finish() short after a reap; whatever
        # collecting raises now, the fds are released.
        try:
            with contextlib.suppress(ChildProcessError):
                self.finish()
        finally:
            self._release()

    @abstractmethod
    def _collect(self) -> ProcessEnd: ...

    @abstractmethod
    def _release(self) -> None: ...


class StartedProgram(Protocol):
    """A program started under one isolation level, seen by the runner."""

    @property
    def pidfd(self) -> int:
        """A pidfd of the direct child, readable once it has exited."""

    @property
    def listeners(self) -> Mapping[int, Callable[[bytes], None]]:
        """Extra fds the I/O loop should read, and who wants their bytes."""

    def kill(self) -> None:
        """Make the program end at once; safe from any thread while the run is registered."""

    def end_program(self) -> None:
        """Kill the program so that its CPU time and peak memory are still accounted."""

    def kill_tree(self) -> None:
        """Kill the whole tree, including what escaped the program's process group."""

    def finish(self) -> ProcessEnd:
        """Kill what is left, reap everything, and report; later calls return the same report."""


def process_allowance(sandbox: Sandbox, own_processes: int) -> int:
    """Tasks RLIMIT_NPROC must allow beyond the program's own.

    The limit counts every task of a host uid. With a uid of its own per worker slot that is the
    program, the sandbox's own processes and the slot's warm-start zygotes (`resident_tasks`);
    sharing the worker's uid, it also counts every task that uid runs now, so the program gets its
    budget on top of those (shared, not exact).
    """
    if sandbox.program_uid is None and os.geteuid() != 0:
        return own_processes + count_tasks(os.getuid())
    return own_processes + resident_tasks(sandbox.program_uid)


def memfd_holding(name: str, data: bytes, cleanup: contextlib.ExitStack) -> int:
    """An anonymous file holding `data`, to be read from its start by whoever gets the fd (bwrap, a
    zygote's run); close-on-exec here, closed by `cleanup`."""
    fd = os.memfd_create(name)
    cleanup.callback(os.close, fd)
    view = memoryview(data)
    while view:
        view = view[os.pwrite(fd, view, len(data) - len(view)) :]
    return fd


def program_environment(language: Language, home: str, tmpdir: str) -> dict[str, str]:
    """A program's whole environment, built from scratch: the language's variables, then the
    sandbox's own (which the language cannot override). Nothing of the worker's is inherited."""
    return {**dict(language.env), "PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "TMPDIR": tmpdir}


def program_user(sandbox: Sandbox) -> tuple[int, int] | None:
    """The host uid and gid programs run as, or None to stay the worker's."""
    if sandbox.program_uid is None:
        return None
    return sandbox.program_uid, sandbox.program_uid if sandbox.program_gid is None else sandbox.program_gid


def spawn(
    argv: Sequence[str | bytes],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdio: Stdio,
    pass_fds: Sequence[int],
    child_setup: Callable[[], None] | None = None,
    user: tuple[int, int] | None = None,
) -> "subprocess.Popen[bytes]":
    """Start the child in a new session with only the given fds.

    Without `child_setup` and `user` Python uses vfork, which stays fast however large the worker.
    """
    identity: dict[str, Any] = {}
    if user is not None:
        identity = {"user": user[0], "group": user[1], "extra_groups": []}
    return subprocess.Popen(
        argv,
        stdin=stdio.stdin,
        stdout=stdio.stdout,
        stderr=stdio.stderr,
        env=env,
        cwd=cwd,
        close_fds=True,
        pass_fds=pass_fds,
        start_new_session=True,
        preexec_fn=child_setup,  # noqa: PLW1509 - it only makes system calls; see rlimits.child_setup
        **identity,
    )


def text_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """Arguments that encode as UTF-8: a lone surrogate (valid JSON) becomes "?" rather than a failure."""
    return tuple(arg.encode("utf-8", "replace").decode("utf-8") for arg in args)


def end_of(status: int) -> tuple[int | None, int | None]:
    """A wait status as (return code, signal number), one of them None."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None
