"""What a client asks to run: the request model both the API and the workers validate with.

The workers validate a job's request again, with the same model and maxima, so a job forged in
Redis can raise no limit.
"""

from collections.abc import Collection
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from executor.callbacks.addresses import MAX_URL_CHARS, RefusedAddress, allowed_networks, check_url
from executor.jobs.files import (
    MAX_OUTPUT_PATTERNS,
    MAX_PATH_BYTES,
    OUTPUT_PATTERN,
    FileIn,
    at_most_bytes,
    layout_problem,
    plain_pattern,
)
from executor.jobs.tests_in import TestCaseIn, checker_type, test_case_model, total_bytes_at_most
from executor.judging.checkers import DEFAULT_CHECKER, Checker
from executor.languages import compiles, source_files
from executor.settings import Settings

# The function a job runs, by dotted path: the web process enqueues it without importing worker code,
# and workers run nothing else.
RUN_JOB = "workers.tasks.run_job"


class ExecuteRequest(BaseModel):
    """A program to run; the operator's maxima are applied by `execute_request_model`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    code: str = Field(description="Source code, UTF-8.")
    language: str = Field("python", description="An id from GET /api/v1/languages.")
    stdin: str = Field("", description="Standard input of the program.")
    timeout: float = Field(5.0, gt=0, description="Wall-clock limit of the program, seconds.")
    memory_mb: int = Field(256, ge=16, description="Memory limit of the program, MiB.")
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")
    files: list[FileIn] = Field(
        default_factory=list,
        description="Files written into the working directory before the program is compiled and run.",
    )
    expected_output: str | None = Field(
        None, description="The stdout expected: a program that exits 0 with another ends wrong_answer."
    )
    tests: list[TestCaseIn] | None = Field(
        None,
        description="Test cases, each in a fresh sandbox (then no top-level stdin, args, expected_output).",
    )
    stop_on_failure: bool = Field(False, description="Skip the cases after the first that is not success.")
    callback_url: str | None = Field(
        None, description="Where the job's view is POSTed, signed, when it ends."
    )
    outputs: list[str] = Field(
        default_factory=list, description="Glob patterns of the files to return from the working directory."
    )
    checker: Checker = Field(
        default=DEFAULT_CHECKER, description="How output is compared with expected output."
    )

    @model_validator(mode="after")
    def _files_fit_together(self) -> Self:
        problem = layout_problem([file.path for file in self.files], source_files().get(self.language))
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _outputs_of_one_run(self) -> Self:
        if self.tests is not None and self.outputs:
            raise ValueError("outputs are collected from one run: a request with tests cannot ask for them")
        return self

    @model_validator(mode="after")
    def _cases_or_one_run(self) -> Self:
        # By value, not by what was sent: the workers validate the request as the web stored it.
        one_run = {
            "stdin": self.stdin,
            "args": self.args,
            "expected_output": self.expected_output is not None,
        }
        given = [name for name, value in one_run.items() if value]
        if self.tests is not None and given:
            removed = ", ".join(given)
            raise ValueError(
                f"with tests, each case has its own stdin, args and expected_output; remove {removed}"
            )
        return self


def _utf8_size_at_most(limit: int, minimum: int = 0) -> AfterValidator:
    """A check on the UTF-8 size, since the limits are in bytes and a character may take four."""

    def check(value: str) -> str:
        size = len(value.encode("utf-8"))
        if size < minimum:
            raise ValueError(f"must be at least {minimum} byte(s) of UTF-8")
        if size > limit:
            raise ValueError(f"must be at most {limit} bytes of UTF-8, got {size}")
        return value

    return AfterValidator(check)


def _text_within(limit: int) -> Any:
    """A string type of at most `limit` bytes of UTF-8 (and as many characters, for the schema)."""
    return Annotated[str, Field(max_length=limit), _utf8_size_at_most(limit)]


def _no_nul(value: str) -> str:
    """Reject NUL, which no operating system accepts inside an argument."""
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _integral_number(value: object) -> object:
    """Accept 256.0 for an integer, as JSON Schema does, while strict mode still refuses "256" and 2.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _callback_check(settings: Settings) -> Any:
    """A check of a callback URL: callbacks are configured, and the URL may be called (an IP literal
    in a refused range is refused now; a name is checked when it is resolved, at delivery)."""
    allowed = allowed_networks(settings.webhook_allow_networks)

    def check(url: str) -> str:
        if not settings.webhook_secret:
            raise ValueError("callbacks need EXECUTOR_WEBHOOK_SECRET, which this service does not set")
        try:
            check_url(url, allowed)
        except RefusedAddress as refused:
            raise ValueError(str(refused)) from refused
        return url

    return check


def _within_job_seconds(settings: Settings) -> Any:
    """A check that a request's cases fit in the job's time: every case's timeout, plus the compile
    limit in a language that compiles, at most EXECUTOR_MAX_JOB_SECONDS."""

    def check(tests: list[TestCaseIn] | None, info: ValidationInfo) -> list[TestCaseIn] | None:
        if tests is None or "timeout" not in info.data or "language" not in info.data:
            return tests
        compile_s = settings.compile_timeout if compiles(info.data["language"]) else 0.0
        total = info.data["timeout"] * len(tests) + compile_s
        if total > settings.max_job_seconds:
            raise ValueError(
                f"timeout x {len(tests)} cases{' + the compile limit' if compile_s else ''} is {total:g} s, "
                f"over the job's limit of {settings.max_job_seconds:g} s"
            )
        return tests

    return field_validator("tests")(check)


