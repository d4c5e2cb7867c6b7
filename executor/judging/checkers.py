"""The checkers a request may name (API.md 1.1), and the comparisons the built-in ones make.

A built-in checker is a pure function of the expected and the actual output. The `program`
checker is the client's own program, run in a sandbox of its own by `cases.py`.
"""

import math
import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field

# A number as a judge writes one: digits, an optional fraction and exponent; or nan and inf. Not
# Python's whole float syntax ("1_000" is a token, not a thousand).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


class _Checker(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ExactChecker(_Checker):
    """Accepts when the output's bytes equal the expected bytes."""

    type: Literal["exact"]


class LinesChecker(_Checker):
    """Accepts when the lines are equal once trailing whitespace (a CR included) and trailing empty
    lines are removed."""

    type: Literal["lines"]


class TokensChecker(_Checker):
    """Accepts when the whitespace-separated tokens are equal."""

    type: Literal["tokens"]


class FloatChecker(_Checker):
    """As `tokens`, but two numbers match within `abs_tol` or `rel_tol` of the expected one."""

    type: Literal["float"]
    abs_tol: float = Field(1e-6, ge=0, allow_inf_nan=False)
    rel_tol: float = Field(1e-6, ge=0, allow_inf_nan=False)


class UnorderedLinesChecker(_Checker):
    """Accepts the same lines as `lines` sees them, in any order."""

    type: Literal["unordered_lines"]


class ProgramChecker(_Checker):
    """The client's own checker program (its code and language), judged by `cases.py`."""

    type: Literal["program"]
    code: str
    language: str


BuiltinChecker = ExactChecker | LinesChecker | TokensChecker | FloatChecker | UnorderedLinesChecker
Checker = Annotated[BuiltinChecker | ProgramChecker, Field(discriminator="type")]
# The checker of a request that names none (API.md 1.1).
DEFAULT_CHECKER = LinesChecker(type="lines")


def checker_field_type(program_checker: type[ProgramChecker]) -> Any:
    """`Checker` with `program_checker` in place of ProgramChecker: the request model's, which holds
    a checker program to the deployment's maxima."""
    arms = (*get_args(BuiltinChecker), program_checker)
    return Annotated[Union[arms], Field(discriminator="type")]  # noqa: UP007 (a union built at run time)


def accepts(checker: BuiltinChecker, expected: str, actual: str) -> bool:
    """Whether `actual` passes for `expected` under a built-in checker."""
    match checker:
        case ExactChecker():
            return actual == expected  # equal text, equal UTF-8 bytes
        case LinesChecker():
            return _lines(actual) == _lines(expected)
        case TokensChecker():
            return actual.split() == expected.split()
        case FloatChecker(abs_tol=abs_tol, rel_tol=rel_tol):
            got, wanted = actual.split(), expected.split()
            return len(got) == len(wanted) and all(
                _tokens_match(token, reference, abs_tol, rel_tol)
                for token, reference in zip(got, wanted, strict=True)
            )
        case UnorderedLinesChecker():
            return sorted(_lines(actual)) == sorted(_lines(expected))


def _lines(text: str) -> list[str]:
    """The lines as `lines` compares them: each without trailing whitespace, no trailing empty ones."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _tokens_match(token: str, reference: str, abs_tol: float, rel_tol: float) -> bool:
    """Equal tokens, or two numbers within tolerance (nan matches nan; an infinity, the same one)."""
    if token == reference:
        return True
    if not (_NUMBER.fullmatch(token) and _NUMBER.fullmatch(reference)):
        return False
    got, wanted = float(token), float(reference)
    if math.isnan(got) or math.isnan(wanted):
        return math.isnan(got) and math.isnan(wanted)
    if math.isinf(got) or math.isinf(wanted):
        return got == wanted
    return abs(got - wanted) <= max(abs_tol, rel_tol * abs(wanted))
