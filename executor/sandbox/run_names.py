"""Names for the host resources of a run (its cgroup, its scratch disk) that tell whose they are.

A name is `w<pid>-<start time>-<run>`: the worker process that made it, told apart from a later
process with the same pid by its start time, and its run number. Any process on the host can then
tell a dead worker's leftovers from a live one's runs, and remove them.
"""

import itertools
import os

from executor.sandbox.processes import stat_fields

# Numbers the runs of this process, so that each has names of its own, even two runs at once.
_RUN_NUMBERS = itertools.count()


def worker_prefix() -> str:
    """What the names of this process's runs start with."""
    return f"w{os.getpid()}-{_start_ticks(os.getpid())}"


def next_run_name(prefix: str) -> str:
    """A name no other run on this host has."""
    return f"{prefix}-{next(_RUN_NUMBERS)}"


def owner_alive(name: str) -> bool:
    """Whether the worker process that named a run still runs; names not of this form count as alive."""
    pid_text, _, rest = name.removeprefix("w").partition("-")
    ticks = rest.partition("-")[0]
    if not (name.startswith("w") and pid_text.isdigit()):
        return True
    try:
        return str(_start_ticks(int(pid_text))) == ticks
    except OSError:
        return False


def _start_ticks(pid: int) -> int:
    return int(stat_fields(pid)[19])
