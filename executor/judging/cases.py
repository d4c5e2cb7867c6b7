"""A program judged over test cases (API.md 1.1): compiled once, each case a fresh run, each run checked.

The result is one dict, as the job's result: the run fields of the case that decided the job's
status, the compile's fields, and, for a request with `tests`, one entry per case with `passed`
and `total`. A case's output is checked whole (within the output limit), and shown capped.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from executor.judging.checkers import Checker, ProgramChecker, accepts
from executor.judging.verdicts import SKIPPED, WRONG_ANSWER
from executor.sandbox import Limits, Outcome, Prepared, Program, RunResult, Sandbox, prepare
from executor.sandbox.streams import OutputListener

# What a checker program's stdout may add to a case, as its `checker_message`.
CHECKER_MESSAGE_CAP = 4096
# The files a checker program finds in its working directory.
INPUT_FILE, EXPECTED_FILE, OUTPUT_FILE = "input.txt", "expected.txt", "output.txt"


@dataclass(frozen=True)
class Case:
    """One test case: what the program gets, and what its stdout should be (None: not checked)."""

    stdin: str = ""
    args: tuple[str, ...] = ()
    expected_output: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Judging:
    """How the cases are judged: the checker, whether to stop at the first failure, how to learn
    that the job was canceled (its remaining cases are then skipped), and who listens to the output."""

    checker: Checker
    stop_on_failure: bool = False
    canceled: Callable[[], bool] = lambda: False
    # Live output: told which case runs next, and each case's output as it is read.
    on_case: Callable[[int], None] = lambda index: None
    on_output: OutputListener | None = None


@dataclass(frozen=True)
class Verdict:
    """A case's run (None when skipped) and what judging made of it."""

    status: str
    run: RunResult | None = None
    checker_message: str | None = None
    message: str | None = None


def judge(
    program: Program, cases: Sequence[Case], judging: Judging, limits: Limits, sandbox: Sandbox
) -> list[Verdict] | RunResult:
    """Each case's verdict, in order; or the compile's (or the sandbox's) failure, when none could run."""
    with prepare(program, limits, sandbox) as ready:
        if ready.failure is not None:
            return ready.failure
        with _prepared_checker(judging.checker, limits, sandbox) as checker:
            if checker is not None and checker.failure is not None:
                return _checker_failed(checker.failure)
            return list(_verdicts(ready, cases, judging, checker))


def judged_result(
    outcome: list[Verdict] | RunResult, cases: Sequence[Case], *, listed: bool, shown_bytes: int
) -> dict[str, Any]:
    """The job's result from `judge`'s outcome: with `listed`, a `tests` entry per case (output
    shown up to `shown_bytes`), `passed` and `total`."""
    if isinstance(outcome, RunResult):
        failed = outcome.to_dict()
        if listed:
            skipped = [_case_entry(case, Verdict(SKIPPED), shown_bytes) for case in cases]
            failed |= {"tests": skipped, "passed": 0, "total": len(cases)}
        return failed
    runs = [verdict.run for verdict in outcome if verdict.run is not None]
    deciding = next((v for v in outcome if v.status not in (Outcome.SUCCESS, SKIPPED)), None)
    shown = deciding or next(v for v in reversed(outcome) if v.run is not None)
    assert shown.run is not None  # the first case always runs
    peaks = [run.memory_kb for run in runs if run.memory_kb is not None]
    result = shown.run.to_dict() | {
        "status": shown.status,
        "message": shown.message or shown.run.message,
        "execution_time": round(sum(run.execution_time for run in runs), 4),
        "cpu_time": round(sum(run.cpu_time for run in runs), 4),
        "memory_kb": max(peaks, default=None),
    }
    if listed:
        pairs = zip(cases, outcome, strict=True)
        entries = [_case_entry(case, verdict, shown_bytes) for case, verdict in pairs]
        passed = sum(verdict.status == Outcome.SUCCESS for verdict in outcome)
        result |= {"tests": entries, "passed": passed, "total": len(cases)}
    elif shown.checker_message:
        result["message"] = shown.checker_message
    return result


