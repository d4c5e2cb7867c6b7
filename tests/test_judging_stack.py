"""Judging through the real stack (API.md 1.1): a grader's C solution with twenty cases, the
validation that refuses a request before anything is queued, and a job that loses its worker or is
canceled in the middle of its cases ends in a true terminal state."""

import json
import os
import signal
import time
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis

from executor.jobs.live import live_key
from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses, own_queue, poll_until, submit

Run = Any
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="compiled languages need a root worker")
SOLUTION = (
    "#include <stdio.h>\n"
    "int main(void) {\n"
    "    double a, b;\n"
    '    if (scanf("%lf %lf", &a, &b) != 2) return 1;\n'
    '    printf("%.10f\\n", a / b);\n'
    "    return 0;\n"
    "}\n"
)


@needs_root
def test_a_grader_gets_per_case_verdicts_for_a_c_solution_with_twenty_cases(run: Run) -> None:
    tests = [
        {"name": f"case {n}", "stdin": f"{n} 7", "expected_output": f"{n / 7:.6f}"} for n in range(1, 21)
    ]
    tests[4]["expected_output"] = "0.5"  # a wrong expectation: that case alone is rejected
    view = run(SOLUTION, language="c", tests=tests, checker={"type": "float", "abs_tol": 1e-5})
    assert (view["status"], view["passed"], view["total"]) == ("wrong_answer", 19, 20), view
    statuses = [case["status"] for case in view["tests"]]
    assert statuses == ["success"] * 4 + ["wrong_answer"] + ["success"] * 15
    assert view["tests"][4]["name"] == "case 5" and view["tests"][4]["stdout"] == "0.7142857143\n"
    assert view["compile_time"] > 0


def test_expected_output_alone_ends_wrong_answer_on_a_mismatch(run: Run) -> None:
    assert run("print(42)", expected_output="42")["status"] == "success"
    view = run("print(41)", expected_output="42")
    assert (view["status"], view["stdout"], view["return_code"]) == ("wrong_answer", "41\n", 0)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"tests": [{"stdin": "1"}], "stdin": "1"}, None, "remove stdin"),
        ({"tests": [{}] * 10, "timeout": 30, "language": "c"}, "tests", "over the job's limit of 300 s"),
        ({"tests": [{}] * 101}, "tests", "at most 100"),
        ({"tests": []}, "tests", "at least 1"),
        (
            {"checker": {"type": "program", "code": "x", "language": "cobol"}},
            "checker.language",
            "Input should be",
        ),
        ({"checker": {"type": "float", "abs_tol": -1}}, "checker.abs_tol", "greater than or equal to 0"),
        ({"checker": {"type": "close-enough"}}, "checker", "does not match any of the expected tags"),
        ({"tests": [{"args": ["a\u0000b"]}]}, "tests[0].args[0]", "NUL"),
    ],
    ids=[
        "stdin-with-tests",
        "job-seconds",
        "too-many",
        "none",
        "checker-language",
        "tolerance",
        "type",
        "nul",
    ],
)
def test_a_judging_request_that_breaks_a_rule_is_refused_and_nothing_is_queued(  # noqa: PLR0917
    workers: Any,
    redis_client: Redis,
    settings: Settings,
    fields: dict[str, Any],
    field: str | None,
    words: str,
) -> None:
    # A queue of this test alone, which no worker drains: anything queued would still be there.
    name = f"refused-{uuid.uuid4().hex[:8]}"
    client = create_app(settings.model_copy(update={"queue_name": name})).test_client()
    response = client.post("/api/v1/execute", json={"code": "print(1)", **fields})
    assert response.status_code == 422, response.get_json()
    detail = response.get_json()["error"]["details"][0]
    assert (detail["field"], words in detail["message"]) == (field, True), detail
    assert list(redis_client.scan_iter(f"rq:queue:{name}.*")) == []


def slow_cases(count: int, seconds: float) -> list[dict[str, Any]]:
    return [{"stdin": str(seconds), "expected_output": "ok"} for _ in range(count)]


def judged(client: FlaskClient, count: int, seconds: float) -> str:
    """A job of `count` cases of `seconds` each (a timeout of 1 s each)."""
    return submit(client, SLOW, tests=slow_cases(count, seconds), timeout=1)


SLOW = "import time\ntime.sleep(float(input()))\nprint('ok')"


def test_a_job_whose_worker_is_lost_in_the_middle_of_its_cases_ends_internal_error(
    pool: WorkerProcesses, settings: Settings, redis_client: Redis
) -> None:
    client, (worker,) = own_queue(settings, pool, redis_client, 1)
    job_id = judged(client, 100, 0.1)  # ten seconds of cases
    poll_until(client, job_id, {"started"})
    time.sleep(1.0)  # some cases in
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    view = poll_until(client, job_id, {"internal_error", "success"})
    assert view["status"] == "internal_error" and "lost" in view["message"], view
    assert "tests" not in view  # no case's result from the lost run is reported


def case_ended(redis_client: Redis, job_id: str, index: int, timeout_s: float = 10.0) -> None:
    """Wait until case `index` of the job has printed (each SLOW case prints as it ends), as its live
    output shows."""
    deadline = time.monotonic() + timeout_s
    while True:
        entries = redis_client.xrange(live_key(job_id))
        if any(json.loads(fields[b"data"]).get("test") == index for _, fields in entries):
            return
        assert time.monotonic() < deadline, f"case {index} of {job_id} never printed"
        time.sleep(0.05)


def test_a_job_canceled_in_the_middle_of_its_cases_skips_the_rest(
    client: FlaskClient, redis_client: Redis
) -> None:
    job_id = judged(client, 100, 0.2)  # twenty seconds of cases
    case_ended(redis_client, job_id, 0)
    canceled_at = time.monotonic()
    assert client.delete(f"/api/v1/execute/{job_id}").get_json()["status"] == "canceled"
    # Its worker moves on at once, recording what ran: it does not wait for the remaining cases.
    while "tests" not in (view := client.get(f"/api/v1/execute/{job_id}").get_json()):
        assert time.monotonic() - canceled_at < 10, view
        time.sleep(0.05)
    assert view["status"] == "canceled"
    statuses = [case["status"] for case in view["tests"]]
    assert statuses[0] == "success" and statuses[-1] == "skipped", statuses
