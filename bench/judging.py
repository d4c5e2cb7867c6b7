"""`make bench BENCH_ARGS=--judging`: what judging costs per case, and the submit time of a batch.

A C and a Python program are each judged against 100 cases, through the service (one
`POST ?wait=true` at a time) and through the judge called directly in this process, with the same
sandbox as a worker's: the same compile plus 100 runs, the floor. The ratio floor time / service time
is the share of a case's cost that is the work itself; the target is >= 0.9 (a case must not pay for
queue or HTTP round trips). Rounds alternate floor and service; the headline is their median.

Python's cases start warm, as a worker starts them by default (docs/warm-start.md): its floor is the
judge with warm starts, and the cold floor (every case a fresh interpreter) is measured in the same
rounds; the target for cold floor time / service time is >= 3.

Then a 100-job batch is submitted `BATCH_SUBMITS` times (each canceled at once, so the workers stay
idle): the submit time's median and 95th percentile, target <= 50 ms at the median.
"""

import statistics
import time
from typing import Any

from bench.client import Connection
from bench.floor import _sandbox, starts_warm_here
from bench.pool import Deadline
from bench.report import json_line
from bench.stack import running_stack
from bench.suite import machine

CASES = 100
BATCH_JOBS = 100
BATCH_SUBMITS = 20
CASE_TARGET = 0.9
WARM_SPEED_UP_TARGET = 3.0
BATCH_TARGET_MS = 50.0
PROGRAMS = {
    "c": (
        "#include <stdio.h>\n"
        "int main(void) {\n"
        "    long a, b;\n"
        '    if (scanf("%ld %ld", &a, &b) != 2) return 1;\n'
        '    printf("%ld\\n", a + b);\n'
        "}\n"
    ),
    "python": "a, b = map(int, input().split())\nprint(a + b)",
}


def judging_request(language: str) -> dict[str, Any]:
    """The program of `language` against CASES cases of a + b, each with its expected output."""
    tests = [{"stdin": f"{n} {n * 7}", "expected_output": str(n * 8)} for n in range(CASES)]
    # A case's timeout (2 s) such that 100 of them, with the compile's, fit a job's limit.
    return {
        "code": PROGRAMS[language],
        "language": language,
        "timeout": 2,
        "tests": tests,
        "checker": {"type": "tokens"},
    }


def floor_seconds(request: dict[str, Any], warm: bool = False) -> float:
    """The same compile and runs through the judge called directly, as a worker calls it, starting
    each case cold, or with `warm` from a zygote."""
    from dataclasses import replace

    from executor.judging.cases import Case, Judging, judge
    from executor.judging.checkers import TokensChecker
    from executor.sandbox import Limits, Program

    cases = [Case(stdin=case["stdin"], expected_output=case["expected_output"]) for case in request["tests"]]
    program = Program(request["code"], language=request["language"])
    began = time.perf_counter()
    sandbox = replace(_sandbox(0), warm_start=warm)
    verdicts = judge(program, cases, Judging(TokensChecker(type="tokens")), Limits(), sandbox)
    elapsed = time.perf_counter() - began
    assert isinstance(verdicts, list), verdicts
    assert all(verdict.status == "success" for verdict in verdicts), [v.status for v in verdicts]
    return elapsed


def service_seconds(connection: Connection, request: dict[str, Any]) -> float:
    """One judged job through the API, waited for."""
    began = time.perf_counter()
    status, view = connection.request("POST", "/api/v1/execute?wait=true", request)
    elapsed = time.perf_counter() - began
    assert status == 200 and view["passed"] == CASES, (status, view)
    return elapsed


