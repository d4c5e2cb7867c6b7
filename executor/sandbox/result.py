"""The outcome of one run, as a closed set of words and a frozen record."""

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a run ended; the values are the API's terminal status words."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    COMPILE_ERROR = "compile_error"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True)
class RunResult:
    """Everything the client learns about a finished run."""

    outcome: Outcome
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    return_code: int | None = None
    signal: str | None = None
    execution_time: float = 0.0
    cpu_time: float = 0.0
    memory_kb: int | None = None
    message: str | None = None
    # Languages that compile: what the compiler printed, and how long it took (seconds).
    compile_output: str | None = None
    compile_time: float | None = None
    # Files out (API.md 1.1), when any were asked for (or the language collects some).
    files: tuple[dict[str, Any], ...] | None = None
    files_truncated: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the outcome under the API's name `status`."""
        fields = asdict(self)
        fields["files"] = list(self.files) if self.files is not None else None
        fields["status"] = self.outcome.value
        del fields["outcome"]
        return fields
