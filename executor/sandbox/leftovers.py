"""Removing what runs of dead workers left on this host: their job cgroups, with what still runs in
them, and their scratch disks.

A worker SIGKILLed in the middle of a run cannot clean up after it; every worker sweeps at start
and after each heartbeat, so nothing of such a run lasts longer than the lost-worker window.
"""

import os

from executor.sandbox.cgroups import sweep_leftovers
from executor.sandbox.isolation import Sandbox
from executor.sandbox.run_names import owner_alive
from executor.sandbox.scratch import SCRATCH_ROOT, Scratch, leftover_names, unmount_scratch


def sweep_leftover_runs(sandbox: Sandbox) -> list[str]:
    """Kill and remove what dead workers' runs left; return the names of the runs swept."""
    # The processes first: they hold the scratch disks.
    swept = [] if sandbox.cgroups is None else sweep_leftovers(sandbox.cgroups)
    if sandbox.scratch_disks:
        for name in leftover_names():
            if not owner_alive(name):
                unmount_scratch(Scratch(os.path.join(SCRATCH_ROOT, name)))
                swept.append(name)
    return sorted(set(swept))