def batch_submit_ms(connection: Connection) -> list[float]:
    """The time each 100-job batch takes to be accepted (then canceled, unrun)."""
    batch = {"jobs": [{"code": f"print({n})", "ref": f"r{n}"} for n in range(BATCH_JOBS)]}
    times = []
    for _ in range(BATCH_SUBMITS):
        began = time.perf_counter()
        status, accepted = connection.request("POST", "/api/v1/batches", batch)
        times.append((time.perf_counter() - began) * 1000)
        assert status == 202, accepted
        connection.request("DELETE", accepted["status_url"])
    return times


def run_judging(workers: int, rounds: int, deadline: Deadline) -> dict[str, Any]:
    """Every figure of this benchmark, as one JSON-ready document."""
    figures: dict[str, Any] = {"cases": CASES, "rounds": rounds, "languages": {}}
    with running_stack(workers, deadline) as stack, stack.watched(deadline):
        connection = Connection(stack.base_url)
        for language in PROGRAMS:
            request = judging_request(language)
            warm = starts_warm_here(language)
            service_seconds(connection, request)  # warm: the workers' first job of a language
            floor_seconds(request, warm)
            ratios, floors, services, cold_floors = [], [], [], []
            for _ in range(rounds):
                floor = floor_seconds(request, warm)
                cold = floor_seconds(request) if warm else floor
                service = service_seconds(connection, request)
                floors.append(floor)
                cold_floors.append(cold)
                services.append(service)
                ratios.append(floor / service)
            figures["languages"][language] = {
                "warm": warm,
                "floor_ms_per_case": statistics.median(floors) * 1000 / CASES,
                "cold_floor_ms_per_case": statistics.median(cold_floors) * 1000 / CASES,
                "service_ms_per_case": statistics.median(services) * 1000 / CASES,
                "ratio_to_floor": statistics.median(ratios),
                "round_ratios": [round(ratio, 3) for ratio in ratios],
                "speed_up_over_cold_floor": statistics.median(
                    cold / service for cold, service in zip(cold_floors, services, strict=True)
                ),
            }
        submits = batch_submit_ms(connection)
        connection.close()
    figures["batch_submit_ms_p50"] = statistics.median(submits)
    figures["batch_submit_ms_p95"] = statistics.quantiles(submits, n=20)[-1]
    return figures


def report(figures: dict[str, Any], workers: int) -> bool:
    """Print the figures for people and as a JSON line; whether every target was met."""
    met = True
    print(f"== judging · W={workers} · {CASES} cases per job, median of {figures['rounds']} rounds")
    for language, numbers in figures["languages"].items():
        verdict = "met" if numbers["ratio_to_floor"] >= CASE_TARGET else "MISSED"
        met = met and verdict == "met"
        path = "warm" if numbers["warm"] else "cold"
        print(
            f"{language:8} service {numbers['service_ms_per_case']:6.2f} ms/case, {path} floor "
            f"{numbers['floor_ms_per_case']:6.2f} ms/case, ratio {numbers['ratio_to_floor']:.3f} "
            f"(>= {CASE_TARGET}: {verdict}; rounds {numbers['round_ratios']})"
        )
        if numbers["warm"]:
            speed_up = numbers["speed_up_over_cold_floor"]
            verdict = "met" if speed_up >= WARM_SPEED_UP_TARGET else "MISSED"
            met = met and verdict == "met"
            print(
                f"{'':8} cold floor {numbers['cold_floor_ms_per_case']:6.2f} ms/case: the service is "
                f"{speed_up:.2f}x faster (>= {WARM_SPEED_UP_TARGET}: {verdict})"
            )
    p50, p95 = figures["batch_submit_ms_p50"], figures["batch_submit_ms_p95"]
    verdict = "met" if p50 <= BATCH_TARGET_MS else "MISSED"
    met = met and verdict == "met"
    print(
        f"batch of {BATCH_JOBS} submitted in {p50:.1f} ms p50, {p95:.1f} ms p95 "
        f"(<= {BATCH_TARGET_MS} ms: {verdict})"
    )
    print(json_line({"bench": "executor-judging", "machine": machine(), "judging": figures}), flush=True)
    return met
