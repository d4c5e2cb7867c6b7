"""Running one program: prepare, execute, collect, classify, and clean up whatever happened."""

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from io import FileIO
from types import MappingProxyType

from executor.languages import Language
from executor.sandbox.backends import bwrap, direct
from executor.sandbox.cgroups import CgroupLimits, JobCgroup
from executor.sandbox.classify import Ending, classify
from executor.sandbox.collect import Collected, collect
from executor.sandbox.isolation import Isolation, Sandbox
from executor.sandbox.launch import FileList, ProcessEnd, Run, StartedProgram, Stdio, program_user, text_args
from executor.sandbox.limits import COMPILE_OUTPUT_CAP, MIB, Limits
from executor.sandbox.processes import RunningPrograms, become_subreaper
from executor.sandbox.program import Program
from executor.sandbox.result import Outcome, RunResult
from executor.sandbox.run_names import next_run_name
from executor.sandbox.scratch import Scratch, TooMuchToCarry, carry_work, mount_scratch, unmount_scratch
from executor.sandbox.streams import Exchange, OutputListener, Pipes, StreamLoop
from executor.sandbox.warm import backend as warm
from executor.sandbox.warm.zygote import ZygoteFailed

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


def run_program(
    program: Program, limits: Limits, sandbox: Sandbox, on_output: OutputListener | None = None
) -> RunResult:
    """Run one program in a fresh process tree; whatever the program does, this returns a result.
    `on_output` is told the output as it is read."""
    with prepare(program, limits, sandbox) as ready:
        return ready.failure or ready.run(program.stdin, program.args, on_output=on_output)


def kill_running_programs() -> int:
    """SIGKILL every program this process is running (from any thread); returns how many there were."""
    return _RUNNING_PROGRAMS.kill_all()


@dataclass(frozen=True)
class Prepared:
    """A program made ready to run any number of times: compiled once, in a language that compiles.

    Each run is a fresh process tree in a fresh cgroup, on a fresh disk that starts from what the
    compile left in its working directory (`scratch.carry_work`), so no run sees another's files.
    """

    program: Program
    # None only for a language the sandbox does not offer, which fails.
    language: Language | None
    limits: Limits
    sandbox: Sandbox
    # Why no run can follow (the compile failed, or the sandbox did): the job's result.
    failure: RunResult | None = None
    # The compile stage's result, and its disk, which each run starts from.
    compiled: RunResult | None = None
    artefact: Scratch | None = None

    def run(
        self,
        stdin: str = "",
        args: tuple[str, ...] = (),
        files: FileList = (),
        on_output: OutputListener | None = None,
    ) -> RunResult:
        """One run with this standard input, these arguments and these extra files in its working
        directory, `on_output` told its output as it is read; whatever the program does, this
        returns a result."""
        assert self.failure is None, "a program that failed to prepare cannot run"
        try:
            result = self._run(replace(self.program, stdin=stdin, args=args), files, on_output)
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            return _sandbox_failure(error)
        if self.compiled is None:
            return result
        return replace(
            result, compile_output=_compile_output(self.compiled), compile_time=self.compiled.execution_time
        )

    def _run(self, program: Program, files: FileList, on_output: OutputListener | None) -> RunResult:
        assert self.language is not None  # else `failure` is set
        name = next_run_name(self.sandbox.run_prefix)
        argv = tuple(self.language.command(self.limits.memory_mb, text_args(program.args)))
        patterns = (*program.outputs, *self.language.collect)
        warm_start = warm.starts_warm(
            self.sandbox, self.language, collects_files=bool(patterns), compiled=self.artefact is not None
        )
        with ExitStack() as cleanup:
            # A warm run's /work, /tmp and /dev/shm are tmpfs of its own namespace: no disk on the host.
            scratch = None if warm_start else _scratch_disk(name, self.sandbox, self.limits, cleanup)
            if self.artefact is None:
                stage_files = (*_source_and_files(program, self.language), *files)
            else:
                owner = program_user(self.sandbox)
                # A language that compiles is prepared only where each run gets a disk of its own.
                assert scratch is not None and owner is not None
                carry_work(self.artefact, scratch, owner, self.limits)
                stage_files = files
            run = Run(
                program,
                self.language,
                self.limits,
                self.sandbox,
                argv,
                scratch=scratch,
                files=stage_files,
                on_output=on_output,
                warm=warm_start,
            )
            result = _stage(run, name)
            if not patterns or result.outcome is Outcome.INTERNAL_ERROR:
                return result
            # Every process of the run is dead by now (its cgroup killed): nothing changes under the walk.
            collected = (
                collect(scratch.folder("work"), patterns, self.limits) if scratch else Collected((), True)
            )
            return replace(result, files=collected.files, files_truncated=collected.truncated)


