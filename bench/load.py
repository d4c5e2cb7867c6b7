"""The load check: many clients at once, every job to a terminal status with its own output.

`run_load` needs only the URL of a running stack, so a test can call it with small numbers.
Half the jobs are sent with ?wait=true, half are polled, so both paths carry the load.
"""

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from bench.client import run_clients
from bench.pool import Deadline
from bench.report import DOCUMENTED_CODES, percentile
from bench.workloads import WORKLOADS
from executor.jobs.statuses import TERMINAL_STATUSES

# 50 clients polling every 5 ms would spend the CPU the workers need; a real client polls slower.
LOAD_POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class LoadReport:
    """What the load run saw; `ok` is the verdict."""

    jobs: int
    clients: int
    elapsed_s: float
    terminal: int
    own_output: int
    wrong_output: int
    transport_errors: int
    statuses: dict[str, int]
    http_codes: dict[int, int]
    unexpected_codes: dict[int, int]
    deadline_hit: bool
    jobs_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    polls_per_job: float

    @property
    def ok(self) -> bool:
        """Every job succeeded with its own output, only documented codes (never a 500), in time."""
        return (
            self.own_output == self.jobs
            and not self.unexpected_codes
            and not self.transport_errors
            and not self.deadline_hit
        )

    def figures(self) -> dict[str, Any]:
        """The report as plain JSON-ready values, with the verdict."""
        return {**asdict(self), "ok": self.ok}


def run_load(base_url: str, jobs: int, clients: int, deadline: Deadline) -> LoadReport:
    """Send `jobs` hello jobs from `clients` concurrent clients to the API at `base_url`, by `deadline`."""
    samples, elapsed = run_clients(
        base_url,
        WORKLOADS["hello"],
        jobs=jobs,
        clients=clients,
        mode="mixed",
        poll_interval_s=LOAD_POLL_INTERVAL_S,
        deadline=deadline,
    )
    statuses = Counter(sample.status for sample in samples)
    codes = Counter(code for sample in samples for code in sample.http_codes)
    latencies = [sample.latency_s * 1000 for sample in samples]
    own = sum(sample.ok for sample in samples)
    terminal = sum(sample.status in TERMINAL_STATUSES for sample in samples)
    return LoadReport(
        jobs=jobs,
        clients=clients,
        elapsed_s=elapsed,
        terminal=terminal,
        own_output=own,
        wrong_output=sum(sample.status == "success" and not sample.ok for sample in samples),
        transport_errors=sum(sample.error is not None for sample in samples),
        statuses=dict(statuses),
        http_codes=dict(codes),
        unexpected_codes={code: n for code, n in codes.items() if code not in DOCUMENTED_CODES},
        deadline_hit=deadline.expired() or len(samples) < jobs,
        jobs_per_s=own / elapsed if elapsed > 0 else 0.0,
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p95_ms=percentile(latencies, 0.95),
        latency_p99_ms=percentile(latencies, 0.99),
        polls_per_job=sum(sample.polls for sample in samples) / max(1, len(samples)),
    )
