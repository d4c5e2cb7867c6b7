"""How a worker isolates the programs it runs, decided once per worker process."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from executor.languages import Language
from executor.sandbox.cgroups import Hierarchy
from executor.sandbox.run_names import worker_prefix


class Isolation(StrEnum):
    """The isolation levels; the values are what /health reports."""

    BWRAP = "bwrap"
    RLIMITS_ONLY = "rlimits-only"


# Appended to the level's name when every run gets a cgroup of its own.
CGROUP_SUFFIX = "+cgroup"


class SandboxUnavailable(RuntimeError):
    """Raised when full isolation is required but bubblewrap or job cgroups do not work on this machine."""


@dataclass(frozen=True)
class Sandbox:
    """The isolation in use, the languages it runs, and the host ids programs run as."""

    isolation: str
    languages: Mapping[str, Language]
    # Set when the worker is root: each worker slot gets its own uid so RLIMIT_NPROC is per job.
    program_uid: int | None = None
    program_gid: int | None = None
    # The compiled BPF filter, built once by detect_sandbox; empty means no filter.
    seccomp_filter: bytes = b""
    # Found by detect_sandbox (backends/bwrap.py); unused under rlimits-only.
    bwrap_path: str = ""
    # The worker's fd of executor-start (starter.py), built by detect_sandbox; None: prlimit and setpriv.
    starter_fd: int | None = None
    # Where each run gets a cgroup of its own (None: rlimits are the only resource bounds).
    cgroups: Hierarchy | None = None
    # Whether each run gets a scratch disk mounted on the host (root only; see scratch.py).
    scratch_disks: bool = False
    # Whether runs that can start warm do (docs/warm-start.md; EXECUTOR_WARM_START).
    warm_start: bool = False
    # What the names of its runs start with (run_names.py): this process's, so that no other
    # worker's sweep takes them for a dead worker's.
    run_prefix: str = field(default_factory=worker_prefix)

    @property
    def level(self) -> str:
        """The isolation level as /health and the worker's log name it: `bwrap+cgroup`, `bwrap`, ..."""
        return self.isolation + (CGROUP_SUFFIX if self.cgroups is not None else "")
