"""What is recorded of one job, whichever way it ran."""

from dataclasses import dataclass, field


@dataclass
class JobSample:
    """One job: did it end in success with its own output, and how long each step took."""

    ok: bool
    status: str
    latency_s: float
    # The HTTP figures stay empty for jobs run without HTTP (the floors).
    submit_s: float | None = None
    polls: int = 0
    answer_delay_s: float | None = None
    http_codes: list[int] = field(default_factory=list)
    reconnects: int = 0
    error: str | None = None
