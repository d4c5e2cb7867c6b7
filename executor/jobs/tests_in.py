"""Test cases in (API.md 1.1): the cases a client sends with its program, checked before anything is queued.

The case model's maxima come from the settings, as the request's do (`request.py`); what judging
does with the cases is `executor.judging`.
"""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from executor.judging.checkers import ProgramChecker, checker_field_type
from executor.settings import Settings

MAX_CASE_NAME = 128


class TestCaseIn(BaseModel):
    """One case: its stdin and arguments, and the stdout expected of it (none: not checked)."""

    __test__ = False  # not a pytest class, whatever its name
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str | None = Field(None, max_length=MAX_CASE_NAME, description="Shown with the case's result.")
    stdin: str = Field("", description="Standard input of this case.")
    args: list[str] = Field(default_factory=list, description="Command-line arguments of this case.")
    expected_output: str | None = Field(None, description="The stdout the checker compares with.")


def test_case_model(settings: Settings, argument: Any, text_within: Any) -> type[TestCaseIn]:
    """The case model with this deployment's maxima: `argument` is the request's argument type,
    `text_within(n)` a string type of at most n bytes of UTF-8."""
    base = TestCaseIn.model_fields
    return create_model(
        "TestCaseIn",
        __base__=TestCaseIn,
        stdin=(text_within(settings.max_stdin_bytes), Field("", description=base["stdin"].description)),
        args=(
            list[argument],
            Field(default_factory=list, max_length=settings.max_args, description=base["args"].description),
        ),
        expected_output=(
            text_within(settings.max_output_bytes) | None,
            Field(None, description=base["expected_output"].description),
        ),
    )


def checker_type(settings: Settings, language: Any) -> Any:
    """The `checker` field's type with this deployment's maxima: a checker program's code is held to
    the program's own size limit, and its language (of type `language`) to the languages offered."""
    program_checker = create_model(
        "ProgramChecker",
        __base__=ProgramChecker,
        code=(Annotated[str, Field(min_length=1, max_length=settings.max_code_bytes)], ...),
        language=(language, ...),
    )
    return checker_field_type(program_checker)


def total_bytes_at_most(limit: int) -> AfterValidator:
    """A check that the cases' stdin and expected output add up to at most `limit` bytes."""

    def check(cases: list[TestCaseIn] | None) -> list[TestCaseIn] | None:
        total = sum(
            len(case.stdin.encode()) + len((case.expected_output or "").encode()) for case in cases or []
        )
        if total > limit:
            raise ValueError(f"the cases' stdin and expected_output must add up to at most {limit} bytes")
        return cases

    return AfterValidator(check)
