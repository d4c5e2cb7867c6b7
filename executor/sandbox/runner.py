"""Running one program: prepare, execute, collect, classify, and clean up whatever happened."""

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from io import FileIO
from types import MappingProxyType

from executor.languages import Language
from executor.sandbox.backends import bwrap, direct
from executor.sandbox.cgroups import CgroupLimits, JobCgroup
from executor.sandbox.classify import Ending, classify
from executor.sandbox.isolation import Isolation, Sandbox
from executor.sandbox.launch import ProcessEnd, Run, StartedProgram, Stdio, program_user, text_args
from executor.sandbox.limits import COMPILE_OUTPUT_CAP, MIB, Limits
from executor.sandbox.processes import RunningPrograms, become_subreaper
from executor.sandbox.program import Program
from executor.sandbox.result import Outcome, RunResult
from executor.sandbox.run_names import next_run_name
from executor.sandbox.scratch import Scratch, mount_scratch, unmount_scratch
from executor.sandbox.streams import Exchange, Pipes, StreamLoop

_logger = logging.getLogger(__name__)
_Start = Callable[[Run, Stdio, ExitStack], StartedProgram]
_STARTERS: Mapping[Isolation, _Start] = MappingProxyType(
    {Isolation.BWRAP: bwrap.start, Isolation.RLIMITS_ONLY: direct.start}
)
# The sandbox's one piece of process-wide state: a cancel arrives on another thread of the worker,
# which holds no handle on the run it must stop.
_RUNNING_PROGRAMS = RunningPrograms()
# The sandbox's own processes in a run's cgroup, which its process budget must also allow.
_OWN_PROCESSES: Mapping[Isolation, int] = MappingProxyType(
    {Isolation.BWRAP: bwrap.BWRAP_PROCESSES, Isolation.RLIMITS_ONLY: 0}
)


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
    """Compile once if the language needs it, then run: each a stage of its own, sharing one disk."""
    become_subreaper()
    with ExitStack() as cleanup:
        name = next_run_name(sandbox.run_prefix)
        scratch = _scratch_disk(name, sandbox, limits, cleanup)
        run_argv = tuple(language.command(limits.memory_mb, text_args(program.args)))
        if language.compile is None:
            return _stage(Run(program, language, limits, sandbox, run_argv, scratch=scratch), name)
        if scratch is None:
            message = f"{language.name} is compiled, which needs a disk per job: a worker that runs as root"
            return RunResult(Outcome.INTERNAL_ERROR, message=message)
        # The compiler sees the source and the files, never the client's stdin or arguments.
        source_only = Program(program.code, language=program.language, files=program.files)
        compile_limits = limits.for_compile()
        compile_argv = tuple(language.compile_command(compile_limits.memory_mb))
        compile_run = Run(source_only, language, compile_limits, sandbox, compile_argv, scratch=scratch)
        compiled = _stage(compile_run, next_run_name(sandbox.run_prefix))
        if compiled.outcome is not Outcome.SUCCESS:
            return _compile_failure(compiled)
        run = Run(program, language, limits, sandbox, run_argv, scratch=scratch, write_source=False)
        return replace(
            _stage(run, name), compile_output=_compile_output(compiled), compile_time=compiled.execution_time
        )


def _stage(run: Run, name: str) -> RunResult:
    """One process tree in its own cgroup, from spawn to its result; whatever happens, it is cleaned up."""
    isolation = Isolation(run.sandbox.isolation)
    with ExitStack() as cleanup:
        cgroup = _job_cgroup(name, run.sandbox, run.limits, _OWN_PROCESSES[isolation], cleanup)
        pipes, stdio = _pipes(cleanup)
        started_at = time.monotonic()
        with _closing_after(stdio):
            process = _STARTERS[isolation](replace(run, cgroup=cgroup), stdio, cleanup)
        with _RUNNING_PROGRAMS.registered(process.kill):
            seen = StreamLoop(
                pidfd=process.pidfd,
                pipes=pipes,
                stdin_data=run.program.stdin.encode("utf-8", "replace"),
                deadline=started_at + run.limits.wall_time_s,
                output_cap=run.limits.max_output_bytes,
                end_program=process.end_program,
                kill_tree=process.kill_tree,
                listeners=process.listeners,
            ).run()
        end = process.finish()
        if cgroup is not None:
            end = _with_cgroup_usage(end, cgroup)
    return _result(seen, end, (seen.exited_at or time.monotonic()) - started_at, run.limits)


def _compile_output(compiled: RunResult) -> str:
    """What the compiler printed, stdout then stderr, within the cap."""
    return (compiled.stdout + compiled.stderr)[:COMPILE_OUTPUT_CAP]


def _compile_failure(compiled: RunResult) -> RunResult:
    """A job whose compilation failed: compile_error, or timeout, or the sandbox's own failure."""
    if compiled.outcome is Outcome.INTERNAL_ERROR:
        return compiled
    output = _compile_output(compiled)
    if compiled.outcome is Outcome.TIMEOUT:
        message = "the compiler did not finish within the compile time limit"
        return RunResult(
            Outcome.TIMEOUT, compile_output=output, compile_time=compiled.execution_time, message=message
        )
    return RunResult(
        Outcome.COMPILE_ERROR,
        compile_output=output,
        compile_time=compiled.execution_time,
        cpu_time=compiled.cpu_time,
        memory_kb=compiled.memory_kb,
    )


def _job_cgroup(
    name: str, sandbox: Sandbox, limits: Limits, own_processes: int, cleanup: ExitStack
) -> JobCgroup | None:
    """A fresh cgroup for the run, killed and removed by `cleanup` after everything else it holds."""
    if sandbox.cgroups is None:
        return None
    cgroup_limits = CgroupLimits(
        memory_bytes=limits.memory_mb * MIB, processes=limits.max_processes + own_processes
    )
    cgroup = sandbox.cgroups.make(name, cgroup_limits)
    cleanup.callback(_remove, cgroup)
    return cgroup


def _scratch_disk(name: str, sandbox: Sandbox, limits: Limits, cleanup: ExitStack) -> Scratch | None:
    """A fresh disk for the run, unmounted by `cleanup` once its processes are gone."""
    owner = program_user(sandbox)
    if not sandbox.scratch_disks or owner is None:
        return None
    scratch = mount_scratch(name, limits, owner)
    cleanup.callback(unmount_scratch, scratch)
    return scratch


def _with_cgroup_usage(end: ProcessEnd, cgroup: JobCgroup) -> ProcessEnd:
    """The run's end with the whole job's CPU time, peak memory and OOM kills, once nothing of it runs."""
    cgroup.kill()
    usage = cgroup.usage()
    return replace(end, cpu_time=usage.cpu_time_s, memory_kb=usage.memory_peak_kb, oom_kills=usage.oom_kills)


def _remove(cgroup: JobCgroup) -> None:
    """Kill whatever is left in the job's cgroup and remove it; never fails the run it ends.

    What resists is logged, and removed by a sweep once this worker is gone.
    """
    try:
        if cgroup.kill():
            cgroup.remove()
            return
    except OSError:
        _logger.exception("could not kill and remove a finished run's cgroup")
        return
    _logger.warning("processes of a finished run outlived its kill; a sweep removes them")


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
        oom_kills=end.oom_kills,
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
