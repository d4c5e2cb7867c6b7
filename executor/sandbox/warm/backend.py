"""A run started warm: forked by the worker slot's zygote for its language, instead of exec'd cold.

The runner calls `start` as it calls `backends.bwrap.start`, for the runs `starts_warm` says can
start warm; a zygote that fails (`ZygoteFailed`) is replaced, and that run starts cold (after
failures in a row, not at once: `StartFailures`). Each worker process keeps one zygote per slot (the
program uid its runs have) and language, started at its first warm run and stopped with the process
(`--die-with-parent`) or by `stop_zygotes`. A worker process has one slot; a process that runs
several slots at once (the bench's floor, one thread per slot) gets one zygote for each, since a
zygote serves one run at a time.
"""

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack

from executor.languages import Language
from executor.sandbox.backends.bwrap import WORK_DIR, program_status, zygote_command
from executor.sandbox.isolation import Isolation, Sandbox
from executor.sandbox.launch import ProcessEnd, ReapedOnce, Run, Stdio, program_environment, text_args
from executor.sandbox.limits import MIB
from executor.sandbox.processes import count_resident_tasks, send_kill
from executor.sandbox.rlimits import program_rlimits
from executor.sandbox.warm.zygote import (
    ZYGOTE_MAIN,
    ZYGOTE_TASKS,
    RunRequest,
    Spare,
    Zygote,
    ZygoteFailed,
    ZygoteSetup,
    host_pid,
)

# The languages that start warm: an interpreter that can fork a program it has not started yet.
WARM_LANGUAGES = frozenset({"python"})
# A run's own processes in its cgroup besides the program's: its init, pid 1 (the zygote and the
# init's parent are outside).
WARM_PROCESSES = 1
# A zygote's runs share its hash seed, fixed when its interpreter started: after this many, a new one.
RUNS_PER_ZYGOTE = 1000
# After the second failure in a row, warm starts pause this long, doubled at each further failure.
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
_logger = logging.getLogger(__name__)
# By (program uid, language id).
_ZYGOTES: dict[tuple[int | None, str], Zygote] = {}


class StartFailures:
    """Failed warm starts in a row, per slot and language, and when warm starts may be tried again.

    One failure is replaced at once: a zygote killed, or late once on a loaded machine, is worth a
    new one for the next run. A zygote that keeps failing (one that cannot start here, or answers
    every run late) would cost each run its failure (up to ANSWER_TIMEOUT_S) before the cold start:
    from the second failure in a row, runs start cold without trying for FIRST_PAUSE_S, then twice
    as long after each further failure, up to LONGEST_PAUSE_S. A warm run that starts ends the streak.
    """

    def __init__(self) -> None:
        self._streaks: dict[tuple[int | None, str], tuple[int, float]] = {}

    def paused_for(self, key: tuple[int | None, str]) -> float:
        """Seconds until warm starts may be tried again for `key` (0: now)."""
        _, resume_at = self._streaks.get(key, (0, 0.0))
        return max(0.0, resume_at - time.monotonic())

    def failed(self, key: tuple[int | None, str]) -> None:
        """Count a failure, and pause warm starts from the second in a row."""
        count = self._streaks.get(key, (0, 0.0))[0] + 1
        pause_s = 0.0 if count == 1 else min(LONGEST_PAUSE_S, FIRST_PAUSE_S * 2 ** (count - 2))
        self._streaks[key] = (count, time.monotonic() + pause_s)
        if pause_s:
            _logger.warning(
                "warm starts of %s failed %d times in a row: runs start cold for %.0f s",
                key[1],
                count,
                pause_s,
            )

    def started(self, key: tuple[int | None, str]) -> None:
        """A warm run started: the streak is over."""
        self._streaks.pop(key, None)


START_FAILURES = StartFailures()


def starts_warm(sandbox: Sandbox, language: Language, *, collects_files: bool, compiled: bool) -> bool:
    """Whether a run can start warm: the operator wants it, in a language that can, under bubblewrap
    with a cgroup per run (the program must be in it before its first instruction) and a uid per
    slot; not a run whose files are read back afterwards (its /work lives in its own namespace) or
    that starts from a compile's disk."""
    return (
        sandbox.warm_start
        and language.id in WARM_LANGUAGES
        and sandbox.isolation == Isolation.BWRAP
        and sandbox.cgroups is not None
        and sandbox.program_uid is not None
        and not collects_files
        and not compiled
    )


def start(run: Run, stdio: Stdio, cleanup: ExitStack) -> "WarmProcess":
    """Take the spare init of the run's language's zygote, put it in the run's cgroup, and hand it the run;
    ZygoteFailed (the zygote replaced) when that fails before the program could run."""
    key = _key(run)
    paused_s = START_FAILURES.paused_for(key)
    if paused_s:
        raise ZygoteFailed(f"warm starts are paused for {paused_s:.1f} s after failures in a row")
    try:
        process = _start_warm(run, key, stdio, cleanup)
    except ZygoteFailed:
        START_FAILURES.failed(key)
        raise
    START_FAILURES.started(key)
    return process


