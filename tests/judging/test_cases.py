"""Judging through the real sandbox (API.md 1.1): compiled once, each case a fresh run, every checker,
`stop_on_failure`, output checked whole but shown capped, and hostile checker programs."""

from collections.abc import Callable
from typing import Any

import pytest

from executor.judging.cases import Case, Judging, judge, judged_result
from executor.judging.checkers import DEFAULT_CHECKER, Checker, FloatChecker, ProgramChecker
from executor.sandbox import Limits, Program, Sandbox, runner
from tests.sandbox.conftest import IS_ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="compiled languages and program uids need a root worker")

Judge = Callable[..., dict[str, Any]]
DIVIDE_BY_THREE_C = (
    "#include <stdio.h>\n"
    "int main(void) {\n"
    "    double x;\n"
    '    if (scanf("%lf", &x) != 1) return 2;\n'
    '    printf("%.9f\\n", x / 3);\n'
    "    return 0;\n"
    "}\n"
)
# A checker program: accepts when the output's tokens equal the expected ones, and says so.
TOKENS_CHECKER = ProgramChecker(
    type="program",
    language="python",
    code=(
        "import sys\n"
        "expected, output = open('expected.txt').read().split(), open('output.txt').read().split()\n"
        "same = expected == output\n"
        "print('input was', open('input.txt').read().strip(), '; same' if same else '; differs')\n"
        "sys.exit(0 if same else 1)\n"
    ),
)


@pytest.fixture
def judged(bwrap_sandbox: Sandbox) -> Judge:
    def run(
        code: str,
        cases: list[Case],
        checker: Checker | None = None,
        *,
        language: str = "python",
        listed: bool = True,
        shown_bytes: int = 8192,
        **limits: Any,
    ) -> dict[str, Any]:
        judging = Judging(checker or DEFAULT_CHECKER, stop_on_failure=limits.pop("stop_on_failure", False))
        outcome = judge(Program(code, language=language), cases, judging, Limits(**limits), bwrap_sandbox)
        return judged_result(outcome, cases, listed=listed, shown_bytes=shown_bytes)

    return run


