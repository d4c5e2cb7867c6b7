"""Nothing a program starts outlives its run, and nothing it does reaches the process that ran it."""

import os
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from executor.sandbox import Outcome, RunResult, kill_running_programs

Run = Callable[..., RunResult]
FindProcesses = Callable[[str], list[int]]

# The daemon, once exec'd, writes to a pipe the program waits on: so it surely ran before the end.
SLEEPER = "import os, sys, time; os.write(int(sys.argv[1]), b'up'); time.sleep(30)"

DAEMON = """
import os, sys
ready, up = os.pipe()
os.set_inheritable(up, True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "{sleeper}", str(up), "{marker}"])
    os._exit(0)
print(os.read(ready, 2).decode())
"""

CHILD_THEN_SLEEP = """
import os, subprocess, sys, time
ready, up = os.pipe()
subprocess.Popen([sys.executable, "-c", "{sleeper}", str(up), "{marker}"], pass_fds=[up])
print(os.read(ready, 2).decode(), flush=True)
time.sleep(30)
"""


def test_a_double_forked_setsid_daemon_does_not_outlive_its_run(
    run: Run, find_processes: FindProcesses
) -> None:
    marker = f"daemon-{uuid.uuid4()}"
    result = run(DAEMON.format(sleeper=SLEEPER, marker=marker))
    assert result.outcome is Outcome.SUCCESS
    assert result.stdout == "up\n"
    assert result.execution_time < 3
    assert find_processes(marker) == []


def test_a_child_outliving_a_timeout_is_killed(run: Run, find_processes: FindProcesses) -> None:
    marker = f"child-{uuid.uuid4()}"
    result = run(CHILD_THEN_SLEEP.format(sleeper=SLEEPER, marker=marker), wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT
    assert result.stdout == "up\n"
    assert find_processes(marker) == []


def test_killing_every_process_it_may_does_not_kill_the_caller(run: Run) -> None:
    result = run("import os, signal\ntry: os.kill(-1, signal.SIGKILL)\nexcept OSError as error: print(error)")
    assert result.outcome in (Outcome.SUCCESS, Outcome.FAILED)
    assert run("print('still here')").stdout == "still here\n"


@pytest.mark.usefixtures("needs_program_uid")
def test_killing_its_parent_does_not_harm_the_caller(run: Run) -> None:
    result = run(
        "import os, signal\ntry: os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError as error: print(error)"
    )
    assert result.outcome in (Outcome.SUCCESS, Outcome.FAILED)
    assert run("print('still here')").stdout == "still here\n"


def test_kill_running_programs_from_another_thread_ends_the_run_promptly(run: Run) -> None:
    killed: list[int] = []
    killer = threading.Timer(0.5, lambda: killed.append(kill_running_programs()))
    started = time.monotonic()
    killer.start()
    result = run("import time; time.sleep(30)", wall_time_s=20)
    killer.join()
    assert killed == [1]
    assert time.monotonic() - started < 2
    assert (result.outcome, result.signal) == (Outcome.FAILED, "SIGKILL")


def test_kill_running_programs_with_nothing_running_kills_nothing() -> None:
    assert kill_running_programs() == 0


def test_the_program_sees_only_its_standard_fds(run: Run) -> None:
    inherited = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(inherited, True)
    try:
        result = run("import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))")
    finally:
        os.close(inherited)
    # 3 is the directory listdir itself opened.
    assert result.stdout == "[0, 1, 2, 3]\n"


def test_runs_killed_while_the_sandbox_is_being_set_up_leave_nothing_behind(run: Run) -> None:
    # A deadline that has passed before bwrap has even reported its pid 1.
    for _ in range(30):
        assert run("print('never')", wall_time_s=0.0001).outcome is Outcome.TIMEOUT
