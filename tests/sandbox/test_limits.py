"""Every limit holds: wall clock, CPU, memory, output, disk and processes."""

from collections.abc import Callable

import pytest

from executor.sandbox import Outcome, RunResult, Sandbox
from tests.sandbox.conftest import COUNT_FORKS

Run = Callable[..., RunResult]
CAP = 100_000
FLOOD = "import sys\nwhile True: sys.{stream}.write('x' * 65536)"


def test_a_sleeping_program_times_out_and_is_killed_quickly(run: Run) -> None:
    result = run("import time; time.sleep(30)", wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT
    assert (result.return_code, result.signal) == (None, "SIGKILL")
    assert 1 <= result.execution_time < 2


def test_a_cpu_burner_times_out(run: Run) -> None:
    result = run("while True: pass", wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT


def test_the_cpu_time_of_a_program_killed_at_its_timeout_is_counted(run: Run) -> None:
    # A known amount of CPU, then a sleep: the figure does not depend on the machine's load.
    code = "import time\nwhile time.process_time() < 0.3: pass\nprint('burnt', flush=True)\ntime.sleep(30)"
    result = run(code, wall_time_s=2)
    assert (result.outcome, result.stdout) == (Outcome.TIMEOUT, "burnt\n")
    # The host's count and the program's own clock differ by their granularity (one tick, 10 ms).
    assert 0.29 <= result.cpu_time < 0.6


def test_threads_burning_cpu_time_out(run: Run) -> None:
    code = (
        "import threading\n"
        "def burn():\n"
        "    while True: pass\n"
        "for _ in range(4): threading.Thread(target=burn).start()"
    )
    result = run(code, wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT
    assert result.execution_time < 2


def test_a_program_ignoring_sigterm_is_still_killed_at_the_timeout(run: Run) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)"
    result = run(code, wall_time_s=1)
    assert result.outcome is Outcome.TIMEOUT
    assert result.execution_time < 2


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(10**9)", "chunks = []\nwhile True: chunks.append(bytearray(10**6))"],
    ids=["one-huge-allocation", "many-allocations"],
)
def test_a_memory_bomb_hits_the_memory_limit(run: Run, sandbox: Sandbox, code: str) -> None:
    result = run(code, memory_mb=64)
    assert result.outcome is Outcome.MEMORY_LIMIT
    if sandbox.cgroups is None:
        assert "MemoryError" in result.stderr  # RLIMIT_AS: the allocation fails
    else:
        assert result.signal == "SIGKILL"  # the cgroup's OOM killer
        assert result.memory_kb is not None and result.memory_kb <= 64 * 1024


def test_many_threads_start_at_a_small_memory_limit_with_a_cgroup(run: Run, sandbox: Sandbox) -> None:
    if sandbox.cgroups is None:
        pytest.skip("without a cgroup RLIMIT_AS bounds memory, and each thread reserves 8 MiB of it")
    code = (
        "import threading, time\n"
        "threads = [threading.Thread(target=time.sleep, args=(0.5,)) for _ in range(40)]\n"
        "for thread in threads: thread.start()\n"
        "for thread in threads: thread.join()\n"
        "print(len(threads))"
    )
    # 40 threads reserve 320 MiB of stacks, ten times the limit, and use a few.
    assert run(code, memory_mb=32).stdout == "40\n"


@pytest.mark.parametrize(
    "code", ["import sys; sys.exit(152)", "import os, signal; os.kill(os.getpid(), signal.SIGXCPU)"]
)
def test_a_program_exiting_152_or_signalling_itself_sigxcpu_is_failed_not_timeout(
    run: Run, code: str
) -> None:
    result = run(code, wall_time_s=2)
    assert result.outcome is Outcome.FAILED
    assert result.cpu_time < 1


def test_python_starts_at_the_smallest_memory_limit_the_api_allows(run: Run) -> None:
    assert run("print('ok')", memory_mb=16).stdout == "ok\n"


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_an_output_flood_is_cut_at_the_cap_and_stopped_early(run: Run, stream: str) -> None:
    result = run(FLOOD.format(stream=stream), max_output_bytes=CAP, wall_time_s=10)
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert len(getattr(result, stream)) == CAP
    assert getattr(result, f"{stream}_truncated")
    assert result.execution_time < 2


def test_output_exactly_at_the_cap_is_not_truncated(run: Run) -> None:
    result = run(f"import sys; sys.stdout.write('x' * {CAP})", max_output_bytes=CAP)
    assert result.outcome is Outcome.SUCCESS
    assert (len(result.stdout), result.stdout_truncated) == (CAP, False)


def test_output_one_byte_over_the_cap_is_truncated_to_the_cap(run: Run) -> None:
    result = run(f"import sys; sys.stdout.write('x' * {CAP + 1})", max_output_bytes=CAP)
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert (len(result.stdout), result.stdout_truncated) == (CAP, True)


def test_a_character_cut_by_the_cap_becomes_a_replacement_character(run: Run) -> None:
    result = run("print('abcd€')", max_output_bytes=5)
    assert result.stdout == "abcd\ufffd"


def test_a_disk_filler_fails_at_the_disk_limit(run: Run) -> None:
    code = "with open('big', 'wb') as f:\n    while True: f.write(b'x' * 2**20)"
    result = run(code, max_disk_mb=8)
    assert result.outcome is Outcome.FAILED
    assert "File too large" in result.stderr or "No space left" in result.stderr


def test_many_files_cannot_fill_more_than_the_disk_limit_under_bubblewrap(run_bwrap: Run) -> None:
    code = (
        "written = 0\n"
        "try:\n"
        "    for n in range(100):\n"
        "        with open(f'f{n}', 'wb') as f: f.write(b'x' * 2**20)\n"
        "        written += 1\n"
        "finally:\n"
        "    print(written)"
    )
    result = run_bwrap(code, max_disk_mb=8)
    assert result.outcome is Outcome.FAILED
    assert "No space left" in result.stderr
    assert int(result.stdout) < 8


def test_a_fork_bomb_is_contained_and_the_next_run_still_works(run: Run) -> None:
    bomb = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    result = run(bomb, wall_time_s=1, max_processes=16)
    assert result.outcome is Outcome.TIMEOUT
    assert run("print('after')").stdout == "after\n"


def test_a_program_gets_exactly_its_process_limit(run: Run) -> None:
    result = run(COUNT_FORKS, max_processes=10)
    assert result.outcome is Outcome.SUCCESS
    # The program itself is one of the ten.
    assert int(result.stdout) == 9


def test_threads_count_as_processes(run: Run) -> None:
    code = (
        "import threading, time\n"
        "threading.stack_size(256 * 1024)\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(10):\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(started)"
    )
    result = run(code, max_processes=4, memory_mb=1024)
    assert int(result.stdout) == 3
