"""The program's rlimits, uid, groups and NoNewPrivs, read from the host while it runs.

Under bubblewrap they are set by the one exec between the worker's vfork and bwrap: executor-start
(start.c, starter.py), or prlimit and setpriv where it cannot be built; under rlimits-only by the
child's set-up. These tests read what the kernel holds for the running program (`/proc/<pid>/limits`
and `/proc/<pid>/status`), not what the program says, on both paths.
"""

import resource
import threading
import time
import uuid
from dataclasses import replace

import pytest

from executor.sandbox import Limits, Outcome, Program, RunResult, Sandbox, run_program
from executor.sandbox.backends import bwrap
from executor.sandbox.limits import MIB
from executor.sandbox.warm import backend as warm
from tests.sandbox.conftest import processes_with

# The program holds still long enough for the host to read it, then ends on its own.
HOLD = "import sys, time\nprint('started', flush=True)\ntime.sleep(1.5)"
LIMITS = Limits(wall_time_s=5.0, max_processes=12, max_disk_mb=16, max_open_files=48, memory_mb=256)
# /proc/<pid>/limits names of the limits the sandbox sets.
NAMES = {
    "cpu": "Max cpu time",
    "nproc": "Max processes",
    "fsize": "Max file size",
    "nofile": "Max open files",
    "core": "Max core file size",
    "as": "Max address space",
}


def _programs(marker: str) -> list[int]:
    """The running program's pid: the Python process whose arguments hold `marker` (not bwrap's)."""
    found = []
    for pid in processes_with(marker):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().startswith("python"):
                    found.append(pid)
        except OSError:
            continue
    return found


def _read_while_running(sandbox: Sandbox) -> tuple[RunResult, dict[str, tuple[str, str]], dict[str, str]]:
    """Run HOLD in a thread; from the host, its /proc limits (soft, hard) and status fields."""
    marker = f"rlimits-{uuid.uuid4().hex}"
    results: list[RunResult] = []
    thread = threading.Thread(
        target=lambda: results.append(run_program(Program(HOLD, args=(marker,)), LIMITS, sandbox))
    )
    thread.start()
    limits: dict[str, tuple[str, str]] = {}
    status: dict[str, str] = {}
    deadline = time.monotonic() + 4
    while not status and time.monotonic() < deadline:
        for pid in _programs(marker):
            try:
                with open(f"/proc/{pid}/limits") as table:
                    lines = table.read().splitlines()
                with open(f"/proc/{pid}/status") as fields:
                    status = dict(
                        line.split(":\t", 1) for line in fields.read().splitlines() if ":\t" in line
                    )
            except OSError:
                continue
            for key, name in NAMES.items():
                line = next(line for line in lines if line.startswith(name))
                soft, hard = line[len(name) :].split()[:2]
                limits[key] = (soft, hard)
        time.sleep(0.02)
    thread.join()
    return results[0], limits, status


def test_the_running_program_has_its_rlimits_as_the_host_sees_them(sandbox: Sandbox) -> None:
    _assert_limits_hold(sandbox)


def test_the_prlimit_setpriv_chain_sets_the_same_as_executor_start(bwrap_sandbox: Sandbox) -> None:
    # Where executor-start cannot be built, runs start through prlimit and setpriv.
    assert bwrap_sandbox.starter_fd is not None, "executor-start was not built here: no C compiler?"
    _assert_limits_hold(replace(bwrap_sandbox, starter_fd=None))


def test_a_run_whose_starter_fails_is_an_internal_error_and_runs_nothing(
    bwrap_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A limit the kernel refuses (soft above hard) fails executor-start before bwrap: nothing runs.
    broken = ((resource.RLIMIT_NOFILE, (64, 32)),)
    monkeypatch.setattr(bwrap, "program_rlimits", lambda *args, **kwargs: broken)
    result = run_program(Program("print('ran')"), LIMITS, bwrap_sandbox)
    assert (result.outcome, result.stdout) == (Outcome.INTERNAL_ERROR, "")
    assert "executor-start: prlimit64 failed" in (result.message or "")


def _assert_limits_hold(sandbox: Sandbox) -> None:
    result, limits, status = _read_while_running(sandbox)
    assert result.outcome is Outcome.SUCCESS, result
    assert limits, "the program was not seen running"
    # The sandbox's own processes of the program's uid: bwrap's two, or a warm run's init.
    own = bwrap.BWRAP_PROCESSES if sandbox.isolation == "bwrap" else 0
    if sandbox.warm_start:
        own = warm.WARM_PROCESSES
    # Without a program uid (not root) RLIMIT_NPROC also counts the worker uid's tasks: not exact.
    if sandbox.program_uid is not None:
        assert limits["nproc"] == (str(LIMITS.max_processes + own),) * 2
    cpu = LIMITS.cpu_time_s
    assert limits["cpu"] == (str(cpu), str(cpu + 1))
    assert limits["fsize"] == (str(LIMITS.max_disk_mb * MIB),) * 2
    assert limits["nofile"] == (str(LIMITS.max_open_files),) * 2
    assert limits["core"] == ("0", "0")
    # RLIMIT_AS only where no cgroup bounds memory.
    expected_as = "unlimited" if sandbox.cgroups is not None else str(LIMITS.memory_mb * MIB)
    assert limits["as"] == (expected_as, expected_as)
    assert status["NoNewPrivs"].strip() == "1"
    if sandbox.program_uid is not None:
        uid = str(sandbox.program_uid)
        assert status["Uid"].split() == [uid] * 4
        assert status["Gid"].split() == [str(sandbox.program_gid)] * 4
        assert status["Groups"].split() == []
