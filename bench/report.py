"""Figures from samples, their ratios to the floor, and the two outputs: a table and one JSON line."""

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.samples import JobSample

DOCUMENTED_CODES = {200, 202, 400, 401, 404, 405, 409, 413, 414, 415, 422, 429, 503}
Figures = dict[str, Any]
RATIO_KEYS = [
    "jobs_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "overhead_cpu_ms_per_job",
    "program_cpu_ms_per_job",
]

# (key, label) of the table's rows, in order; a row is left out when no column has a value.
ROWS = [
    ("ok", "jobs ok"),
    ("jobs_per_s", "throughput, jobs/s"),
    ("latency_p50_ms", "submit-to-result p50, ms"),
    ("latency_p95_ms", "submit-to-result p95, ms"),
    ("latency_p99_ms", "submit-to-result p99, ms"),
    ("submit_p50_ms", "submit (POST) p50, ms"),
    ("submit_p99_ms", "submit (POST) p99, ms"),
    ("polls_per_job", "polls per job"),
    ("answer_delay_p50_ms", "answer after ended_at p50, ms"),
    ("answer_delay_p99_ms", "answer after ended_at p99, ms"),
    ("overhead_cpu_ms_per_job", "service|runner CPU ms/job"),
    ("web_cpu_ms_per_job", "  of which gunicorn"),
    ("worker_cpu_ms_per_job", "  of which rq workers"),
    ("redis_cpu_ms_per_job", "  of which redis-server"),
    ("program_cpu_ms_per_job", "program CPU ms/job"),
    ("redis_commands_per_job", "redis commands per job"),
    ("client_cpu_ms_per_job", "bench client CPU ms/job"),
    ("idle_cores", "idle cores (mean over the phase)"),
    ("worker_rss_mib", "rq worker RSS, MiB (max)"),
    ("web_rss_mib", "gunicorn RSS, MiB (all)"),
    ("redis_rss_mib", "redis-server RSS, MiB"),
    ("non_2xx", "non-2xx responses"),
    ("unexpected_codes", "responses outside API.md"),
    ("wrong_or_failed", "jobs failed or wrong output"),
]


@dataclass
class Phase:
    """One measured run of a workload: its samples, wall time and resource figures."""

    samples: list[JobSample]
    elapsed_s: float
    jobs: int
    resources: Figures = field(default_factory=dict)


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which `fraction` of `values` lie, interpolating between neighbours."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(values: list[float], fraction: float) -> float | None:
    found = percentile(values, fraction)
    return None if found is None else found * 1000


def summarize(phase: Phase) -> Figures:
    """The figures of one phase; HTTP figures are None for phases without HTTP."""
    samples = phase.samples
    ok = sum(sample.ok for sample in samples)
    codes = [code for sample in samples for code in sample.http_codes]
    http = bool(codes)
    submits = [s.submit_s for s in samples if s.submit_s is not None]
    delays = [s.answer_delay_s for s in samples if s.answer_delay_s is not None]
    figures: Figures = {
        "jobs": phase.jobs,
        "completed": len(samples),
        "ok": ok,
        "wrong_or_failed": phase.jobs - ok,
        "elapsed_s": phase.elapsed_s,
        "jobs_per_s": ok / phase.elapsed_s if phase.elapsed_s > 0 else None,
        "latency_p50_ms": _ms([s.latency_s for s in samples], 0.50),
        "latency_p95_ms": _ms([s.latency_s for s in samples], 0.95),
        "latency_p99_ms": _ms([s.latency_s for s in samples], 0.99),
        "submit_p50_ms": _ms(submits, 0.50),
        "submit_p99_ms": _ms(submits, 0.99),
        "polls_per_job": sum(s.polls for s in samples) / len(samples) if http and samples else None,
        "answer_delay_p50_ms": _ms(delays, 0.50),
        "answer_delay_p99_ms": _ms(delays, 0.99),
        "non_2xx": sum(not 200 <= code < 300 for code in codes) if http else None,
        "unexpected_codes": sum(code not in DOCUMENTED_CODES for code in codes) if http else None,
        "reconnects": sum(s.reconnects for s in samples) if http else None,
        "errors": sorted({s.error for s in samples if s.error})[:3],
        "statuses": dict(Counter(s.status for s in samples if not s.ok)),
    }
    figures.update(phase.resources)
    return figures


def ratios(figures: Figures, floor: Figures) -> dict[str, float]:
    """The rate, time and CPU figures the floor also has, divided by the floor's."""
    found = {}
    for key in RATIO_KEYS:
        value, base = figures.get(key), floor.get(key)
        if isinstance(value, int | float) and isinstance(base, int | float) and base:
            found[key] = value / base
    return found


def _cell(value: Any, width: int = 10) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:{width}.{1 if abs(value) >= 10 else 2}f}"
    return str(value).rjust(width)


def table(title: str, columns: list[tuple[str, Figures]]) -> str:
    """Rows of figures with one column per phase, each after the first followed by the first's ratio to it."""
    first_name, first = columns[0]
    header = f"{'':34}{first_name:>10}"
    for name, _ in columns[1:]:
        header += f"{name:>10}{'ratio':>8}"
    lines = [f"== {title}", header]
    for key, label in ROWS:
        values = [figures.get(key) for _, figures in columns]
        if all(value is None for value in values):
            continue
        line = f"{label:34}{_cell(first.get(key))}"
        for _, figures in columns[1:]:
            ratio = ratios({key: first.get(key)}, figures).get(key)
            line += _cell(figures.get(key)) + (f"{ratio:8.2f}" if ratio is not None else f"{'-':>8}")
        lines.append(line)
    failures = first.get("statuses") or {}
    if failures or first.get("errors"):
        lines.append(f"  failures: {failures} {first.get('errors') or ''}")
    return "\n".join(lines)


def json_line(document: dict[str, Any]) -> str:
    """The whole report on one line, for machines; floats rounded so the line stays short."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 3)
        if isinstance(value, dict):
            return {key: rounded(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rounded(item) for item in value]
        return value

    return json.dumps(rounded(document), separators=(",", ":"))
