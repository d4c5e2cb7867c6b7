"""What is compared with what: each workload on the service against its floors, with the same W and C."""

import math
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

from bench.floor import (
    bare_runner,
    cgroup_step_ms,
    compile_ms,
    floor_ratios,
    plain_bwrap_runner,
    sandbox_isolation,
    sandbox_runner,
    warm_runner,
)
from bench.measure import floor_phase, service_phase
from bench.pool import Deadline
from bench.report import Figures, ratios, summarize, table
from bench.stack import Stack, running_stack
from bench.workloads import ALL_WORKLOADS, WORKLOADS, Workload

# The latency phase sends one job at a time; this many are enough for a stable p50.
LATENCY_JOBS = 100
C1_OVERHEAD_TARGET_MS = 15.0
SUBMIT_P99_TARGET_MS = 20.0
THROUGHPUT_RATIO_TARGET = 0.8
# Hello world started warm (docs/warm-start.md): its jobs/s through the whole stack over the cold
# floor's, and its submit-to-result time with one client.
WARM_SPEED_UP_TARGET = 2.0
WARM_C1_P50_TARGET_MS = 15.0


@dataclass(frozen=True)
class Options:
    """What to run, from the command line."""

    workers: list[int]
    clients: int
    jobs: int
    workloads: list[str]
    modes: list[str]
    poll_interval_s: float
    latency_phase: bool
    # Each comparison is measured this many times, floor and service back to back each time.
    rounds: int = 1


def run_suite(options: Options, deadline: Deadline) -> dict[str, Any]:
    """Run every comparison, printing each table as it is done; the JSON document of them all."""
    comparisons: list[dict[str, Any]] = []
    # Taken before the run: the load average then says how busy the (shared) machine was.
    measured_on = machine()
    for workers in options.workers:
        with running_stack(workers, deadline) as stack:
            for name in options.workloads:
                comparisons += _compare(stack, ALL_WORKLOADS[name], options, options.clients, deadline)
            if options.latency_phase:
                latency = replace(options, jobs=min(options.jobs, LATENCY_JOBS))
                comparisons += _compare(stack, WORKLOADS["hello"], latency, 1, deadline)
    return {
        "machine": {**measured_on, "loadavg_1m_end": os.getloadavg()[0]},
        "cgroup_step_ms": cgroup_step_ms(),
        "compile_ms": compile_ms(),
        "options": asdict(options),
        "deadline_hit": deadline.expired(),
        "comparisons": comparisons,
        "targets": targets(comparisons, options),
    }


def _compare(
    stack: Stack, workload: Workload, options: Options, clients: int, deadline: Deadline
) -> list[dict[str, Any]]:
    """Floors (the sandbox's, plain bwrap's, bare) then service in each client mode, `rounds` times
    over; one table per mode.

    The machine's speed drifts (it is shared), so each round pairs a service phase with floors
    measured just before it, and the round with the median throughput ratio is the one reported.
    """
    jobs = workload.jobs(options.jobs)
    # One caller at a time leaves a single runner busy, whatever W is.
    parallel = len(stack.workers) if clients > 1 else 1
    floors = partial(floor_phase, workload=workload, jobs=jobs, clients=clients, parallel=parallel)
    rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in options.modes}
    for _ in range(options.rounds):
        floor = summarize(floors(name="floor", runner=sandbox_runner(workload), deadline=deadline))
        warm = warm_runner(workload)
        warm_floor = (
            None if warm is None else summarize(floors(name="warm_floor", runner=warm, deadline=deadline))
        )
        plain_runner = plain_bwrap_runner(workload)
        plain_bwrap = (
            None
            if plain_runner is None
            else summarize(floors(name="plain_bwrap", runner=plain_runner, deadline=deadline))
        )
        bare = summarize(floors(name="bare", runner=bare_runner(workload), deadline=deadline))
        for mode in options.modes:
            service = summarize(
                service_phase(
                    stack,
                    workload,
                    jobs=jobs,
                    clients=clients,
                    mode=mode,
                    poll_interval_s=options.poll_interval_s,
                    deadline=deadline,
                )
            )
            rounds[mode].append(
                {
                    "workload": workload.name,
                    "mode": mode,
                    "workers": len(stack.workers),
                    "clients": clients,
                    "service": service,
                    "floor": floor,
                    "warm_floor": warm_floor,
                    "bare": bare,
                    "plain_bwrap": plain_bwrap,
                    "floor_ratios": floor_ratios(floor, plain_bwrap, bare, warm_floor),
                    "ratio_to_floor": ratios(service, floor),
                    "ratio_to_warm_floor": None if warm_floor is None else ratios(service, warm_floor),
                    "ratio_to_bare": ratios(service, bare),
                }
            )
    found = []
    for mode, measured in rounds.items():
        chosen = _median_round(measured)
        title = f"{workload.name} · {mode} · W={len(stack.workers)} C={clients} · {jobs} jobs"
        if len(measured) > 1:
            title += f" · median of {len(measured)} rounds by throughput ratio"
        columns = [(name, chosen[name]) for name in ("service", "floor", "warm_floor", "plain_bwrap", "bare")]
        short = {"plain_bwrap": "bwrap", "warm_floor": "warm"}
        shown = [(short.get(name, name), figures) for name, figures in columns]
        print(table(title, [(name, figures) for name, figures in shown if figures is not None]))
        per_round = chosen["round_ratios"]
        if len(per_round) > 1:
            listed = "  ".join("-" if ratio is None else f"{ratio:.2f}" for ratio in per_round)
            spread = chosen["round_ratio_spread"]
            if spread is not None:
                listed += f"  (mean {chosen['round_ratio_mean']:.3f} ± {spread:.3f}, two standard errors)"
            print("throughput ratio per round:", listed)
        for key, median in chosen["floor_ratio_medians"].items():
            listed = "  ".join(
                "-" if ratio is None else f"{ratio:.3f}" for ratio in chosen["floor_ratio_rounds"][key]
            )
            print(f"{key} (jobs/s), median of {len(measured)} rounds: {median:.3f}  per round: {listed}")
        print(flush=True)
        found.append(chosen)
    return found


