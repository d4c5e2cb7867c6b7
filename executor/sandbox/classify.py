"""Naming how a run ended: one pure function from what was observed to an Outcome."""

import signal
from dataclasses import dataclass

from executor.sandbox.limits import Limits
from executor.sandbox.result import Outcome

# A peak this close to the memory limit means the program ran into it, whatever it died of.
NEAR_MEMORY_LIMIT = 0.9
# RLIMIT_CPU fires once the process's CPU time reaches the limit; accounting granularity aside.
CPU_TIME_SLACK_S = 0.05
# What runtimes print last when an allocation fails: Python, C++, and libc's strerror(ENOMEM).
_MEMORY_ERRORS = ("std::bad_alloc", "Cannot allocate memory", "out of memory")


@dataclass(frozen=True)
class Ending:
    """What was observed when a run ended."""

    return_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    cpu_time: float = 0.0
    memory_kb: int | None = None
    # The job cgroup's OOM kills; None where runs have no cgroup.
    oom_kills: int | None = None
    stderr: str = ""
    sandbox_error: str | None = None


def classify(ending: Ending, limits: Limits) -> Outcome:
    """The outcome of a run: limits the program hit first, then set-up failures, then its own exit."""
    rules = (
        (ending.output_exceeded, Outcome.OUTPUT_LIMIT),
        (_ran_out_of_time(ending, limits), Outcome.TIMEOUT),
        (ending.sandbox_error is not None, Outcome.INTERNAL_ERROR),
        (ending.return_code == 0, Outcome.SUCCESS),
        (_ran_out_of_memory(ending, limits), Outcome.MEMORY_LIMIT),
    )
    return next((outcome for matched, outcome in rules if matched), Outcome.FAILED)


def _ran_out_of_time(ending: Ending, limits: Limits) -> bool:
    """The wall clock ran out, or the CPU limit did: SIGXCPU, or the SIGKILL at the hard limit after it.

    Only when the CPU time really reached the limit: under bwrap a program's own `exit(152)` reads
    as SIGXCPU, and any program may send itself either signal.
    """
    if ending.timed_out:
        return True
    used_it_all = ending.cpu_time >= limits.cpu_time_s - CPU_TIME_SLACK_S
    return ending.signal in (signal.SIGXCPU, signal.SIGKILL) and used_it_all


def _ran_out_of_memory(ending: Ending, limits: Limits) -> bool:
    """Whether the program died of its memory limit: its cgroup's OOM killer struck, or an allocation failed.

    Without a cgroup, RLIMIT_AS makes allocations fail instead, and a peak near the limit means the
    program ran into it, whatever it died of.
    """
    if ending.oom_kills:
        return True
    last_line = ending.stderr.rstrip().rpartition("\n")[2]
    if last_line.startswith("MemoryError") or any(error in last_line for error in _MEMORY_ERRORS):
        return True
    near_peak = (
        ending.memory_kb is not None and ending.memory_kb >= NEAR_MEMORY_LIMIT * limits.memory_mb * 1024
    )
    return ending.oom_kills is None and near_peak
