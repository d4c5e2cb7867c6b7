"""The shapes of the HTTP API besides a job's own (request: `executor.jobs.request`, view:
`executor.jobs.views`): a submission's answer, languages, health and errors."""

from typing import Literal

from pydantic import BaseModel

from executor.jobs.statuses import QUEUED


class JobAccepted(BaseModel):
    """The answer to a submission: where to find the job."""

    job_id: str
    status: Literal[QUEUED] = QUEUED  # type: ignore[valid-type]
    message: str
    status_url: str


class BatchJobAccepted(BaseModel):
    """One job of an accepted batch: where to find it, and the client's ref for it."""

    job_id: str
    ref: str | None
    status_url: str


class BatchAccepted(BaseModel):
    """The answer to a batch's submission: where to find the batch and each of its jobs."""

    batch_id: str
    status: Literal["running"] = "running"
    status_url: str
    jobs: list[BatchJobAccepted]


class PackageInfo(BaseModel):
    """A library a language's programs may import, at the version installed."""

    name: str
    version: str


class LanguageInfo(BaseModel):
    """One language programs can be written in (API.md 1.1)."""

    id: str
    name: str
    version: str
    compiled: bool
    source_file: str
    packages: list[PackageInfo]


class Health(BaseModel):
    """Whether the service can take work, and who is there to do it."""

    status: Literal["ok", "unavailable"]
    redis: str
    workers: int
    queued: int
    sandbox: str


class ErrorDetail(BaseModel):
    """One reason a request was refused."""

    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """The error itself: a stable code and a sentence a person can act on."""

    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """Every error of every route has this shape."""

    error: ErrorBody