def _start_warm(run: Run, key: tuple[int | None, str], stdio: Stdio, cleanup: ExitStack) -> "WarmProcess":
    """`start`, once warm starts are not paused."""
    assert run.cgroup is not None
    try:
        zygote = _zygote_for(run)
    except (OSError, ValueError) as error:
        raise ZygoteFailed(f"could not start the zygote: {error}") from error
    try:
        spare = zygote.take_spare()
    except (OSError, ZygoteFailed) as error:
        _replace(key)
        raise ZygoteFailed(str(error)) from error
    try:
        run.cgroup.join(host_pid(spare.pidfd))
        # Only now, in its cgroup, does the init learn its run: the program has not run before.
        spare.hand(_request(run), stdio.stdin, stdio.stdout, stdio.stderr)
    except (OSError, ZygoteFailed) as error:  # a spare that died, or a zygote gone with its spares
        spare.close()
        _replace(key)
        raise ZygoteFailed(f"could not start the warm run: {error}") from error
    zygote.runs += 1
    process = WarmProcess(spare)
    cleanup.callback(process.close)
    return process


def stop_zygotes() -> None:
    """Stop every zygote of this process."""
    for key in list(_ZYGOTES):
        _replace(key)


class WarmProcess(ReapedOnce):
    """A run the zygote forked: its init, pid 1 of its own namespaces, whose death ends them, and the
    program, its child."""

    def __init__(self, spare: Spare) -> None:
        self._spare = spare

    @property
    def pidfd(self) -> int:
        """A pidfd of the run's init, readable once the run has ended (the init exits with the program)."""
        return self._spare.pidfd

    @property
    def listeners(self) -> Mapping[int, Callable[[bytes], None]]:
        """None: the program's end is read from the init's report, after the pidfd says it came."""
        return {}

    def kill_tree(self) -> None:
        """SIGKILL the run's init, pid 1 of its namespace, which takes every process in it along; its
        cgroup keeps the program's CPU time and peak memory."""
        send_kill(self._spare.pidfd)

    kill = end_program = kill_tree

    def _collect(self) -> ProcessEnd:
        self.kill_tree()
        try:
            exit_code = self._spare.reported_exit()
        except ZygoteFailed as failure:
            return ProcessEnd(sandbox_error=str(failure))
        if exit_code is None:  # the init itself was killed (a timeout, a cancel, the OOM killer)
            return ProcessEnd(None, signal.SIGKILL)
        # The init reports the program's end as bubblewrap's pid 1 does: a signal N as 128 + N.
        return_code, signal_number = program_status(exit_code)
        return ProcessEnd(return_code, signal_number)

    def _release(self) -> None:
        self._spare.close()


def _request(run: Run) -> RunRequest:
    """What the program needs inside: its files, its arguments, its environment and its limits."""
    return RunRequest(
        files=run.files,
        args=text_args(run.program.args),
        env=program_environment(run.language, home=WORK_DIR, tmpdir="/tmp"),
        rlimits=program_rlimits(run.limits, WARM_PROCESSES, memory_in_cgroup=True),
    )


def _setup(run: Run) -> ZygoteSetup:
    """What the run shares with every run of its zygote: the filter and the disk's bounds."""
    return ZygoteSetup(
        seccomp_filter=run.sandbox.seccomp_filter,
        disk_bytes=run.limits.max_disk_mb * MIB,
        disk_inodes=run.limits.max_disk_inodes,
    )


def _zygote_for(run: Run) -> Zygote:
    """The slot's zygote of the run's language, started if there is none yet, or if the one there has
    run its share or was set up for other runs (a worker's runs all share one setup)."""
    key = _key(run)
    setup = _setup(run)
    zygote = _ZYGOTES.get(key)
    if zygote is not None and (zygote.runs >= RUNS_PER_ZYGOTE or zygote.setup != setup):
        _replace(key)
        zygote = None
    if zygote is None:
        # The interpreter and its flags, as the language runs its programs: what precedes the source.
        interpreter = run.command[: run.command.index(run.language.source_file)]
        zygote = Zygote.start(
            lambda fd: zygote_command(run.sandbox, interpreter, run.language, str(ZYGOTE_MAIN), fd), setup
        )
        _ZYGOTES[key] = zygote
        if key[0] is not None:
            count_resident_tasks(key[0], ZYGOTE_TASKS)
    return zygote


def _key(run: Run) -> tuple[int | None, str]:
    return run.sandbox.program_uid, run.language.id


def _replace(key: tuple[int | None, str]) -> None:
    """Stop the zygote of this slot and language; the next warm run there starts a new one."""
    zygote = _ZYGOTES.pop(key, None)
    if zygote is not None:
        with contextlib.suppress(OSError):
            zygote.stop()
        if key[0] is not None:
            count_resident_tasks(key[0], -ZYGOTE_TASKS)