def execute_request_model(settings: Settings, languages: Collection[str]) -> type[ExecuteRequest]:
    """The request model with this deployment's maxima, so validation and /openapi.json agree; the
    fields' defaults and descriptions are ExecuteRequest's own."""
    language_ids = tuple(sorted(languages))
    # The pattern tells schema readers what `_no_nul` enforces with a clearer message.
    argument = Annotated[
        str, Field(max_length=4096, json_schema_extra={"pattern": "^[^\\u0000]*$"}), AfterValidator(_no_nul)
    ]
    language = Literal[language_ids]  # type: ignore[valid-type]
    base = ExecuteRequest.model_fields
    fields: dict[str, Any] = {
        "code": (
            Annotated[str, Field(min_length=1, max_length=settings.max_code_bytes)],
            Field(
                description=base["code"].description, json_schema_extra={"maxBytes": settings.max_code_bytes}
            ),
        ),
        "language": (language, Field(base["language"].default, description=base["language"].description)),
        "stdin": (
            Annotated[str, Field(max_length=settings.max_stdin_bytes)],
            Field(base["stdin"].default, description=base["stdin"].description),
        ),
        "timeout": (
            float,
            Field(
                base["timeout"].default,
                gt=0,
                le=settings.max_timeout,
                description=base["timeout"].description,
            ),
        ),
        "memory_mb": (
            Annotated[int, BeforeValidator(_integral_number)],
            Field(
                base["memory_mb"].default,
                ge=16,
                le=settings.max_memory_mb,
                description=base["memory_mb"].description,
            ),
        ),
        "args": (
            list[argument],  # type: ignore[valid-type]
            Field(default_factory=list, max_length=settings.max_args, description=base["args"].description),
        ),
        "files": (
            Annotated[list[FileIn], at_most_bytes(settings.max_files_bytes)],
            Field(
                default_factory=list,
                max_length=settings.max_files,
                description=base["files"].description,
                json_schema_extra={"maxBytes": settings.max_files_bytes},
            ),
        ),
    }
    case = test_case_model(settings, argument, _text_within)
    fields |= {
        "expected_output": (
            _text_within(settings.max_output_bytes) | None,
            Field(None, description=base["expected_output"].description),
        ),
        "tests": (
            Annotated[list[case], total_bytes_at_most(settings.max_tests_bytes)] | None,  # type: ignore[valid-type]
            Field(None, min_length=1, max_length=settings.max_tests, description=base["tests"].description),
        ),
        "checker": (
            checker_type(settings, language),
            Field(default=DEFAULT_CHECKER, description=base["checker"].description),
        ),
    }
    fields["outputs"] = (
        list[
            Annotated[
                str,
                Field(max_length=MAX_PATH_BYTES, json_schema_extra={"pattern": OUTPUT_PATTERN}),
                AfterValidator(plain_pattern),
            ]
        ],
        Field(default_factory=list, max_length=MAX_OUTPUT_PATTERNS, description=base["outputs"].description),
    )
    fields["callback_url"] = (
        Annotated[str, Field(max_length=MAX_URL_CHARS), AfterValidator(_callback_check(settings))] | None,
        Field(None, description=base["callback_url"].description),
    )
    model = create_model(
        "ExecuteRequest",
        __base__=ExecuteRequest,
        __validators__={"_within_job_seconds": _within_job_seconds(settings)},
        **fields,
    )
    # Byte limits on top of the character limits above: they need the settings, hence the closure.
    code_check = _utf8_size_at_most(settings.max_code_bytes, minimum=1)
    stdin_check = _utf8_size_at_most(settings.max_stdin_bytes)
    model.model_fields["code"].metadata.append(code_check)
    model.model_fields["stdin"].metadata.append(stdin_check)
    model.model_rebuild(force=True)
    return model


MAX_REF_CHARS = 128


class BatchRequest(BaseModel):
    """Programs to queue together (API.md 1.1): each an execute request with an optional `ref`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    jobs: list[Any] = Field(description="The jobs, each an execute request with an optional ref.")
    callback_url: str | None = Field(
        None, description="Where the batch's view is POSTed, signed, when it ends."
    )


def batch_request_model(settings: Settings, job_model: type[ExecuteRequest]) -> type[BatchRequest]:
    """The batch model with this deployment's maxima, each job validated by `job_model` (the
    deployment's request model) plus its `ref`."""
    batch_job = create_model(
        "BatchJob",
        __base__=job_model,
        ref=(str | None, Field(None, max_length=MAX_REF_CHARS, description="Echoed in the job's view.")),
    )
    return create_model(
        "BatchRequest",
        __base__=BatchRequest,
        callback_url=(
            Annotated[str, Field(max_length=MAX_URL_CHARS), AfterValidator(_callback_check(settings))] | None,
            Field(None, description=BatchRequest.model_fields["callback_url"].description),
        ),
        jobs=(
            list[batch_job],  # type: ignore[valid-type]
            Field(
                min_length=1,
                max_length=settings.max_batch,
                description=BatchRequest.model_fields["jobs"].description,
            ),
        ),
    )


def without_ref(job: ExecuteRequest, job_model: type[ExecuteRequest]) -> ExecuteRequest:
    """A batch's job as the execute request a worker validates (the worker knows no `ref`)."""
    return job_model.model_validate(job.model_dump(exclude={"ref"}))