@contextlib.contextmanager
def prepare(program: Program, limits: Limits, sandbox: Sandbox) -> Iterator[Prepared]:
    """The program ready to run (see `Prepared`); the compile's disk is gone when the context ends."""
    language = sandbox.languages.get(program.language)
    if language is None:
        unknown = RunResult(Outcome.INTERNAL_ERROR, message=f"unknown language: {program.language!r}")
        yield Prepared(program, None, limits, sandbox, failure=unknown)
        return
    with ExitStack() as cleanup:
        try:
            ready = _compiled(Prepared(program, language, limits, sandbox), cleanup)
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            ready = Prepared(program, language, limits, sandbox, failure=_sandbox_failure(error))
        yield ready


def _compiled(ready: Prepared, cleanup: ExitStack) -> Prepared:
    """`ready` after its compile stage, in a language that compiles; the disk stays until `cleanup`."""
    become_subreaper()
    language = ready.language
    if language is None or language.compile is None:
        return ready
    name = next_run_name(ready.sandbox.run_prefix)
    scratch = _scratch_disk(name, ready.sandbox, ready.limits, cleanup)
    if scratch is None:
        message = f"{language.name} is compiled, which needs a disk per job: a worker that runs as root"
        return replace(ready, failure=RunResult(Outcome.INTERNAL_ERROR, message=message))
    # The compiler sees the source and the files, never the client's stdin or arguments.
    source_only = Program(ready.program.code, language=language.id, files=ready.program.files)
    limits = ready.limits.for_compile()
    argv = tuple(language.compile_command(limits.memory_mb))
    files = _source_and_files(source_only, language)
    compiled = _stage(
        Run(source_only, language, limits, ready.sandbox, argv, scratch=scratch, files=files), name
    )
    if compiled.outcome is not Outcome.SUCCESS:
        return replace(ready, failure=_compile_failure(compiled))
    owner = program_user(ready.sandbox)
    assert owner is not None  # there is a disk
    try:
        carry_work(scratch, None, owner, ready.limits)
    except TooMuchToCarry as error:
        failed = replace(compiled, outcome=Outcome.COMPILE_ERROR, stderr=f"{compiled.stderr}{error}\n")
        return replace(ready, failure=_compile_failure(failed))
    return replace(ready, compiled=compiled, artefact=scratch)


def _source_and_files(program: Program, language: Language) -> FileList:
    """The files a program's first stage writes: its source, then the client's files."""
    return ((language.source_file, program.code.encode("utf-8", "replace")), *program.files)


def _sandbox_failure(error: Exception) -> RunResult:
    _logger.exception("the sandbox could not run a program")
    return RunResult(Outcome.INTERNAL_ERROR, message=f"the sandbox could not run the program: {error}")


def _stage(run: Run, name: str) -> RunResult:
    """One process tree in its own cgroup, from spawn to its result; whatever happens, it is cleaned up.
    A warm run whose zygote fails before its program could start starts cold instead."""
    isolation = Isolation(run.sandbox.isolation)
    if not run.warm:
        return _stage_started(run, name, _STARTERS[isolation], _OWN_PROCESSES[isolation])
    try:
        return _stage_started(run, name, warm.start, warm.WARM_PROCESSES)
    except ZygoteFailed as failure:
        _logger.warning("a warm start failed (%s); the run starts cold", failure)
    with ExitStack() as cleanup:  # with the disk a cold run gets, which a warm one has no need of
        scratch = _scratch_disk(name, run.sandbox, run.limits, cleanup)
        cold = replace(run, warm=False, scratch=scratch)
        return _stage_started(cold, name, _STARTERS[isolation], _OWN_PROCESSES[isolation])


def _stage_started(run: Run, name: str, start: _Start, own_processes: int) -> RunResult:
    """`_stage` with this starter, whose own processes in the run's cgroup are `own_processes`."""
    with ExitStack() as cleanup:
        cgroup = _job_cgroup(name, run.sandbox, run.limits, own_processes, cleanup)
        pipes, stdio = _pipes(cleanup)
        started_at = time.monotonic()
        with _closing_after(stdio):
            process = start(replace(run, cgroup=cgroup), stdio, cleanup)
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
                on_output=run.on_output,
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