def _verdicts(
    ready: Prepared, cases: Sequence[Case], judging: Judging, checker: Prepared | None
) -> Iterator[Verdict]:
    """Run and check each case; after a failure with `stop_on_failure`, or a cancel, skip the rest."""
    stopped = False
    for index, case in enumerate(cases):
        stopped = stopped or judging.canceled()
        if stopped:
            yield Verdict(SKIPPED)
            continue
        judging.on_case(index)
        run = ready.run(case.stdin, case.args, on_output=judging.on_output)
        verdict = _checked(run, case, judging.checker, checker)
        stopped = judging.stop_on_failure and verdict.status != Outcome.SUCCESS
        yield verdict


def _checked(run: RunResult, case: Case, spec: Checker, checker: Prepared | None) -> Verdict:
    """A case's verdict: its run's outcome, or, for a run that succeeded, what the checker says."""
    if run.outcome is not Outcome.SUCCESS or case.expected_output is None:
        return Verdict(run.outcome.value, run)
    if checker is None:
        assert not isinstance(spec, ProgramChecker)
        accepted = accepts(spec, case.expected_output, run.stdout)
        return Verdict(Outcome.SUCCESS.value if accepted else WRONG_ANSWER, run)
    files = (
        (INPUT_FILE, case.stdin.encode()),
        (EXPECTED_FILE, case.expected_output.encode()),
        (OUTPUT_FILE, run.stdout.encode()),
    )
    checked = checker.run(files=files)
    message = checked.stdout[:CHECKER_MESSAGE_CAP]
    if checked.outcome is Outcome.SUCCESS:
        return Verdict(Outcome.SUCCESS.value, run, checker_message=message)
    if checked.outcome is Outcome.FAILED and checked.return_code == 1:
        return Verdict(WRONG_ANSWER, run, checker_message=message)
    code = f" (exit code {checked.return_code})" if checked.return_code is not None else ""
    why = checked.message or f"it ended {checked.outcome.value}{code}"
    failed = f"the checker failed: {why}"
    return Verdict(Outcome.INTERNAL_ERROR.value, run, checker_message=message, message=failed)


@contextmanager
def _prepared_checker(spec: Checker, limits: Limits, sandbox: Sandbox) -> Iterator[Prepared | None]:
    """The checker program, compiled once for every case; None for a built-in checker."""
    if not isinstance(spec, ProgramChecker):
        yield None
        return
    with prepare(Program(spec.code, language=spec.language), limits, sandbox) as ready:
        yield ready


def _checker_failed(failure: RunResult) -> RunResult:
    """The job's result when its checker program cannot run: the service's side, not the program's."""
    why = failure.message or failure.outcome.value
    message = f"the checker program could not be prepared: {why}"
    return replace(failure, outcome=Outcome.INTERNAL_ERROR, message=message)


def _case_entry(case: Case, verdict: Verdict, shown_bytes: int) -> dict[str, Any]:
    """A case as the job's result lists it (API.md 1.1), its output capped at `shown_bytes`."""
    run = verdict.run or RunResult(Outcome.SUCCESS)
    stdout, stdout_cut = _capped(run.stdout, shown_bytes)
    stderr, stderr_cut = _capped(run.stderr, shown_bytes)
    return {
        "name": case.name,
        "status": verdict.status,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": run.stdout_truncated or stdout_cut,
        "stderr_truncated": run.stderr_truncated or stderr_cut,
        "return_code": run.return_code,
        "signal": run.signal,
        "execution_time": run.execution_time,
        "cpu_time": run.cpu_time,
        "memory_kb": run.memory_kb,
        "checker_message": verdict.checker_message,
    }


def _capped(text: str, limit: int) -> tuple[str, bool]:
    """`text` within `limit` bytes of UTF-8, cut at a character boundary; and whether it was cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text, False
    return encoded[:limit].decode("utf-8", "ignore"), True
