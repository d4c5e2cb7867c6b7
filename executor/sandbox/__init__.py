"""The sandbox runner: runs one untrusted program in a fresh, limited process tree."""

from executor.sandbox.detect import detect_sandbox
from executor.sandbox.isolation import Isolation, Sandbox, SandboxUnavailable
from executor.sandbox.leftovers import sweep_leftover_runs
from executor.sandbox.limits import Limits
from executor.sandbox.program import Program
from executor.sandbox.result import Outcome, RunResult
from executor.sandbox.runner import Prepared, kill_running_programs, prepare, run_program

__all__ = [
    "Isolation",
    "Limits",
    "Outcome",
    "Prepared",
    "Program",
    "RunResult",
    "Sandbox",
    "SandboxUnavailable",
    "detect_sandbox",
    "kill_running_programs",
    "prepare",
    "run_program",
    "sweep_leftover_runs",
]
