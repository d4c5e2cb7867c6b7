"""How a worker isolates the programs it runs, decided once per worker process."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from executor.languages import Language


class Isolation(StrEnum):
    """The isolation levels; the values are what /health reports."""

    BWRAP = "bwrap"
    RLIMITS_ONLY = "rlimits-only"


class SandboxUnavailable(RuntimeError):
    """Raised when isolation is required but bubblewrap does not work on this machine."""


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
    bwrap_path: str = "/usr/bin/bwrap"
