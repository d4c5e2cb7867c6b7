"""The built-in checkers (API.md 1.1), accepted and rejected, with the edge cases judges trip on."""

import pytest

from executor.judging.checkers import (
    BuiltinChecker,
    ExactChecker,
    FloatChecker,
    LinesChecker,
    TokensChecker,
    UnorderedLinesChecker,
    accepts,
)

EXACT = ExactChecker(type="exact")
LINES = LinesChecker(type="lines")
TOKENS = TokensChecker(type="tokens")
FLOAT = FloatChecker(type="float")
UNORDERED = UnorderedLinesChecker(type="unordered_lines")

# (checker, expected, actual, accepted)
CASES = [
    (EXACT, "1 2\n", "1 2\n", True),
    (EXACT, "1 2\n", "1 2", False),  # a missing trailing newline is a difference
    (EXACT, "1\n", "1\r\n", False),
    (EXACT, "", "", True),
    (EXACT, "", "\n", False),
    (LINES, "1 2\n3\n", "1 2\n3", True),  # trailing newline
    (LINES, "1 2\n3\n", "1 2\r\n3\r\n", True),  # CRLF
    (LINES, "a\n", "a   \n\n\n", True),  # trailing spaces and empty lines
    (LINES, "a b\n", "a  b\n", False),  # spaces inside a line count
    (LINES, "a\n\nb\n", "a\nb\n", False),  # an empty line inside counts
    (LINES, " a\n", "a\n", False),  # leading spaces count
    (LINES, "", "", True),
    (LINES, "", "\n\n", True),  # empty output is empty lines
    (LINES, "x\n", "", False),
    (TOKENS, "1 2\n3\n", "1\n2 3", True),
    (TOKENS, "1 2 3", "1 2", False),
    (TOKENS, "1.0", "1", False),  # tokens, not numbers
    (TOKENS, "", "  \n", True),
    (FLOAT, "0.3333333", "0.33333333333", True),
    (FLOAT, "0.333", "0.334", False),
    (FLOAT, "-0", "0", True),
    (FLOAT, "0.0", "-0.0", True),
    (FLOAT, "1e10", "1.0000000001E10", True),  # within rel_tol
    (FLOAT, "1e10", "1.00001e10", False),
    (FLOAT, "1e-9", "2e-9", True),  # within abs_tol
    (FLOAT, "nan", "NaN", True),
    (FLOAT, "nan", "0", False),
    (FLOAT, "0", "nan", False),
    (FLOAT, "inf", "Infinity", True),
    (FLOAT, "inf", "-inf", False),
    (FLOAT, "inf", "1e308", False),
    (FLOAT, "YES 1.5", "YES 1.5000001", True),  # words compare exactly
    (FLOAT, "YES 1.5", "yes 1.5", False),
    (FLOAT, "1 2", "1", False),  # token count
    (FLOAT, "1_000", "1000", False),  # Python's float syntax is not a judge's
    (FLOAT, "", "", True),
    (UNORDERED, "a\nb\nc\n", "c\na\nb", True),
    (UNORDERED, "a\na\nb\n", "a\nb\nb\n", False),  # a multiset, not a set
    (UNORDERED, "a\nb\n", "b \r\na\n\n", True),
    (UNORDERED, "a b\n", "b a\n", False),  # the lines, not their tokens
]


@pytest.mark.parametrize(("checker", "expected", "actual", "accepted"), CASES)
def test_a_checker_accepts_exactly_what_api_md_says(
    checker: BuiltinChecker, expected: str, actual: str, accepted: bool
) -> None:
    assert accepts(checker, expected, actual) is accepted


def test_the_float_tolerances_are_the_checkers_own() -> None:
    loose = FloatChecker(type="float", abs_tol=0.01, rel_tol=0)
    assert accepts(loose, "1.00", "1.009")
    assert not accepts(loose, "1.00", "1.02")
    relative = FloatChecker(type="float", abs_tol=0, rel_tol=0.1)
    assert accepts(relative, "100", "109")
    assert not accepts(relative, "100", "111")
