"""A job as clients see it: the view model, and the pure step from what was read of a job to its view.

Reading is the queue's (`queue.py`): this module is handed the job's hash, its newest result and its
place in the queue, and reads nothing more.
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from rq.job import Job, JobStatus
from rq.results import Result

from executor.jobs.statuses import CANCELED, QUEUED, STARTED, TERMINAL_STATUSES, CaseStatusWord, JobStatusWord
from executor.sandbox import Outcome

# RQ's statuses, by what a client sees of them.
WAITING_STATUSES = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED, JobStatus.CREATED}
UNFINISHED_STATUSES = {*WAITING_STATUSES, JobStatus.STARTED}
CANCELED_STATUSES = {JobStatus.CANCELED, JobStatus.STOPPED}


def _absent(value: object) -> bool:
    return value is None


class CaseView(BaseModel):
    """One test case of a judged job (API.md 1.1), its output shown capped."""

    name: str | None
    status: CaseStatusWord
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    return_code: int | None
    signal: str | None
    execution_time: float
    cpu_time: float
    memory_kb: int | None
    checker_message: str | None


class FileOutView(BaseModel):
    """A file the run left that the request asked for (API.md 1.1)."""

    path: str
    size: int
    encoding: Literal["utf8", "base64"]
    content: str


class CallbackView(BaseModel):
    """A callback's delivery, as a job's or a batch's view shows it (API.md 1.1)."""

    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None


class JobView(BaseModel):
    """A job as clients see it; the result fields are present once it is terminal."""

    job_id: str
    status: JobStatusWord
    queue_position: int | None = None
    message: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    stdout_truncated: bool | None = None
    stderr_truncated: bool | None = None
    return_code: int | None = None
    signal: str | None = None
    execution_time: float | None = None
    cpu_time: float | None = None
    memory_kb: int | None = None
    language: str | None = None
    # Present for the jobs of a batch only (API.md 1.1).
    batch_id: str | None = Field(None, exclude_if=_absent)
    ref: str | None = Field(None, exclude_if=_absent)
    # Present for languages that compile only.
    compile_output: str | None = Field(None, exclude_if=_absent)
    compile_time: float | None = Field(None, exclude_if=_absent)
    # Files out (API.md 1.1): present when the request asked for outputs, or the language collects some.
    files: list[FileOutView] | None = Field(None, exclude_if=_absent)
    files_truncated: bool | None = Field(None, exclude_if=_absent)
    # Present for jobs with a callback_url only.
    callback: CallbackView | None = Field(None, exclude_if=_absent)
    # Present for jobs with test cases only.
    tests: list[CaseView] | None = Field(None, exclude_if=_absent)
    passed: int | None = Field(None, exclude_if=_absent)
    total: int | None = Field(None, exclude_if=_absent)
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


def view_of(job: Job, result: Result | None, queue_position: int | None) -> JobView:
    """The view of a job from its hash as read, its newest result and its place in the queue."""
    status = job.get_status(refresh=False)
    timestamps = {
        "created_at": _utc(job.created_at),
        "started_at": _utc(job.started_at),
        "ended_at": _utc(job.ended_at),
    }
    common = {
        "job_id": job.id,
        "language": job.meta.get("language"),
        "batch_id": job.meta.get("batch_id"),
        "ref": job.meta.get("ref"),
        **timestamps,
    }
    if status in WAITING_STATUSES:
        return JobView(status=QUEUED, queue_position=queue_position, **common)
    if status == JobStatus.STARTED:
        return JobView(status=STARTED, **common)
    if status in CANCELED_STATUSES or status == JobStatus.FINISHED:
        returned = result.return_value if result and result.type == Result.Type.SUCCESSFUL else None
        if status == JobStatus.FINISHED:
            return _ended(common, None, None, returned)
        return _ended(common, CANCELED, "canceled before it finished", returned)
    return _ended(common, Outcome.INTERNAL_ERROR.value, _failure_message(result))


def view_json(view: JobView) -> str:
    """A view's JSON, leaving out fields that do not apply yet: what the API answers, and what a
    callback sends. Written by pydantic in one pass: a view carries up to megabytes of output, which
    the standard library's encoder takes several milliseconds per MB to escape."""
    return view.model_dump_json(exclude_none=view.status not in TERMINAL_STATUSES)


def _ended(
    common: dict[str, Any], status: str | None, message: str | None, result: dict[str, Any] | None = None
) -> JobView:
    """A terminal view: the runner's result when there is one, else empty result fields."""
    fields: dict[str, Any] = {
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "return_code": None,
        "signal": None,
        "execution_time": 0.0,
        "cpu_time": 0.0,
        "memory_kb": None,
    }
    fields.update(result or {})
    if status is not None:
        fields["status"] = status
    if message is not None:
        fields["message"] = message
    return JobView.model_validate({**fields, **common})


def _failure_message(result: Result | None) -> str:
    """Why RQ failed the job, in one line, without the worker's traceback."""
    if result is None or not result.exc_string:
        return "the service failed to run this job"
    last_line = result.exc_string.strip().splitlines()[-1]
    return f"the service failed to run this job: {last_line}"


def _utc(moment: datetime | None) -> datetime | None:
    """RQ stores naive UTC times; clients get an explicit UTC marker."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
