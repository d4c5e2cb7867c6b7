"""Running one program: prepare, execute, collect, classify, and clean up whatever happened."""

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from io import FileIO
from types import MappingProxyType

from executor.languages import Language
from executor.sandbox import bwrap, rlimits_only
from executor.sandbox.classify import Ending, classify
from executor.sandbox.isolation import Isolation, Sandbox
from executor.sandbox.launch import ProcessEnd, Run, StartedProgram, Stdio
from executor.sandbox.limits import Limits
from executor.sandbox.processes import RunningPrograms, become_subreaper
from executor.sandbox.program import Program
from executor.sandbox.result import Outcome, RunResult
from executor.sandbox.streams import Exchange, Pipes, StreamLoop

_logger = logging.getLogger(__name__)
_Start = Callable[[Run, Stdio, ExitStack], StartedProgram]
_STARTERS: Mapping[Isolation, _Start] = MappingProxyType(
    {Isolation.BWRAP: bwrap.start, Isolation.RLIMITS_ONLY: rlimits_only.start}
)
# The sandbox's one piece of process-wide state: a cancel arrives on another thread of the worker,
# which holds no handle on the run it must stop.
_RUNNING_PROGRAMS = RunningPrograms()


def run_program(program: Program, limits: Limits, sandbox: Sandbox) -> RunResult:
    """Run one program in a fresh process tree; whatever the program does, this returns a result."""
    language = sandbox.languages.get(program.language)
    if language is None:
        return RunResult(Outcome.INTERNAL_ERROR, message=f"unknown language: {program.language!r}")
    try:
        return _run(program, language, limits, sandbox)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        _logger.exception("the sandbox could not run a program")
        return RunResult(Outcome.INTERNAL_ERROR, message=f"the sandbox could not run the program: {error}")


def kill_running_programs() -> int:
    """SIGKILL every program this process is running (from any thread); returns how many there were."""
    return _RUNNING_PROGRAMS.kill_all()


def _run(program: Program, language: Language, limits: Limits, sandbox: Sandbox) -> RunResult:
    start = _STARTERS[Isolation(sandbox.isolation)]
    become_subreaper()
    with ExitStack() as cleanup:
        pipes, stdio = _pipes(cleanup)
        started_at = time.monotonic()
        with _closing_after(stdio):
            process = start(Run(program, language, limits, sandbox), stdio, cleanup)
        with _RUNNING_PROGRAMS.registered(process.kill):
            seen = StreamLoop(
                pidfd=process.pidfd,
                pipes=pipes,
                stdin_data=program.stdin.encode("utf-8", "replace"),
                deadline=started_at + limits.wall_time_s,
                output_cap=limits.max_output_bytes,
                end_program=process.end_program,
                kill_tree=process.kill_tree,
                listeners=process.listeners,
            ).run()
        end = process.finish()
    return _result(seen, end, (seen.exited_at or time.monotonic()) - started_at, limits)


def _pipes(cleanup: ExitStack) -> tuple[Pipes, Stdio]:
    """Three pipes: our ends as files closed by `cleanup`, the child's as bare fds."""
    stdin_read, stdin_write = os.pipe2(os.O_CLOEXEC)
    ours = [FileIO(stdin_write, "wb")]
    stdout_read, stdout_write = os.pipe2(os.O_CLOEXEC)
    ours.append(FileIO(stdout_read, "rb"))
    stderr_read, stderr_write = os.pipe2(os.O_CLOEXEC)
    ours.append(FileIO(stderr_read, "rb"))
    for file in ours:
        cleanup.enter_context(file)
    return Pipes(*ours), Stdio(stdin_read, stdout_write, stderr_write)


@contextlib.contextmanager
def _closing_after(stdio: Stdio) -> Iterator[None]:
    """Close the child's ends once it has them, so our reads see end-of-file when it is gone."""
    try:
        yield
    finally:
        for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
            os.close(fd)


def _result(seen: Exchange, end: ProcessEnd, execution_time: float, limits: Limits) -> RunResult:
    """Decode the output and name the outcome."""
    stdout = seen.stdout.data.decode("utf-8", "replace")
    stderr = seen.stderr.data.decode("utf-8", "replace")
    ending = Ending(
        return_code=end.return_code,
        signal=end.signal,
        timed_out=seen.timed_out,
        output_exceeded=seen.output_exceeded,
        cpu_time=end.cpu_time,
        memory_kb=end.memory_kb,
        stderr=stderr,
        sandbox_error=end.sandbox_error,
    )
    outcome = classify(ending, limits)
    if outcome is Outcome.INTERNAL_ERROR:
        # The sandbox's own complaint (e.g. "bwrap: Can't mount ...") goes to the message.
        detail = stderr.strip().rpartition("\n")[2]
        return RunResult(outcome, message=f"{end.sandbox_error}: {detail}" if detail else end.sandbox_error)
    return RunResult(
        outcome,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=seen.stdout.truncated,
        stderr_truncated=seen.stderr.truncated,
        return_code=end.return_code,
        signal=_signal_name(end.signal),
        execution_time=round(execution_time, 4),
        cpu_time=round(end.cpu_time, 4),
        memory_kb=end.memory_kb,
    )


def _signal_name(number: int | None) -> str | None:
    """SIGKILL for 9; real-time signals, which have no name, as SIG<number>."""
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"
