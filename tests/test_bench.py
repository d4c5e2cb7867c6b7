"""The benchmark's own logic: how rounds are reported, what a phase measures, and the worker-cost and
web-cost tools."""

import math
import os
import subprocess
import sys
import time

import pytest

from bench import judging, measure, redis_ceiling, streams, web_cost, worker_cost
from bench.floor import _sandbox, bare_runner, starts_warm_here, warm_runner
from bench.pool import Deadline
from bench.procstat import idle_s, zygote_cpu_s, zygote_memory_mib
from bench.stack import running_stack
from bench.suite import _median_round
from bench.workloads import LANGUAGE_WORKLOADS, WORKLOADS, new_token
from executor.sandbox.warm import backend
from workers import worker as worker_module


def rounds(*ratios: float | None) -> list[dict[str, object]]:
    return [{"round": number, "ratio_to_floor": {"jobs_per_s": ratio}} for number, ratio in enumerate(ratios)]


def test_the_round_with_the_median_ratio_is_reported_with_every_ratio_and_their_mean() -> None:
    chosen = _median_round(rounds(0.9, 0.7, 0.8, 0.75))
    assert chosen["round"] == 3  # the lower middle of 0.7, 0.75, 0.8, 0.9
    assert chosen["round_ratios"] == [0.9, 0.7, 0.8, 0.75]
    assert math.isclose(chosen["round_ratio_mean"], 0.7875)
    # Two standard errors of the mean: 2 * stdev / sqrt(n).
    assert math.isclose(chosen["round_ratio_spread"], 2 * 0.0853912 / 2, rel_tol=1e-4)


def test_rounds_without_a_ratio_leave_the_mean_out() -> None:
    chosen = _median_round(rounds(None, None))
    assert (chosen["round_ratio_mean"], chosen["round_ratio_spread"]) == (None, None)


@pytest.mark.usefixtures("worker_slot_given_back")
def test_the_worker_cost_tool_runs_every_job_and_counts_what_it_spent() -> None:
    # Enough jobs for redis-server's CPU to span several of /proc's 10 ms ticks (30 jobs could read 0).
    figures = worker_cost.measure(300, "WARNING")
    assert figures["finished"] == 300
    assert figures["worker_cpu_ms_per_job"] > 0
    assert figures["wall_ms_per_job"] >= figures["worker_cpu_ms_per_job"] * 0.5
    # Each job's claim, start and finish are several commands; a stub that skipped the worker would not be.
    assert figures["redis_commands_per_job"] > 10
    assert figures["redis_cpu_ms_per_job"] > 0
    assert worker_module.run_job is not worker_cost.canned_run_job  # the real job function is back


