"""`python -m bench`: the command line of the benchmark (see docs/benchmark.md)."""

import argparse
import signal
import sys
from dataclasses import replace
from typing import Any

from bench.hosts import HostsOptions, run_hosts
from bench.hosts import report as report_hosts
from bench.judging import report as report_judging
from bench.judging import run_judging
from bench.load import run_load
from bench.pool import Deadline
from bench.report import json_line
from bench.stack import running_stack
from bench.streams import measure_streams
from bench.suite import Options, machine, run_suite
from bench.waiters import measure_waiters
from bench.workloads import LANGUAGE_WORKLOADS, WORKLOADS

SCALING_WORKERS = [1, 2, 4]
SCALING_WORKLOADS = ["hello", "sleep"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The flags; --jobs and --clients default to 300 and 8, or 1000 and 50 with --load."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="rq worker processes (W), default 2")
    parser.add_argument("--clients", type=int, help="concurrent HTTP clients (C), default 8 (50 with --load)")
    parser.add_argument(
        "--jobs", type=int, help="jobs per workload (N), default 300 (1000 with --load); cpu runs N/5"
    )
    parser.add_argument(
        "--workload",
        choices=[*WORKLOADS, *LANGUAGE_WORKLOADS, "all", "languages"],
        default="all",
        help="all: the Python workloads; languages: hello world in each other language",
    )
    parser.add_argument(
        "--mode",
        choices=["poll", "wait", "both"],
        default="both",
        help="poll: POST then GET until terminal; wait: POST ?wait=true; both (default): one run each",
    )
    parser.add_argument("--poll-interval-ms", type=float, default=5.0, help="sleep between polls, default 5")
    parser.add_argument("--scaling", action="store_true", help="hello and sleep with W = 1, 2 and 4")
    parser.add_argument("--load", action="store_true", help="the load check: 1000 jobs from 50 clients")
    parser.add_argument(
        "--waiters", action="store_true", help="submit latency beside 100 clients held by ?wait=true"
    )
    parser.add_argument(
        "--streams", action="store_true", help="submit latency alone and beside 200 open event streams"
    )
    parser.add_argument(
        "--judging",
        action="store_true",
        help="judging: ms per case against the floor, and a batch's submit time",
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="emulate this many worker hosts (network namespaces, as root) sharing one Redis: "
        "spread, throughput over hosts, a host's link going down mid-job",
    )
    parser.add_argument("--workers-per-host", type=int, default=1, help="workers on each host with --hosts")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each comparison this many times, floor and service back to back; report the median",
    )
    parser.add_argument("--time-limit", type=float, default=1500.0, help="seconds for the whole run")
    args = parser.parse_args(argv)
    if min(args.workers, args.clients or 1, args.jobs or 1, args.rounds) < 1 or args.poll_interval_ms < 0:
        parser.error("--workers, --clients, --jobs and --rounds must be >= 1, --poll-interval-ms >= 0")
    if args.hosts < 0 or args.workers_per_host < 1:
        parser.error("--hosts must be >= 0, --workers-per-host >= 1")
    return args


