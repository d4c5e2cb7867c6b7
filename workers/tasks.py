"""The job function: a validated request in, the runner's result out, both plain dicts."""

import logging
import os
from functools import cache
from typing import Any

from executor.jobs.request import ExecuteRequest, execute_request_model
from executor.languages import build_languages
from executor.sandbox import Limits, Program, Sandbox, detect_sandbox, run_program
from executor.settings import Settings
from workers.slots import Slot, acquire_slot

logger = logging.getLogger(__name__)


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
    sandbox = detect_sandbox(
        build_languages(settings.python, settings.languages),
        program_uid=program_uid,
        program_gid=program_uid,
        require_isolation=settings.require_isolation,
    )
    logger.info("programs run with isolation %r as host uid %s", sandbox.level, program_uid)
    return sandbox


@cache
def request_model() -> type[ExecuteRequest]:
    """The API's request model, so a job forged in Redis is held to the same rules as a request."""
    return execute_request_model(worker_settings(), worker_sandbox().languages.keys())


def run_job(request: dict[str, Any]) -> dict[str, Any]:
    """Run one program under the request's and the operator's limits."""
    checked = request_model().model_validate(request)
    settings = worker_settings()
    program = Program(
        code=checked.code,
        language=checked.language,
        stdin=checked.stdin,
        args=tuple(checked.args),
        files=tuple((file.path, file.data()) for file in checked.files),
    )
    return run_program(program, limits_for(checked, settings), worker_sandbox()).to_dict()


def limits_for(checked: ExecuteRequest, settings: Settings) -> Limits:
    """The request's own limits, within the operator's."""
    return Limits(
        wall_time_s=checked.timeout,
        memory_mb=checked.memory_mb,
        max_processes=settings.max_processes,
        max_disk_mb=settings.max_disk_mb,
        max_output_bytes=settings.max_output_bytes,
        compile_time_s=settings.compile_timeout,
        compile_memory_mb=settings.compile_memory_mb,
    )