@pytest.mark.usefixtures("worker_slot_given_back")
def test_the_web_cost_tool_answers_every_request_as_usual_and_counts_what_it_spent() -> None:
    figures = web_cost.measure(20)
    assert (figures["submit_ok"], figures["poll_ok"]) == (20, 20)  # 202 for each submission, 200 per poll
    assert figures["submit_cpu_ms"] > 0
    assert figures["poll_cpu_ms"] > 0
    assert worker_module.run_job is not worker_cost.canned_run_job


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_workload_s_program_prints_what_its_check_expects_and_no_other_job_s(name: str) -> None:
    workload, token = WORKLOADS[name], new_token()
    ran = subprocess.run(
        [sys.executable, "-c", workload.code(token)], check=False, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stderr
    assert workload.check(ran.stdout, token)
    assert not workload.check(ran.stdout, new_token())


def test_a_phase_reports_its_idle_core_seconds_over_its_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([100.0, 101.5])  # the machine's idle seconds before and after the phase
    monkeypatch.setattr(measure, "idle_s", lambda: next(readings))

    def runner(token: str, index: int) -> tuple[str, str]:
        time.sleep(0.05)
        return "success", f"hello {token}\n"

    phase = measure.floor_phase(
        "floor", runner, WORKLOADS["hello"], jobs=10, clients=2, parallel=2, deadline=Deadline(60)
    )
    assert sum(sample.ok for sample in phase.samples) == 10
    assert phase.resources["idle_cores"] == pytest.approx(1.5 / phase.elapsed_s)


def test_the_machine_s_idle_seconds_only_grow_and_never_faster_than_its_cores_can_idle() -> None:
    cores = os.cpu_count() or 1
    before, started = idle_s(), time.monotonic()
    time.sleep(0.2)
    after, waited = idle_s(), time.monotonic() - started
    # The kernel counts in ticks of 10 ms per core.
    assert 0 <= after - before <= cores * (waited + 0.02)


@pytest.mark.parametrize("name", sorted(LANGUAGE_WORKLOADS))
def test_each_language_workload_prints_what_its_check_expects_through_its_bare_floor(name: str) -> None:
    workload, token = LANGUAGE_WORKLOADS[name], new_token()
    status, stdout = bare_runner(workload)(token, 0)
    assert status == "success", stdout
    assert workload.check(stdout, token)
    assert not workload.check(stdout, new_token())


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the judging floor compiles C, which needs a root worker's disks"
)
@pytest.mark.parametrize("language", sorted(judging.PROGRAMS))
def test_the_judging_floor_passes_every_case_of_its_workload(language: str) -> None:
    """The floor asserts that every case succeeded: a broken workload would time nothing useful."""
    assert judging.floor_seconds(judging.judging_request(language)) > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="warm starts run as a root worker's slots do")
def test_the_warm_floors_start_their_runs_warm_and_count_the_zygote_s_cpu_and_memory() -> None:
    """The warm floor and the warm judging floor go through a zygote (not silently cold), and what it
    and its runs spend is read from the zygote, since no run is this process's child."""
    runner = warm_runner(WORKLOADS["hello"])
    assert runner is not None
    try:
        cpu_before = zygote_cpu_s([os.getpid()])
        for index in (0, 1):  # one zygote per runner (slot), as the floor's threads need
            token = new_token()
            assert runner(token, index)[0] == "success"
        assert starts_warm_here("python") and not starts_warm_here("c")
        assert judging.floor_seconds(judging.judging_request("python"), warm=True) > 0
        # The judging floor runs in runner 0's slot (this process may hold other zygotes of its own).
        runs = [backend._ZYGOTES[_sandbox(index).program_uid, "python"].runs for index in (0, 1)]
        assert runs == [1 + judging.CASES, 1], runs
        assert zygote_cpu_s([os.getpid()]) > cpu_before
        memory = zygote_memory_mib([os.getpid()])
        assert 0 < memory["zygote_pss_mib"] < memory["zygote_rss_mib"], memory
    finally:
        backend.stop_zygotes()
    assert zygote_memory_mib([os.getpid()]) == {}


def test_a_streams_round_holds_every_stream_open_while_it_times_submissions() -> None:
    deadline = Deadline(240)
    with running_stack(1, deadline) as stack:
        result = streams.measure_round(stack, deadline, streams=20, submits=20)
    assert result.ok, result
    assert result.alone.codes == result.beside_streams.codes == {202: 20}
    assert result.held_while_timed == 20
    assert result.stream_events >= 20  # each stream's queued status, at least
    assert result.web_cpu_ms_per_stream_s > 0 and result.redis_commands_per_stream_s > 0


def test_the_redis_ceiling_tool_runs_every_job_in_both_phases_and_counts_what_redis_spent() -> None:
    figures = redis_ceiling.measure(40, 2)
    for phase in ("estimate", "check"):
        assert figures[phase]["answered_200"] == figures[phase]["jobs"] == 40
        assert figures[phase]["redis_commands_per_job"] > 20  # enqueue, claim, start, finish, wait
        assert figures[phase]["redis_cpu_s"] > 0
    assert worker_module.run_job is not worker_cost.canned_run_job  # this process's is untouched
