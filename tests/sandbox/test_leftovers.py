"""A run whose worker was SIGKILLed leaves nothing behind, even after the program rewrote bwrap's pid 1.

The program (tests/programs/outlive_pid1.py) makes pid 1 drop its parent-death signal, so when
the worker and bwrap's monitor die, pid 1 and the program live on. Two lines hold against it:
seccomp refuses the prctl, and the job's cgroup, which the next sweep kills and removes.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.sandbox import Sandbox, sweep_leftover_runs
from executor.sandbox.scratch import SCRATCH_ROOT
from tests.sandbox.conftest import TEST_UID_BASE, processes_with

REPO = Path(__file__).resolve().parents[2]
ATTACK = (REPO / "tests" / "programs" / "outlive_pid1.py").read_text()
# A uid of this file's own: the attack's survivors must not be confused with other tests' programs.
ATTACK_UID = TEST_UID_BASE + 2
PAUSE = 34  # x86_64: pid 1 sits in pause() once rewritten
# A worker in a process of its own, to be SIGKILLed in the middle of the run.
WORKER = """
import sys
from dataclasses import replace
from executor.languages import build_languages, default_python
from executor.sandbox import Limits, Program, detect_sandbox, run_program
sandbox = detect_sandbox(build_languages(default_python()), {uid}, {uid}, require_isolation=True)
if sys.argv[1] == "without-seccomp":
    sandbox = replace(sandbox, seccomp_filter=b"")
elif sys.argv[1] == "rlimits-only-without-cgroup":
    sandbox = replace(sandbox, isolation="rlimits-only", cgroups=None)
run_program(Program(sys.argv[2], args=(sys.argv[3],)), Limits(wall_time_s=60), sandbox)
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="job cgroups and program uids need root")


@pytest.fixture
def token() -> Iterator[str]:
    """A marker in the attack's command line; whatever carries it is killed at the end, test failed or not."""
    marker = f"outlive-{uuid.uuid4().hex}"
    yield marker
    for pid in processes_with(marker):
        os.kill(pid, signal.SIGKILL)


def start_worker(variant: str, code: str, token: str) -> subprocess.Popen[bytes]:
    """A worker process running `code` in the sandbox `variant` (see WORKER)."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER.format(uid=ATTACK_UID), variant, code, token],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def start_attack(variant: str, token: str) -> subprocess.Popen[bytes]:
    """A worker process running the attack; returns once pid 1 has been rewritten."""
    worker = start_worker(variant, ATTACK, token)
    deadline = time.monotonic() + 20
    while (init := sandbox_init(token)) is None or syscall_of(init) != PAUSE:
        assert time.monotonic() < deadline, "the attack never got to rewrite pid 1"
        assert worker.poll() is None, "the worker ended before the attack ran"
        time.sleep(0.02)
    return worker


def sandbox_init(token: str) -> int | None:
    """The host pid of the sandbox's pid 1 (bwrap's init), found by the token in its command line."""
    for pid in processes_with(token):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if nspid[-1:] == ["1"]:
            return pid
    return None


def syscall_of(pid: int) -> int | None:
    """The system call a process is blocked in, or None (running, or gone)."""
    try:
        first = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None
    return int(first) if first.isdigit() else None


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def test_a_rewritten_pid_1_outlives_its_worker_until_the_sweep_kills_the_whole_job(
    bwrap_sandbox: Sandbox, token: str
) -> None:
    # Without seccomp, to show the cgroup line alone.
    worker = start_attack("without-seccomp", token)
    kill_worker(worker)
    time.sleep(0.3)  # the monitor dies at once with the worker; pid 1 would have followed by now
    survivors = processes_with(token)
    # The attack worked: without the sweep, pid 1 and the program would run on for ever.
    assert len(survivors) >= 2, survivors
    # Any live worker on the host may sweep too (the stack tests' do): whoever does, it is gone.
    sweep_leftover_runs(bwrap_sandbox)
    assert processes_with(token) == []
    assert bwrap_sandbox.cgroups is not None
    prefix = f"w{worker.pid}-"
    assert [name for name in bwrap_sandbox.cgroups.job_names() if name.startswith(prefix)] == []
    assert [name for name in os.listdir(SCRATCH_ROOT) if name.startswith(prefix)] == []


def test_with_seccomp_a_rewritten_pid_1_still_dies_with_its_worker(
    bwrap_sandbox: Sandbox, token: str
) -> None:
    worker = start_attack("with-seccomp", token)
    kill_worker(worker)
    # prctl(PR_SET_PDEATHSIG, 0) was refused: pid 1 keeps its parent-death signal and the pid
    # namespace dies with the monitor, before any sweep.
    deadline = time.monotonic() + 1
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(token) == []
    sweep_leftover_runs(bwrap_sandbox)  # the empty cgroup and the disk the dead worker left


def test_under_rlimits_only_the_program_dies_with_its_worker_even_without_a_cgroup(token: str) -> None:
    worker = start_worker("rlimits-only-without-cgroup", "import time\ntime.sleep(60)", token)
    deadline = time.monotonic() + 20
    while len(processes_with(token)) < 2:  # the worker, and the program it started
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.02)
    kill_worker(worker)
    # Its parent-death signal, set between fork and exec, kills it with the worker.
    deadline = time.monotonic() + 1
    while processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(token) == []