def main(argv: list[str]) -> int:  # noqa: PLR0911 (one return per mode)
    """Run what the flags ask for; exit 1 when a job failed, got another job's output or an
    undocumented HTTP code, or the time limit cut the run short. Missed targets are reported, not fatal."""
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    # SIGTERM would end the process without running `finally`; as an interrupt, the stack is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.load:
            return _load(args, deadline)
        if args.waiters:
            return _waiters(args, deadline)
        if args.streams:
            return _streams(args, deadline)
        if args.hosts:
            return _hosts(args, deadline)
        if args.judging:
            figures = run_judging(args.workers, args.rounds, deadline)
            report_judging(figures, args.workers)  # a missed target is reported, not fatal
            return 0
        return _suite(args, deadline)
    except KeyboardInterrupt:
        deadline.cancel()
        print("bench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _suite(args: argparse.Namespace, deadline: Deadline) -> int:
    groups = {"all": list(WORKLOADS), "languages": list(LANGUAGE_WORKLOADS)}
    workloads = groups.get(args.workload, [args.workload])
    options = Options(
        workers=SCALING_WORKERS if args.scaling else [args.workers],
        clients=args.clients or 8,
        jobs=args.jobs or 300,
        workloads=SCALING_WORKLOADS if args.scaling else workloads,
        modes=["poll", "wait"] if args.mode == "both" else [args.mode],
        poll_interval_s=args.poll_interval_ms / 1000,
        latency_phase=not args.scaling,
        rounds=args.rounds,
    )
    document = run_suite(options, deadline)
    for language, median in document["compile_ms"].items():
        print(f"compile per job, {language} (median, the floor's jobs): {median:.1f} ms")
    step = document["cgroup_step_ms"]
    print(f"cgroup step per run (make, join, read, remove; in the floor too): {step:.3f} ms" if step else "")
    print()
    for target in document["targets"]:
        where = f"{target['workload']} {target['mode']} W={target['workers']} C={target['clients']}"
        verdict = "met" if target["met"] else "MISSED"
        value = f"{target['value']:9.2f} {target['limit']:>8}"
        print(f"target {target['target']:30} {where:28} {value}  {verdict}")
    print(json_line({"bench": "executor", **document}), flush=True)
    # A floor that failed jobs would flatter the ratio as much as a failing service would spoil it.
    broken = document["deadline_hit"] or any(
        item["service"]["wrong_or_failed"]
        or item["service"]["unexpected_codes"]
        or item["floor"]["wrong_or_failed"]
        or (item["warm_floor"] or {}).get("wrong_or_failed")
        or item["bare"]["wrong_or_failed"]
        for item in document["comparisons"]
    )
    return 1 if broken else 0


def _hosts(args: argparse.Namespace, deadline: Deadline) -> int:
    options = HostsOptions(args.hosts, args.workers_per_host, rounds=args.rounds)
    options = replace(options, spread_jobs=args.jobs) if args.jobs else options
    return 0 if report_hosts(run_hosts(options, deadline)) else 1


def _load(args: argparse.Namespace, deadline: Deadline) -> int:
    jobs, clients = args.jobs or 1000, args.clients or 50
    with running_stack(args.workers, deadline) as stack, stack.watched(deadline):
        before = stack.usage()
        report = run_load(stack.base_url, jobs, clients, deadline)
        after = stack.usage()
        memory = stack.memory()
    done = max(1, sum(report.statuses.values()))  # fewer than asked when the deadline cut it short
    figures: dict[str, Any] = {
        **report.figures(),
        "workers": args.workers,
        "service_cpu_ms_per_job": (after.service_s - before.service_s) * 1000 / done,
        "program_cpu_ms_per_job": (after.program_s - before.program_s) * 1000 / done,
        **memory,
    }
    _print_figures(
        f"load · W={args.workers} C={clients} · {jobs} jobs, half ?wait=true, half polled", figures
    )
    print(json_line({"bench": "executor-load", "machine": machine(), "load": figures}), flush=True)
    return 0 if report.ok else 1


def _waiters(args: argparse.Namespace, deadline: Deadline) -> int:
    with running_stack(args.workers, deadline) as stack, stack.watched(deadline):
        report = measure_waiters(stack.base_url)
    figures = report.figures()
    title = (
        f"waiters · W={args.workers} · {report.waiters} held by ?wait=true, {report.submits} submits timed"
    )
    _print_figures(title, figures)
    print(json_line({"bench": "executor-waiters", "machine": machine(), "waiters": figures}), flush=True)
    return 0 if report.ok else 1


def _streams(args: argparse.Namespace, deadline: Deadline) -> int:
    with running_stack(args.workers, deadline) as stack, stack.watched(deadline):
        figures = measure_streams(stack, deadline, args.rounds)
    for number, round_figures in enumerate(figures["rounds"], 1):
        _print_figures(f"streams · round {number} · submits alone, then beside open streams", round_figures)
    _print_figures(
        f"streams · W={args.workers} · medians of {len(figures['rounds'])} rounds",
        {key: value for key, value in figures.items() if key != "rounds"},
    )
    print(json_line({"bench": "executor-streams", "machine": machine(), "streams": figures}))
    return 0 if figures["ok"] else 1


def _print_figures(title: str, figures: dict[str, Any]) -> None:
    """A titled list of figures, one per line, for people (the JSON line follows for machines)."""
    print(f"== {title}")
    for key, value in figures.items():
        print(f"{key:28} {round(value, 2) if isinstance(value, float) else value}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
