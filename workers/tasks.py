"""The job function: a validated request in, the runner's result out, both plain dicts."""

import logging
import os
import threading
from dataclasses import replace
from functools import cache
from typing import Any

from rq import get_current_job

from executor.jobs.live import LivePublisher
from executor.jobs.request import ExecuteRequest, execute_request_model
from executor.judging.cases import Case, Judging, judge, judged_result
from executor.languages import build_languages
from executor.sandbox import Limits, Program, Sandbox, detect_sandbox, run_program
from executor.settings import Settings
from workers.slots import Slot, acquire_slot

logger = logging.getLogger(__name__)
# Set when the worker is told to stop the job it runs (a cancel): its remaining test cases are skipped.
STOPPING = threading.Event()


@cache
def worker_settings() -> Settings:
    """The worker's configuration, read from the environment once."""
    return Settings()


@cache
def worker_slot() -> Slot | None:
    """This process's slot, held (its lock file open) for as long as the process lives; None unless root.

    Root workers run programs as the uid of their own slot: never uid 0, never shared with
    another worker, whose programs the sandbox would otherwise count, and kill, as its own.
    """
    if os.geteuid() != 0:
        return None
    settings = worker_settings()
    return acquire_slot(settings.sandbox_uid_base, settings.sandbox_slots)


@cache
def worker_sandbox() -> Sandbox:
    """The sandbox this worker process runs every program in, decided once at start-up."""
    settings = worker_settings()
    slot = worker_slot()
    program_uid = slot.uid if slot else None
    sandbox = replace(
        detect_sandbox(
            build_languages(settings.python, settings.languages),
            program_uid=program_uid,
            program_gid=program_uid,
            require_isolation=settings.require_isolation,
        ),
        warm_start=settings.warm_start,
    )
    logger.info("programs run with isolation %r as host uid %s", sandbox.level, program_uid)
    return sandbox


@cache
def request_model() -> type[ExecuteRequest]:
    """The API's request model, so a job forged in Redis is held to the same rules as a request."""
    return execute_request_model(worker_settings(), worker_sandbox().languages.keys())


def run_job(request: dict[str, Any]) -> dict[str, Any]:
    """Run one program under the request's and the operator's limits; judged, when the request
    gives expected output or test cases."""
    STOPPING.clear()
    checked = request_model().model_validate(request)
    settings = worker_settings()
    program = Program(
        code=checked.code,
        language=checked.language,
        stdin=checked.stdin,
        args=tuple(checked.args),
        files=tuple((file.path, file.data()) for file in checked.files),
        outputs=tuple(checked.outputs),
    )
    limits = limits_for(checked, settings)
    job = get_current_job()
    publisher = (
        LivePublisher(
            job.connection, job.id, settings.result_ttl, skip_if_short=checked.tests is None
        ).start()
        if job
        else None
    )
    try:
        return _run(checked, program, limits, settings, publisher)
    finally:
        if publisher is not None:
            publisher.close()


def _run(
    checked: ExecuteRequest, program: Program, limits: Limits, settings: Settings, live: LivePublisher | None
) -> dict[str, Any]:
    """The job's result: one run, or the judged cases."""
    on_output = live.output if live else None
    if checked.tests is None and checked.expected_output is None:
        return run_program(program, limits, worker_sandbox(), on_output=on_output).to_dict()
    cases = [
        Case(stdin=case.stdin, args=tuple(case.args), expected_output=case.expected_output, name=case.name)
        for case in checked.tests or []
    ] or [Case(stdin=checked.stdin, args=tuple(checked.args), expected_output=checked.expected_output)]
    judging = Judging(
        checker=checked.checker,
        stop_on_failure=checked.stop_on_failure,
        canceled=STOPPING.is_set,
        on_case=(live.case if live and checked.tests is not None else lambda index: None),
        on_output=on_output,
    )
    outcome = judge(program, cases, judging, limits, worker_sandbox())
    listed = checked.tests is not None
    return judged_result(outcome, cases, listed=listed, shown_bytes=settings.case_output_bytes)


def limits_for(checked: ExecuteRequest, settings: Settings) -> Limits:
    """The request's own limits, within the operator's."""
    return Limits(
        wall_time_s=checked.timeout,
        memory_mb=checked.memory_mb,
        max_processes=settings.max_processes,
        max_disk_mb=settings.max_disk_mb,
        max_output_bytes=settings.max_output_bytes,
        max_output_files=settings.max_output_files,
        max_output_files_bytes=settings.max_output_files_bytes,
        compile_time_s=settings.compile_timeout,
        compile_memory_mb=settings.compile_memory_mb,
    )