def _median_round(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose throughput ratio is the median (the lower middle one for an even count), with
    every round's ratio, their mean and two standard errors of it: on a noisy machine the mean of many
    rounds tells a small change apart where one round cannot."""
    by_ratio = sorted(measured, key=lambda item: item["ratio_to_floor"].get("jobs_per_s") or 0.0)
    chosen = by_ratio[(len(by_ratio) - 1) // 2]
    round_ratios = [item["ratio_to_floor"].get("jobs_per_s") for item in measured]
    known = [ratio for ratio in round_ratios if ratio is not None]
    mean = statistics.fmean(known) if known else None
    spread = 2 * statistics.stdev(known) / math.sqrt(len(known)) if len(known) > 1 else None
    # The floors' own ratios (the sandbox floor over plain bwrap and over bare), each the median of
    # every round's: they do not depend on the service, so not on the round chosen above.
    floor_rounds = {
        key: [item.get("floor_ratios", {}).get(key) for item in measured]
        for key in measured[0].get("floor_ratios", {})
    }
    floor_medians = {
        key: statistics.median(known)
        for key, values in floor_rounds.items()
        if (known := [value for value in values if value is not None])
    }
    return {
        **chosen,
        "round_ratios": round_ratios,
        "round_ratio_mean": mean,
        "round_ratio_spread": spread,
        "floor_ratio_rounds": floor_rounds,
        "floor_ratio_medians": floor_medians,
    }


def targets(comparisons: list[dict[str, Any]], options: Options) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    found = []
    for item in comparisons:
        service, floor = item["service"], item["floor"]
        where = {key: item[key] for key in ("workload", "mode", "workers", "clients")}
        if item["clients"] == 1 and service["latency_p50_ms"] and floor["latency_p50_ms"]:
            overhead = service["latency_p50_ms"] - floor["latency_p50_ms"]
            found.append(_target("C=1 p50 minus floor p50, ms", where, overhead, C1_OVERHEAD_TARGET_MS, "<="))
        if item["clients"] == options.clients and service["submit_p99_ms"] is not None:
            submit = service["submit_p99_ms"]
            found.append(_target("submit p99, ms", where, submit, SUBMIT_P99_TARGET_MS, "<="))
        if item["clients"] == 1 and service["latency_p50_ms"] and item["warm_floor"] is not None:
            found.append(
                _target("C=1 p50, ms", where, service["latency_p50_ms"], WARM_C1_P50_TARGET_MS, "<=")
            )
        ratio = item["ratio_to_floor"].get("jobs_per_s")
        if item["clients"] > 1 and ratio is not None:
            if item["warm_floor"] is None:
                found.append(_target("throughput / floor", where, ratio, THROUGHPUT_RATIO_TARGET, ">="))
            else:
                # Started warm, the service is held to the warm floor, and its speed to the cold one.
                warm = item["ratio_to_warm_floor"].get("jobs_per_s")
                if warm is not None:
                    found.append(
                        _target("throughput / warm floor", where, warm, THROUGHPUT_RATIO_TARGET, ">=")
                    )
                if item["workload"] == "hello":  # the short program warm starts are for
                    found.append(_target("throughput / cold floor", where, ratio, WARM_SPEED_UP_TARGET, ">="))
    return found


def _target(name: str, where: Figures, value: float, limit: float, relation: str) -> dict[str, Any]:
    met = value <= limit if relation == "<=" else value >= limit
    return {"target": name, **where, "value": value, "limit": f"{relation} {limit}", "met": met}


def machine() -> dict[str, Any]:
    """What the figures were measured on; the machine is shared, so its load is part of the record."""
    from executor.settings import Settings

    python = Settings().python
    version = subprocess.run([python, "-V"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "nproc": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "bench_python": platform.python_version(),
        "program_python": f"{python} ({version})",
        "isolation": sandbox_isolation(),
        "kernel": platform.release(),
    }