def test_a_c_solution_is_compiled_once_and_judged_on_twenty_cases_with_the_float_checker(
    judged: Judge, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages: list[tuple[str, ...]] = []
    real_stage = runner._stage
    monkeypatch.setattr(
        runner, "_stage", lambda run, name: stages.append(run.command) or real_stage(run, name)
    )
    cases = [Case(stdin=str(n), expected_output=f"{n / 3:.7f}", name=f"n={n}") for n in range(20)]
    cases[7] = Case(stdin="7", expected_output="2.3", name="wrong on purpose")
    result = judged(DIVIDE_BY_THREE_C, cases, FloatChecker(type="float"), language="c")
    assert (result["status"], result["passed"], result["total"]) == ("wrong_answer", 19, 20)
    assert [case["status"] for case in result["tests"]].count("wrong_answer") == 1
    assert result["tests"][7]["name"] == "wrong on purpose"
    assert result["tests"][7]["stdout"] == "2.333333333\n"  # the deciding case's own output
    assert result["stdout"] == "2.333333333\n" and result["compile_time"] > 0
    compiles = [command for command in stages if "gcc" in command[0]]
    assert len(compiles) == 1 and len(stages) == 21  # one compile, then one run per case


def test_each_case_is_a_fresh_run_that_sees_nothing_of_the_others(judged: Judge) -> None:
    code = (
        "import os\n"
        "print('seen' if os.path.exists('marker') or os.path.exists('/tmp/marker') else 'fresh')\n"
        "open('marker', 'w').close(); open('/tmp/marker', 'w').close()\n"
    )
    for language, source in (("python", code), ("c", _c_marker_program())):
        result = judged(source, [Case(expected_output="fresh")] * 3, language=language)
        assert [case["status"] for case in result["tests"]] == ["success"] * 3, (language, result)


def _c_marker_program() -> str:
    return (
        "#include <stdio.h>\n#include <unistd.h>\n"
        "int main(void) {\n"
        '    puts(access("marker", F_OK) == 0 ? "seen" : "fresh");\n'
        '    FILE *f = fopen("marker", "w"); if (f) fclose(f);\n'
        "    return 0;\n"
        "}\n"
    )


def test_a_compile_error_runs_no_case(judged: Judge) -> None:
    result = judged("int main( {", [Case(expected_output="1")] * 3, language="c")
    assert result["status"] == "compile_error" and "error" in result["compile_output"]
    assert [case["status"] for case in result["tests"]] == ["skipped"] * 3
    assert (result["passed"], result["total"]) == (0, 3)


def test_the_first_case_that_fails_decides_and_stop_on_failure_skips_the_rest(judged: Judge) -> None:
    code = "n = int(input())\nif n == 3: raise SystemExit(4)\nprint(n * 2)"
    cases = [Case(stdin=str(n), expected_output=str(n * 2)) for n in range(100)]
    cases[1] = Case(stdin="1", expected_output="3")  # wrong answer first, then a failure at 3
    result = judged(code, cases, stop_on_failure=False)
    assert result["status"] == "wrong_answer"
    assert (result["passed"], [case["status"] for case in result["tests"][:4]]) == (
        98,
        ["success", "wrong_answer", "success", "failed"],
    )
    stopped = judged(code, cases, stop_on_failure=True)
    statuses = [case["status"] for case in stopped["tests"]]
    assert statuses[:2] == ["success", "wrong_answer"] and statuses[2:] == ["skipped"] * 98
    assert (stopped["status"], stopped["passed"], stopped["total"]) == ("wrong_answer", 1, 100)


def test_a_case_that_times_out_or_runs_out_of_memory_says_so(judged: Judge) -> None:
    code = (
        "n = int(input())\nif n == 1:\n    while True: pass\nif n == 2:\n    b = bytearray(10**9)\nprint(n)"
    )
    cases = [Case(stdin=str(n), expected_output=str(n)) for n in range(3)]
    result = judged(code, cases, wall_time_s=1, memory_mb=64)
    assert [case["status"] for case in result["tests"]] == ["success", "timeout", "memory_limit"]
    assert result["status"] == "timeout"


def test_a_large_output_is_checked_whole_and_shown_capped(judged: Judge) -> None:
    expected = "".join(f"{n}\n" for n in range(50_000))  # 289 kB
    code = "for n in range(50_000): print(n)"
    result = judged(code, [Case(expected_output=expected)], shown_bytes=1000)
    (case,) = result["tests"]
    assert case["status"] == "success"
    assert len(case["stdout"].encode()) <= 1000 and case["stdout_truncated"] is True
    wrong = judged(code, [Case(expected_output=expected.replace("49999", "49998"))], shown_bytes=1000)
    assert wrong["tests"][0]["status"] == "wrong_answer"  # the difference is past what is shown


def test_expected_output_alone_judges_one_run_without_a_list_of_cases(judged: Judge) -> None:
    accepted = judged("print(6 * 7)", [Case(expected_output="42\n")], listed=False)
    assert (accepted["status"], accepted["stdout"]) == ("success", "42\n") and "tests" not in accepted
    rejected = judged("print(6 * 9)", [Case(expected_output="42\n")], listed=False)
    assert (rejected["status"], rejected["stdout"]) == ("wrong_answer", "54\n")


def test_a_checker_program_gets_the_three_files_and_its_stdout_is_the_message(judged: Judge) -> None:
    code = "a, b = map(int, input().split())\nprint(a + b)"
    cases = [Case(stdin="1 2", expected_output="3"), Case(stdin="2 2", expected_output="5")]
    result = judged(code, cases, TOKENS_CHECKER)
    assert [(case["status"], case["checker_message"]) for case in result["tests"]] == [
        ("success", "input was 1 2 ; same\n"),
        ("wrong_answer", "input was 2 2 ; differs\n"),
    ]


def test_a_checker_program_in_c_is_compiled_once(judged: Judge, monkeypatch: pytest.MonkeyPatch) -> None:
    stages: list[tuple[str, ...]] = []
    real_stage = runner._stage
    monkeypatch.setattr(
        runner, "_stage", lambda run, name: stages.append(run.command) or real_stage(run, name)
    )
    checker = ProgramChecker(type="program", language="c", code="int main(void) { return 0; }\n")
    result = judged("print(1)", [Case(expected_output="anything")] * 5, checker)
    assert result["passed"] == 5
    assert len([command for command in stages if "gcc" in command[0]]) == 1


@pytest.mark.parametrize(
    ("checker_code", "status", "why"),
    [
        ("while True: pass", "internal_error", "the checker failed: it ended timeout"),
        ("raise SystemExit(2)", "internal_error", "the checker failed: it ended failed (exit code 2)"),
        # Contained by the checker's own sandbox; it dies of the exception, exit code 1 by the contract.
        ("import os\nwhile True: os.fork()", "wrong_answer", None),
    ],
    ids=["endless", "exit-2", "fork-bomb"],
)
def test_a_hostile_checker_program_is_contained_and_its_case_says_so(
    judged: Judge, checker_code: str, status: str, why: str | None
) -> None:
    checker = ProgramChecker(type="program", language="python", code=checker_code)
    result = judged("print(1)", [Case(expected_output="1")], checker, wall_time_s=1)
    (case,) = result["tests"]
    assert (result["status"], case["status"]) == (status, status), result
    assert result["message"] == why
    # no_process_outlives_its_run (conftest) checks that the checker's processes are gone too.


def test_a_checker_program_sees_nothing_of_the_host_s_environment(
    judged: Judge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTOR_JUDGING_SECRET", "checker-must-not-see-this")
    code = (
        "import glob\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
    )
    checker = ProgramChecker(type="program", language="python", code=code)
    result = judged("print(1)", [Case(expected_output="1")], checker)
    (case,) = result["tests"]
    assert case["status"] == "success" and "PATH=" in case["checker_message"]
    assert "checker-must-not-see-this" not in case["checker_message"]


def test_a_checker_program_that_does_not_compile_fails_the_job_on_the_service_side(judged: Judge) -> None:
    checker = ProgramChecker(type="program", language="c", code="int main( {")
    result = judged("print(1)", [Case(expected_output="1")] * 2, checker)
    assert result["status"] == "internal_error"
    assert "checker program" in result["message"]
    assert [case["status"] for case in result["tests"]] == ["skipped", "skipped"]
