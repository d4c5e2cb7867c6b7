"""How a run ended is named by one pure function; this table is its specification."""

import signal

import pytest

from executor.sandbox import Limits, Outcome
from executor.sandbox.backends.bwrap import program_status
from executor.sandbox.classify import Ending, classify

LIMITS = Limits(wall_time_s=2, memory_mb=64)
NEAR_CAP_KB = int(0.95 * 64 * 1024)
PYTHON_MEMORY_ERROR = 'Traceback (most recent call last):\n  File "main.py", line 1\nMemoryError\n'


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [
        (Ending(return_code=0), Outcome.SUCCESS),
        (Ending(return_code=1, stderr="Traceback...\nValueError: no\n"), Outcome.FAILED),
        (Ending(signal=signal.SIGSEGV), Outcome.FAILED),
        (Ending(signal=signal.SIGKILL, timed_out=True), Outcome.TIMEOUT),
        (Ending(signal=signal.SIGXCPU, cpu_time=2.0), Outcome.TIMEOUT),
        (Ending(signal=signal.SIGKILL, cpu_time=2.0), Outcome.TIMEOUT),
        (Ending(signal=signal.SIGKILL, cpu_time=0.1), Outcome.FAILED),
        # exit(152) under bwrap, or a SIGXCPU the program sent itself: not a timeout without the CPU time.
        (Ending(signal=signal.SIGXCPU, cpu_time=0.1), Outcome.FAILED),
        (Ending(signal=signal.SIGKILL, cpu_time=0.1, oom_kills=1), Outcome.MEMORY_LIMIT),
        (Ending(signal=signal.SIGKILL, cpu_time=0.1, oom_kills=0), Outcome.FAILED),
        # With a cgroup, a peak at the limit is no verdict: tmpfs and page cache count, and the
        # OOM killer says when the limit was hit.
        (Ending(signal=signal.SIGSEGV, memory_kb=NEAR_CAP_KB, oom_kills=0), Outcome.FAILED),
        (Ending(signal=signal.SIGKILL, output_exceeded=True), Outcome.OUTPUT_LIMIT),
        (Ending(signal=signal.SIGKILL, output_exceeded=True, timed_out=True), Outcome.OUTPUT_LIMIT),
        (Ending(return_code=1, stderr=PYTHON_MEMORY_ERROR), Outcome.MEMORY_LIMIT),
        (Ending(return_code=1, stderr="Traceback...\nMemoryError: out of arena\n"), Outcome.MEMORY_LIMIT),
        (
            Ending(signal=signal.SIGABRT, stderr="terminate called...\n  what():  std::bad_alloc\n"),
            Outcome.MEMORY_LIMIT,
        ),
        (Ending(return_code=1, stderr="OSError: [Errno 12] Cannot allocate memory\n"), Outcome.MEMORY_LIMIT),
        (Ending(signal=signal.SIGSEGV, memory_kb=NEAR_CAP_KB), Outcome.MEMORY_LIMIT),
        (Ending(return_code=0, memory_kb=NEAR_CAP_KB), Outcome.SUCCESS),
        (Ending(return_code=1, stderr="MemoryError was caught\nValueError: other\n"), Outcome.FAILED),
        (Ending(return_code=1, memory_kb=None), Outcome.FAILED),
        (Ending(sandbox_error="bubblewrap failed"), Outcome.INTERNAL_ERROR),
    ],
)
def test_an_ending_is_classified(ending: Ending, outcome: Outcome) -> None:
    assert classify(ending, LIMITS) is outcome


@pytest.mark.parametrize(
    ("exit_code", "status"),
    [
        (0, (0, None)),
        (1, (1, None)),
        (128, (128, None)),
        (137, (None, signal.SIGKILL)),
        (139, (None, signal.SIGSEGV)),
        (255, (255, None)),
    ],
)
def test_bubblewraps_exit_code_is_read_back_as_return_code_or_signal(
    exit_code: int, status: tuple[int | None, int | None]
) -> None:
    assert program_status(exit_code) == status
